// Plugin discovery and the ABI handshake, including libraries that must be refused.
#include "test_util.hpp"

#include <flexrt/scheduler.hpp>

namespace flexrt::test {
namespace {

#define EXPECT_HAS(haystack, needle) EXPECT_NE((haystack).find(needle), std::string::npos) << (haystack)

const fs::path kTestPlugins = FLEXRT_TEST_PLUGIN_DIR;

std::string load_error(flexrt_plugin_kind kind, const std::string& name, const std::vector<SearchDir>& search) {
    try {
        find_plugin(kind, name, search);
    } catch (const Error& e) { return e.what(); }
    return "";
}

TEST(PluginLoader, FindsInTreePluginsByName) {
    auto search = plugin_search_path({});
    PluginRef mmap = find_plugin(FLEXRT_PLUGIN_KIND_STORAGE, "mmap", search);
    EXPECT_STREQ(mmap.desc->name, "mmap");
    EXPECT_EQ(mmap.desc->abi_major, FLEXRT_ABI_MAJOR);
    PluginRef normal = find_plugin(FLEXRT_PLUGIN_KIND_SCHEDULE, "normal", search);
    auto sched = create_plugin<IScheduler>(normal, {});
    EXPECT_NE(sched.get(), nullptr);
}

TEST(PluginLoader, MissingPluginListsWhereItLooked) {
    auto search = plugin_search_path({"/nonexistent/dir"});
    const std::string e = load_error(FLEXRT_PLUGIN_KIND_STORAGE, "nvme9000", search);
    EXPECT_HAS(e, "plugin storage.nvme9000 not found");
    EXPECT_HAS(e, "/nonexistent/dir (runtime.plugin_path)");
    EXPECT_HAS(e, "(build dir)");
}

TEST(PluginLoader, EnvironmentPathIsSearched) {
    ::setenv("FLEXRT_PLUGIN_PATH", "/env/one:/env/two", 1);
    auto search = plugin_search_path({});
    ::unsetenv("FLEXRT_PLUGIN_PATH");
    const std::string e = load_error(FLEXRT_PLUGIN_KIND_STORAGE, "nothing", search);
    EXPECT_HAS(e, "/env/one (FLEXRT_PLUGIN_PATH)");
    EXPECT_HAS(e, "/env/two (FLEXRT_PLUGIN_PATH)");
}

// Two libraries that both provide storage.mmap: an error naming both, whichever directories they are in, rather
// than a choice by path order; the same directory listed twice is not a duplicate.
TEST(PluginLoader, DuplicateNameIsAnErrorNamingBothLibraries) {
    TempDir a, b;
    const fs::path mmap = find_plugin(FLEXRT_PLUGIN_KIND_STORAGE, "mmap", plugin_search_path({})).path;
    fs::copy_file(mmap, a / "libflexrt-storage-mine.so");
    fs::copy_file(mmap, b / "libflexrt-storage-theirs.so");
    const std::string both = load_error(FLEXRT_PLUGIN_KIND_STORAGE, "mmap", plugin_search_path({a.path(), b.path()}));
    EXPECT_HAS(both, "plugin storage.mmap is provided by two libraries");
    EXPECT_HAS(both, (a / "libflexrt-storage-mine.so").string() + " (runtime.plugin_path)");
    EXPECT_HAS(both, (b / "libflexrt-storage-theirs.so").string() + " (runtime.plugin_path)");
    // A user's copy beside flexrt's own is a duplicate too.
    EXPECT_HAS(load_error(FLEXRT_PLUGIN_KIND_STORAGE, "mmap", plugin_search_path({a.path()})), "(build dir)");
    // The same directory twice: one library.
    auto same = plugin_search_path({});
    same.push_back(same.back());
    EXPECT_EQ(load_error(FLEXRT_PLUGIN_KIND_STORAGE, "mmap", same), "");
    // Other names in those directories are found as before.
    EXPECT_EQ(load_error(FLEXRT_PLUGIN_KIND_STORAGE, "aio", plugin_search_path({a.path(), b.path()})), "");
}

TEST(PluginLoader, LibraryThatIsNotAPlugin) {
    const std::string path = (kTestPlugins / "libflexrt-storage-notaplugin.so").string();
    const std::string e = load_error(FLEXRT_PLUGIN_KIND_STORAGE, path, {});
    EXPECT_HAS(e, path);
    EXPECT_HAS(e, "is not a flexrt plugin");
}

TEST(PluginLoader, OtherAbiMajorIsRefusedBeforeAnyCall) {
    const std::string path = (kTestPlugins / "libflexrt-storage-abi2.so").string();
    const std::string e = load_error(FLEXRT_PLUGIN_KIND_STORAGE, path, {});
    EXPECT_HAS(e, path);
    EXPECT_HAS(e, "built for flexrt ABI 2.0");
    EXPECT_HAS(e, "this flexrt has ABI 1.0");
}

TEST(PluginLoader, RefusedLibrariesAreReportedWhenSearching) {
    const std::string e = load_error(FLEXRT_PLUGIN_KIND_STORAGE, "abi2", {{kTestPlugins, "test"}});
    EXPECT_HAS(e, "not found");
    EXPECT_HAS(e, "refused");
    EXPECT_HAS(e, "built for flexrt ABI 2.0");
}

TEST(PluginLoader, MissingFileGivenAsPath) { EXPECT_HAS(load_error(FLEXRT_PLUGIN_KIND_STORAGE, "/no/such/libx.so", {}), "does not exist"); }

TEST(PluginLoader, WrongKindAtPath) {
    const std::string lib = (fs::path(FLEXRT_PLUGIN_BUILD_DIR_FOR_TESTS) / "libflexrt-storage-mmap.so").string();
    EXPECT_HAS(load_error(FLEXRT_PLUGIN_KIND_SCHEDULE, lib, {}), "holds no schedule plugin");
}

TEST(PluginLoader, CreateFailureNamesPluginAndCarriesItsMessage) {
    // storage.faulty with an out-of-band option type is caught by the host; a failing create() must be
    // reported with the plugin's own message. Field missing -> the plugin's get<> throws inside create().
    PluginRef ref = find_plugin(FLEXRT_PLUGIN_KIND_STORAGE, "faulty", {{kTestPlugins, "test"}});
    try {
        create_plugin<IStorage>(ref, {});
        FAIL() << "no error";
    } catch (const Error& e) {
        const std::string m = e.what();
        EXPECT_HAS(m, "plugin storage.faulty");
        EXPECT_HAS(m, "failed to start");
        EXPECT_HAS(m, "' is missing");  // the plugin's own words, through the host's log
    }
}

TEST(PluginLoader, ScanListsEveryLibrary) {
    auto libs = scan_plugins({{kTestPlugins, "test"}});
    size_t refused = 0, loaded = 0;
    for (const auto& l : libs) (l.error.empty() ? loaded : refused)++;
    EXPECT_EQ(refused, 2u);  // notaplugin, abi2
    EXPECT_EQ(loaded, 4u);   // faulty, the broken schedule and compressor the conformance tests fail, lookahead2
}

}  // namespace
}  // namespace flexrt::test
