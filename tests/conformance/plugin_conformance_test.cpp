// Every in-tree plugin (and configuration of it) through the conformance suite of its kind, one test per
// check (conformance/); FLEXRT_TEST_PLUGIN=/path/lib.so adds a third party's library. And the suite itself
// must fail plugins that break the rules: a storage that loses writes, a schedule that computes before it
// loads, a compressor that writes past its buffer and takes NaN.
#include "test_util.hpp"

#include "conformance/plugin_conformance.hpp"

#include <cstdlib>

namespace flexrt::test {
namespace {

struct Case {
    std::string name;  // test name: plugin, configuration, check
    flexrt_plugin_kind kind;
    std::string plugin;  // name or library path
    toml::table options;
    std::string check;
};

std::ostream& operator<<(std::ostream& os, const Case& c) { return os << c.name; }

conformance::Subject subject_of(flexrt_plugin_kind kind, const std::string& plugin, toml::table options) {
    auto search = plugin_search_path({});
    search.insert(search.begin(), {FLEXRT_TEST_PLUGIN_DIR, "test"});
    return {find_plugin(kind, plugin, search), std::move(options)};
}

class PluginConformance : public ::testing::TestWithParam<Case> {
protected:
    TempDir dir_;
};

TEST_P(PluginConformance, Check) {
    const Case& c = GetParam();
    const auto r = conformance::run_check(subject_of(c.kind, c.plugin, c.options), c.check, dir_.path());
    EXPECT_TRUE(r.passed) << c.name << ": " << r.detail;
}

std::vector<Case> cases() {
    struct Config {
        const char* label;
        flexrt_plugin_kind kind;
        const char* plugin;
        toml::table options;
    };
    std::vector<Config> configs = {
        {"mmap", FLEXRT_PLUGIN_KIND_STORAGE, "mmap", {}},
        {"mmap_one_thread", FLEXRT_PLUGIN_KIND_STORAGE, "mmap", toml::table{{"threads", 1}}},
        {"aio_overlapped", FLEXRT_PLUGIN_KIND_STORAGE, "aio", toml::table{{"block_size", 65536}, {"queue_depth", 8}, {"threads", 2}}},
        {"aio_sequential", FLEXRT_PLUGIN_KIND_STORAGE, "aio",
         toml::table{{"block_size", 65536}, {"queue_depth", 4}, {"submission", "sequential"}}},
        {"aio_defaults", FLEXRT_PLUGIN_KIND_STORAGE, "aio", {}},
        {"group4", FLEXRT_PLUGIN_KIND_COMPRESS, "group4", {}},
        {"group4_symmetric", FLEXRT_PLUGIN_KIND_COMPRESS, "group4", toml::table{{"symmetric", true}, {"group_size", 32}}},
        {"group4_dim1", FLEXRT_PLUGIN_KIND_COMPRESS, "group4", toml::table{{"group_dim", 1}}},
        {"normal", FLEXRT_PLUGIN_KIND_SCHEDULE, "normal", {}},
        {"overlap_single", FLEXRT_PLUGIN_KIND_SCHEDULE, "overlap_single", {}},
        {"overlap_multi", FLEXRT_PLUGIN_KIND_SCHEDULE, "overlap_multi", {}},
    };
    std::vector<Case> out;
    for (const Config& c : configs)
        for (const auto& check : conformance::checks_of(c.kind))
            out.push_back({std::string(c.label) + "_" + check.name, c.kind, c.plugin, c.options, check.name});
    if (const char* extra = std::getenv("FLEXRT_TEST_PLUGIN"))
        for (const PluginRef& ref : open_plugin_library(extra))
            for (const auto& check : conformance::checks_of(ref.desc->kind))
                out.push_back({std::string("third_party_") + ref.desc->name + "_" + check.name, ref.desc->kind, extra, {}, check.name});
    return out;
}

INSTANTIATE_TEST_SUITE_P(Plugins, PluginConformance, ::testing::ValuesIn(cases()), [](const auto& info) { return info.param.name; });

// The suite fails what breaks the rules, naming the check and what went wrong.
conformance::CheckResult check_broken(flexrt_plugin_kind kind, const char* plugin, const char* check, const fs::path& dir,
                                      toml::table options = {}) {
    return conformance::run_check(subject_of(kind, plugin, std::move(options)), check, dir);
}

TEST(PluginConformanceCatches, AStorageThatLosesWrites) {
    TempDir dir;
    const auto r = check_broken(FLEXRT_PLUGIN_KIND_STORAGE, "faulty", "round_trip", dir.path(), toml::table{{"fail_write_after", 5000}});
    EXPECT_FALSE(r.passed);
    EXPECT_NE(r.detail.find("writing"), std::string::npos) << r.detail;
    EXPECT_FALSE(check_broken(FLEXRT_PLUGIN_KIND_STORAGE, "faulty", "existing_file", dir.path()).passed);  // it only creates files
}

TEST(PluginConformanceCatches, AScheduleThatComputesBeforeItLoads) {
    TempDir dir;
    const auto r = check_broken(FLEXRT_PLUGIN_KIND_SCHEDULE, "broken", "engine_rules", dir.path());
    EXPECT_FALSE(r.passed);
    EXPECT_NE(r.detail.find("compute without its weights"), std::string::npos) << r.detail;
    const auto f = check_broken(FLEXRT_PLUGIN_KIND_SCHEDULE, "broken", "failure", dir.path());
    EXPECT_FALSE(f.passed);
    EXPECT_NE(f.detail.find("run returned OK"), std::string::npos) << f.detail;
}

TEST(PluginConformanceCatches, ACompressorThatOverrunsAndTakesNaN) {
    TempDir dir;
    const auto o = check_broken(FLEXRT_PLUGIN_KIND_COMPRESS, "broken", "no_overrun", dir.path(), toml::table{{"overrun", true}});
    EXPECT_FALSE(o.passed);
    EXPECT_NE(o.detail.find("wrote past"), std::string::npos) << o.detail;
    const auto n = check_broken(FLEXRT_PLUGIN_KIND_COMPRESS, "broken", "non_finite", dir.path());
    EXPECT_FALSE(n.passed);
    EXPECT_NE(n.detail.find("returned OK"), std::string::npos) << n.detail;
    const auto e = check_broken(FLEXRT_PLUGIN_KIND_COMPRESS, "broken", "error_bounds", dir.path());
    EXPECT_FALSE(e.passed);
    EXPECT_NE(e.detail.find("RMS error"), std::string::npos) << e.detail;
}

}  // namespace
}  // namespace flexrt::test
