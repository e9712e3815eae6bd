// What a check is made of, inside the conformance suite: a failed expectation throws CheckFailure with what was
// expected and what happened; a plugin call's status is checked with the plugin's own message attached.
#pragma once

#include "core/src/config.hpp"
#include "core/src/host_log.hpp"
#include "core/src/plugin_loader.hpp"
#include "plugin_conformance.hpp"

#include <flexrt/abi.h>

#include <filesystem>
#include <stdexcept>
#include <string>

namespace flexrt::conformance {

class CheckFailure : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

inline void expect(bool ok, const std::string& what) {
    if (!ok) throw CheckFailure(what);
}

// A plugin call must return OK; otherwise the check fails with the call, the status and the plugin's message.
inline void expect_ok(flexrt_status s, const std::string& call) {
    if (s != FLEXRT_STATUS_OK) {
        const std::string msg = take_last_plugin_error();
        throw CheckFailure(call + " returned " + flexrt_status_name(s) + (msg.empty() ? "" : ": " + msg));
    }
}

// A fresh object of the subject's plugin, created the way a run creates it.
template <typename I>
PluginPtr<I> create(const Subject& s, const char* table) {
    Config cfg;
    PluginOptions opts = resolve_plugin_options(cfg, PluginSlot{table, s.ref.path.string(), s.options}, *s.ref.desc);
    return create_plugin<I>(s.ref, opts.fields);
}

// One check: a name, one line, and the body that throws CheckFailure (or anything else) when the plugin fails it.
struct CheckSpec {
    const char* name;
    const char* what;
    void (*run)(const Subject&, const std::filesystem::path& scratch, std::string& note);
};
const std::vector<CheckSpec>& storage_checks();
const std::vector<CheckSpec>& compressor_checks();
const std::vector<CheckSpec>& schedule_checks();

}  // namespace flexrt::conformance
