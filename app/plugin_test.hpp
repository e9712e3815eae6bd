// `flexrt plugin-test <library.so | kind.name>`: runs the conformance suite of each plugin in a library
// (conformance/plugin_conformance.hpp) and prints a line per check; exit 0 when every check passed.
#pragma once

#include <string>
#include <vector>

namespace flexrt {

// argv without the subcommand. Returns the process exit code; throws flexrt::Error on bad input.
int plugin_test_main(const std::vector<std::string>& args);

}  // namespace flexrt
