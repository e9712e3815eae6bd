#include "plugin_conformance.hpp"

#include "check.hpp"

#include <flexrt/status.hpp>

#include <chrono>

namespace flexrt::conformance {
namespace {

const std::vector<CheckSpec>& specs_of(flexrt_plugin_kind kind) {
    switch (kind) {
    case FLEXRT_PLUGIN_KIND_STORAGE: return storage_checks();
    case FLEXRT_PLUGIN_KIND_COMPRESS: return compressor_checks();
    case FLEXRT_PLUGIN_KIND_SCHEDULE: return schedule_checks();
    }
    FLEXRT_THROW(FLEXRT_STATUS_INVALID_ARGUMENT, "no conformance suite for plugin kind " + std::to_string(static_cast<int>(kind)));
}

}  // namespace

std::string Subject::id() const { return std::string(plugin_kind_name(ref.desc->kind)) + "." + ref.desc->name; }

std::vector<CheckInfo> checks_of(flexrt_plugin_kind kind) {
    std::vector<CheckInfo> out;
    for (const CheckSpec& s : specs_of(kind)) out.push_back({s.name, s.what});
    return out;
}

CheckResult run_check(const Subject& subject, const std::string& check, const std::filesystem::path& scratch) {
    CheckResult r{check, false, "", 0};
    const auto t0 = std::chrono::steady_clock::now();
    take_last_plugin_error();  // a message left by an earlier check is not this one's
    try {
        const CheckSpec* spec = nullptr;
        for (const CheckSpec& s : specs_of(subject.ref.desc->kind))
            if (check == s.name) spec = &s;
        if (!spec) FLEXRT_THROW(FLEXRT_STATUS_INVALID_ARGUMENT, "no check '" + check + "' for " + subject.id());
        const std::filesystem::path dir = scratch / check;
        std::filesystem::create_directories(dir);
        spec->run(subject, dir, r.detail);
        std::filesystem::remove_all(dir);
        r.passed = true;
    } catch (const CheckFailure& e) {
        r.detail = e.what();
    } catch (const std::exception& e) {  // flexrt::Error carries the plugin's message already
        r.detail = std::string("error: ") + e.what();
    }
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return r;
}

std::vector<CheckResult> run_checks(const Subject& subject, const std::filesystem::path& scratch,
                                    const std::function<void(const CheckResult&)>& on_result) {
    std::vector<CheckResult> out;
    for (const CheckSpec& s : specs_of(subject.ref.desc->kind)) {
        out.push_back(run_check(subject, s.name, scratch));
        if (on_result) on_result(out.back());
    }
    return out;
}

}  // namespace flexrt::conformance
