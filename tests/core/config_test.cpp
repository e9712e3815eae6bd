// Config validation: every bad key or value gives one error naming where, which key, and what was expected.
#include "test_util.hpp"

namespace flexrt::test {
namespace {

std::string config_error(const std::string& text, const std::vector<std::string>& overrides = {}) {
    try {
        load_config(text, "test.toml", overrides);
    } catch (const Error& e) {
        EXPECT_EQ(e.status(), FLEXRT_STATUS_INVALID_ARGUMENT);
        return e.what();
    }
    return "";
}

#define EXPECT_HAS(haystack, needle) EXPECT_NE((haystack).find(needle), std::string::npos) << (haystack)

TEST(Config, DefaultsWhenEmpty) {
    Config c = load_config("", "empty", {});
    EXPECT_EQ(c.model.name, "opt-125m");
    EXPECT_EQ(c.policy.gpu_batch_size, 4);
    EXPECT_EQ(c.policy.weights.gpu, 100);
    EXPECT_EQ(c.storage.plugin, "mmap");
    EXPECT_EQ(c.schedule.plugin, "normal");
}

TEST(Config, UnknownKeyListsValidKeysWithFileAndLine) {
    const std::string e = config_error("[policy]\ngpu_batch_size = 2\ngpu_batchsize = 4\n");
    EXPECT_HAS(e, "test.toml:3");
    EXPECT_HAS(e, "policy.gpu_batchsize");
    EXPECT_HAS(e, "unknown key");
    EXPECT_HAS(e, "gpu_batch_size, num_gpu_batches");
}

TEST(Config, UnknownTopLevelTable) {
    const std::string e = config_error("[polcy]\nx = 1\n");
    EXPECT_HAS(e, "test.toml:1");
    EXPECT_HAS(e, "valid keys in the top level");
    EXPECT_HAS(e, "policy");
}

TEST(Config, WrongType) {
    const std::string e = config_error("[policy]\ngpu_batch_size = \"4\"\n");
    EXPECT_HAS(e, "test.toml:2");
    EXPECT_HAS(e, "expected an integer, got a string");
}

TEST(Config, OutOfRange) {
    EXPECT_HAS(config_error("[policy]\nnum_gpu_batches = 0\n"), "out of range; expected 1 to");
    EXPECT_HAS(config_error("[policy.cache]\ngpu = 101\n"), "policy.cache.gpu");
}

TEST(Config, UnknownChoice) {
    const std::string e = config_error("[model]\nname = \"opt-7b\"\n");
    EXPECT_HAS(e, "unknown value \"opt-7b\"");
    EXPECT_HAS(e, "opt-6.7b");
}

TEST(Config, SharesOverOneHundred) {
    const std::string e = config_error("[policy]\nweights = { gpu = 60, cpu = 50 }\n");
    EXPECT_HAS(e, "policy.weights");
    EXPECT_HAS(e, "110 percent is more than 100");
}

TEST(Config, PercentShorthandSetsTheThreeShares) {
    Config c = load_config("[policy]\npercent = [20, 80, 0, 100, 100, 0]\n", "t", {});
    EXPECT_EQ(c.policy.weights.gpu, 20);
    EXPECT_EQ(c.policy.weights.cpu, 80);
    EXPECT_EQ(c.policy.cache.gpu, 0);
    EXPECT_EQ(c.policy.cache.cpu, 100);
    EXPECT_EQ(c.policy.activations.gpu, 100);
    EXPECT_HAS(config_error("[policy]\npercent = [20, 80, 0]\n"), "expected 6 elements");
    EXPECT_HAS(config_error("[policy]\npercent = [20, 80, 0, 100, 100, 0]\n[policy.cache]\ngpu = 5\n"), "conflicts");
    EXPECT_HAS(config_error("[policy]\npercent = [90, 80, 0, 100, 100, 0]\n"), "test.toml:2");
}

TEST(Config, CommandLineOverrides) {
    Config c = load_config("[policy]\ngpu_batch_size = 2\nweights = { gpu = 10, cpu = 0 }\n", "t",
                           {"policy.gpu_batch_size=8", "model.weights=/some/dir", "policy.percent=[0,100,100,0,100,0]"});
    EXPECT_EQ(c.policy.gpu_batch_size, 8);
    EXPECT_EQ(c.model.weights, "/some/dir");  // a bare word is a string
    EXPECT_EQ(c.policy.weights.gpu, 0);       // the --set shorthand replaces the file's table
    EXPECT_EQ(c.policy.weights.cpu, 100);
}

TEST(Config, BadOverrideNamesTheArgument) {
    EXPECT_HAS(config_error("", {"policy.gpu_batch_size=zero"}), "--set policy.gpu_batch_size=zero");
    EXPECT_HAS(config_error("", {"policy.bogus=1"}), "--set policy.bogus=1");
    EXPECT_HAS(config_error("", {"justakey"}), "expected KEY=VALUE");
}

TEST(Config, SyntaxErrorNamesLine) { EXPECT_HAS(config_error("[run]\ngen_len = = 3\n"), "test.toml:2: not valid TOML"); }

TEST(Config, CompressionTakesThePluginAndACompressedCacheMayBeAttendedOnTheHost) {
    Config c = load_config("[policy]\ncompress_weights = true\n[compress]\noptions = { group_size = 32 }\n", "t", {});
    EXPECT_TRUE(c.policy.compress_weights);
    EXPECT_EQ(c.compress.plugin, "group4");
    EXPECT_TRUE(c.compress.options.contains("group_size"));
    EXPECT_TRUE(load_config("[policy]\ncompress_cache = true\n", "t", {}).policy.compress_cache);
    const Config both = load_config("[policy]\ncompress_cache = true\ncpu_cache_compute = true\n", "t", {});
    EXPECT_TRUE(both.policy.compress_cache && both.policy.cpu_cache_compute);
    EXPECT_HAS(config_error("[compress]\nplugn = \"group4\"\n"), "compress.plugn");
}

TEST(Config, EffectiveConfigHasEveryKey) {
    Config c = load_config("[run]\ngen_len = 7\n", "t", {});
    EXPECT_EQ(c.effective.at_path("run.gen_len").value<int64_t>(), 7);
    EXPECT_EQ(c.effective.at_path("policy.cache.gpu").value<double>(), 100.0);
    EXPECT_EQ(c.effective.at_path("storage.offload_dir").value<std::string>(), "/var/tmp/flexrt-offload");
    // Printing and re-reading it gives the same config.
    std::ostringstream os;
    os << c.effective;
    Config again = load_config(os.str(), "printed", {});
    EXPECT_EQ(again.run.gen_len, 7);
}

TEST(PluginOptions, UndeclaredOptionListsTheDeclaredOnes) {
    Config cfg = load_config("[storage.options]\nqueue_depth = 8\n", "test.toml", {});
    PluginRef ref = find_plugin(FLEXRT_PLUGIN_KIND_STORAGE, "mmap", plugin_search_path({}));
    try {
        resolve_plugin_options(cfg, cfg.storage, *ref.desc);
        FAIL() << "no error";
    } catch (const Error& e) {
        const std::string m = e.what();
        EXPECT_HAS(m, "test.toml:2");
        EXPECT_HAS(m, "storage.options.queue_depth");
        EXPECT_HAS(m, "has no option 'queue_depth'");
        EXPECT_HAS(m, "prefault");
    }
}

TEST(PluginOptions, WrongTypeAndDefaults) {
    PluginRef ref = find_plugin(FLEXRT_PLUGIN_KIND_STORAGE, "mmap", plugin_search_path({}));
    Config bad = load_config("[storage.options]\nprefault = 1\n", "test.toml", {});
    EXPECT_THROW(resolve_plugin_options(bad, bad.storage, *ref.desc), Error);
    Config good = load_config("", "t", {});
    PluginOptions o = resolve_plugin_options(good, good.storage, *ref.desc);
    ASSERT_EQ(o.fields.size(), 2u);  // prefault, threads
    EXPECT_EQ(o.fields[0].type, FLEXRT_FIELD_TYPE_BOOL);
    EXPECT_EQ(o.fields[0].value.b, 1);  // the declared defaults
    EXPECT_EQ(o.fields[1].type, FLEXRT_FIELD_TYPE_INT);
    EXPECT_EQ(o.fields[1].value.i, 8);
}

}  // namespace
}  // namespace flexrt::test
