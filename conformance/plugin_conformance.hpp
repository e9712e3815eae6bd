// The conformance suite a plugin author runs on a library (`flexrt plugin-test path/lib.so`) and tests/conformance
// runs on every in-tree plugin: per kind, the behaviour flexrt relies on (docs/plugins.md, "Testing a plugin").
// Each check creates its own object of the plugin, so one failing check cannot poison the next.
#pragma once

#include "core/src/plugin_loader.hpp"

#include <toml++/toml.h>

#include <filesystem>
#include <functional>
#include <string>
#include <vector>

namespace flexrt::conformance {

// A plugin under test: one descriptor of a loaded library, and the options its objects are created with
// (what the table lacks takes the plugin's declared default).
struct Subject {
    PluginRef ref;
    toml::table options;
    // "storage.aio", the id a user names it by
    std::string id() const;
};

struct CheckResult {
    std::string check;
    bool passed = false;
    std::string detail;  // why it failed (or, when it passed, a note such as a grid shape the plugin refused)
    double seconds = 0;
};

// The checks of a kind, in the order run_checks runs them: name and one line of what it checks.
struct CheckInfo {
    std::string name;
    std::string what;
};
std::vector<CheckInfo> checks_of(flexrt_plugin_kind kind);

// Runs one check on `subject` with files under `scratch` (a writable directory; its content is left
// behind only on failure). Never throws: an escaped exception or a non-OK status is the check's failure.
CheckResult run_check(const Subject& subject, const std::string& check, const std::filesystem::path& scratch);

// Every check of the subject's kind; `on_result` sees each result as it is produced (progress).
std::vector<CheckResult> run_checks(const Subject& subject, const std::filesystem::path& scratch,
                                    const std::function<void(const CheckResult&)>& on_result = {});

}  // namespace flexrt::conformance
