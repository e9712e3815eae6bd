// The flexrt binary end to end: bad input gives one clear line on stderr, a documented non-zero exit
// code, and leaves no file in the offload directory; good input prints the figures.
#include "process_util.hpp"
#include "test_util.hpp"

#include "text/gpt2_tokenizer.hpp"
#include "text/json.hpp"

#include <sstream>

#include <sys/wait.h>

namespace flexrt::test {
namespace {

#define EXPECT_HAS(haystack, needle) EXPECT_NE((haystack).find(needle), std::string::npos) << (haystack)

struct CliResult {
    int code;
    std::string out, err;
};

class Cli : public ::testing::Test {
protected:
    // `flexrt ARGS`, quiet and with the test's offload dir; a subcommand (`convert ...`) first, as flexrt wants it.
    CliResult run(const std::string& args) {
        const fs::path out = dir_ / "stdout", err = dir_ / "stderr";
        const bool sub = args.rfind("convert ", 0) == 0;
        const std::string common = sub ? "convert --quiet" : "--quiet --set storage.offload_dir=" + offload().string();
        const std::string cmd = std::string(FLEXRT_BINARY) + " " + common + " " + (sub ? args.substr(8) : args) + " >" + out.string() +
                                " 2>" + err.string() + " </dev/null";
        const int status = std::system(cmd.c_str());
        return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, read_file(out), read_file(err)};
    }
    // `flexrt ARGS` exactly as given (no --quiet, no offload dir), `env` ("K=V ...") set for it.
    CliResult raw(const std::string& args, const std::string& env = "") {
        const fs::path out = dir_ / "raw.out", err = dir_ / "raw.err";
        const int status =
            std::system((env + " " + FLEXRT_BINARY + " " + args + " >" + out.string() + " 2>" + err.string() + " </dev/null").c_str());
        return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, read_file(out), read_file(err)};
    }
    // An error: exit code as documented, exactly one line on stderr, nothing left on disk.
    std::string expect_error(const std::string& args, int code) {
        CliResult r = run(args);
        EXPECT_EQ(r.code, code) << r.err;
        EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
        EXPECT_EQ(r.err.rfind("flexrt: error: ", 0), 0u) << r.err;
        EXPECT_EQ(count_files(offload()), 0u) << "stray files after: " << args;
        return r.err;
    }
    fs::path config(const std::string& text) {
        const fs::path p = dir_ / ("config" + std::to_string(n_++) + ".toml");
        write_file(p, text);
        return p;
    }
    fs::path offload() const { return dir_ / "offload"; }
    // Rank r of a pipeline runs `flexrt --quiet ARGS[r]` with ENV[r] set and an offload dir of its own, all at once
    // (a shell's background jobs, as mpirun would start them); every rank's result.
    std::vector<CliResult> run_ranks_cli(const std::vector<std::string>& args, const std::vector<std::string>& env = {}) {
        std::string script;
        for (size_t r = 0; r < args.size(); ++r) {
            const std::string at = (dir_ / ("rank" + std::to_string(r))).string();
            script += "( " + (r < env.size() ? env[r] : std::string()) + " " + FLEXRT_BINARY + " --quiet --set storage.offload_dir=" + at +
                      ".offload " + args[r] + " >" + at + ".out 2>" + at + ".err </dev/null; echo $? >" + at + ".code ) & ";
        }
        EXPECT_EQ(std::system((script + "wait").c_str()), 0);
        std::vector<CliResult> results;
        for (size_t r = 0; r < args.size(); ++r) {
            const fs::path at = dir_ / ("rank" + std::to_string(r));
            results.push_back(
                {std::stoi(read_file(at.string() + ".code")), read_file(at.string() + ".out"), read_file(at.string() + ".err")});
            EXPECT_EQ(count_files(at.string() + ".offload"), 0u) << "stray files of rank " << r;
        }
        return results;
    }
    // The tiny fixture model as a custom model, reading a copy of its weights (damaged by some tests).
    fs::path tiny_config_file() {
        fs::create_directories(dir_ / "weights");
        for (const auto& e : fs::directory_iterator(fixture_dir() / "weights"))
            fs::copy(e.path(), dir_ / "weights" / e.path().filename(), fs::copy_options::overwrite_existing);
        const opt::OptConfig c = tiny_config();
        return config("[model]\nname = \"custom\"\nweights = \"" + (dir_ / "weights").string() +
                      "\"\nnum_layers = " + std::to_string(c.num_layers) + "\nhidden_size = " + std::to_string(c.hidden_size) +
                      "\nnum_heads = " + std::to_string(c.num_heads) + "\nffn_size = " + std::to_string(c.ffn_size) +
                      "\nvocab_size = " + std::to_string(c.vocab_size) + "\nmax_seq_len = " + std::to_string(c.max_seq_len) +
                      "\n[run]\nprompt_len = 12\ngen_len = 4\n[policy]\ngpu_batch_size = 2\nnum_gpu_batches = 2\n"
                      "percent = [20, 30, 50, 0, 0, 50]\n");
    }
    TempDir dir_;
    int n_ = 0;
};

TEST_F(Cli, TinyModelRunsAndPrintsFigures) {
    const fs::path ids = dir_ / "ids.jsonl";  // dummy prompts' token ids, one line a sequence
    CliResult r = run("--config " + tiny_config_file().string() + " --set run.output='\"" + ids.string() + "\"'");
    ASSERT_EQ(r.code, 0) << r.err;
    const std::string lines = read_file(ids);
    EXPECT_EQ(std::count(lines.begin(), lines.end(), '\n'), 4) << lines;  // gpu_batch_size 2 x num_gpu_batches 2
    EXPECT_HAS(lines, "\"token_ids\": [");
    EXPECT_HAS(r.out, "prefill latency: ");
    EXPECT_HAS(r.out, "decode throughput: ");
    EXPECT_HAS(r.out, "total throughput: ");
    EXPECT_HAS(r.out, "peak host memory: ");
    EXPECT_HAS(r.out, "memory plan: gpu ");
    EXPECT_HAS(r.out, "start-up: ");
    EXPECT_EQ(count_files(offload()), 0u);
}

TEST_F(Cli, TinyModelWithCompressedWeights) {
    CliResult r = run("--config " + tiny_config_file().string() + " --set policy.compress_weights=true");
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_HAS(r.out, "total throughput: ");
    EXPECT_EQ(count_files(offload()), 0u);
    // The compress plugin's options are checked like any plugin's; a missing one is named.
    EXPECT_HAS(expect_error("--set policy.compress_weights=true --set compress.options.group_size=-2", 2), "group_size");
    EXPECT_HAS(expect_error("--set policy.compress_weights=true --set compress.plugin=zip9", 3), "plugin compress.zip9 not found");
}

// Every config shipped in configs/ is valid (keys, plugins and their options) and its policy - tiers,
// compression, cpu_cache_compute, GPU batches - runs end to end, scaled down to run here: OPT-125m's shape,
// 16 + 3 tokens, 4 sequences a GPU batch, on the CPU.
TEST_F(Cli, EveryShippedConfigRunsScaledDown) {
    int seen = 0;
    for (const auto& e : fs::directory_iterator(fs::path(FLEXRT_SOURCE_DIR) / "configs")) {
        if (e.path().extension() != ".toml") continue;
        ++seen;
        CliResult r = run("--config " + e.path().string() +
                          " --set model.name=opt-125m --set run.prompt_len=16 --set run.gen_len=3 --set policy.gpu_batch_size=4"
                          " --set runtime.compute=cpu");
        EXPECT_EQ(r.code, 0) << e.path() << ": " << r.err;
        EXPECT_HAS(r.out, "total throughput: ");
        EXPECT_EQ(count_files(offload()), 0u) << e.path();
    }
    EXPECT_GE(seen, 7) << "configs/ holds the configs users run";
}

// The overlapped schedules run from the config like any plugin; one that does not fit the policy says which does.
TEST_F(Cli, OverlappedSchedules) {
    CliResult r = run("--set schedule.plugin=overlap_multi --set run.gen_len=4");
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_HAS(r.out, "total throughput: ");
    EXPECT_HAS(expect_error("--set schedule.plugin=overlap_single", 2), "use schedule overlap_multi");
    EXPECT_HAS(expect_error("--set schedule.plugin=overlap_multi --set policy.num_gpu_batches=1", 2), "use schedule overlap_single");
}

// JSON structure without a JSON library: brackets balance outside strings, escapes respected.
bool balanced_json(const std::string& s) {
    int depth = 0;
    bool in_string = false;
    for (size_t i = 0; i < s.size(); ++i) {
        const char c = s[i];
        if (in_string) {
            if (c == '\\')
                ++i;
            else if (c == '"')
                in_string = false;
        } else if (c == '"')
            in_string = true;
        else if (c == '{' || c == '[')
            ++depth;
        else if ((c == '}' || c == ']') && --depth < 0)
            return false;
    }
    return depth == 0 && !in_string;
}

// --trace: a Chrome trace of the generation, a track per thread (the schedule's, each transfer worker's), the
// primitives by grid point, the transfers with their tiers and sizes, the steps; written whole (no partial
// file); a directory that cannot take it is refused before the run.
TEST_F(Cli, TraceIsAChromeTraceOfTheRun) {
    const fs::path file = dir_ / "timeline.json";
    CliResult r = run("--set schedule.plugin=overlap_multi --set run.gen_len=3 --trace " + file.string());
    ASSERT_EQ(r.code, 0) << r.err;
    const std::string t = read_file(file);
    EXPECT_TRUE(balanced_json(t)) << t.substr(0, 200);
    EXPECT_HAS(t, "\"traceEvents\"");
    EXPECT_HAS(t, "\"name\": \"schedule and compute (host)\"");
    EXPECT_HAS(t, "transfer worker");
    EXPECT_HAS(t, "\"name\": \"compute_layer (0, 0, 0)\"");
    EXPECT_HAS(t, "\"name\": \"load_weight (");
    EXPECT_HAS(t, "\"cat\": \"transfer\"");
    EXPECT_HAS(t, "disk -> gpu ");  // tier_name()s: the compute tier is "gpu" as in FlexLLMGen
    EXPECT_HAS(t, "\"name\": \"decode step 2\"");
    if (r.out.find("compute device: cuda") != std::string::npos) {  // the GPU's own track, its ops timed by the device
        EXPECT_HAS(t, "\"name\": \"GPU: compute stream\"");
        EXPECT_HAS(t, "\"cat\": \"gpu\", \"name\": \"linear\"");
        EXPECT_HAS(t, "\"cat\": \"gpu\", \"name\": \"attn_decode\"");
    }
    EXPECT_FALSE(fs::exists(file.string() + ".partial"));
    EXPECT_HAS(expect_error("--trace " + (dir_ / "no-such-dir" / "t.json").string(), 2), "is not a writable directory");
}

// --dry-run: the memory plan without running (nothing allocated, nothing left on disk); a plan that does not
// fit says by how much and what each remedy frees, and a run with it stops before allocating.
TEST_F(Cli, DryRunPrintsTheMemoryPlan) {
    CliResult r = run("--dry-run");
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_HAS(r.out, "memory plan");
    EXPECT_HAS(r.out, "GiB  weights");
    EXPECT_HAS(r.out, "GiB  KV cache");
    EXPECT_HAS(r.out, "GiB  workspace");
    EXPECT_HAS(r.out, ": fits");
    EXPECT_EQ(r.out.find("total throughput"), std::string::npos) << "a dry run does not run";
    EXPECT_EQ(count_files(offload()), 0u);
    const std::string tight = "--set runtime.compute=cuda --set runtime.gpu_memory_gib=0.01";
    CliResult over = run("--dry-run " + tight);
    EXPECT_EQ(over.code, 6) << over.err;
    EXPECT_HAS(over.out, "compute device: needs ");
    EXPECT_HAS(over.out, "does not fit, ");
    EXPECT_HAS(over.out, "1. policy.compress_weights = true (4-bit group-wise weights): frees ");
    EXPECT_HAS(over.out, "policy.weights.gpu = 0 (those weights on disk): frees ");
    EXPECT_HAS(expect_error(tight, 6), "the memory plan does not fit: compute device needs ");
}

TEST_F(Cli, UnknownKey) {
    const std::string e = expect_error("--config " + config("[run]\ngen_lenn = 4\n").string(), 2);
    EXPECT_HAS(e, ".toml:2: run.gen_lenn: unknown key");
    EXPECT_HAS(e, "gen_len");
}

TEST_F(Cli, WrongType) { EXPECT_HAS(expect_error("--set run.gen_len=true", 2), "expected an integer, got a boolean"); }

TEST_F(Cli, PercentagesOverOneHundred) { EXPECT_HAS(expect_error("--set policy.percent=[60,50,100,0,100,0]", 2), "more than 100"); }

TEST_F(Cli, MissingPluginSaysWhereItLooked) {
    const std::string e = expect_error("--set storage.plugin=nvme9000", 3);
    EXPECT_HAS(e, "plugin storage.nvme9000 not found");
    EXPECT_HAS(e, "(build dir)");
}

TEST_F(Cli, LibraryThatIsNotAPlugin) {
    EXPECT_HAS(expect_error(std::string("--set storage.plugin=") + FLEXRT_TEST_PLUGIN_DIR + "/libflexrt-storage-notaplugin.so", 3),
               "is not a flexrt plugin");
}

TEST_F(Cli, PluginWithAnotherAbiMajor) {
    EXPECT_HAS(expect_error(std::string("--set storage.plugin=") + FLEXRT_TEST_PLUGIN_DIR + "/libflexrt-storage-abi2.so", 3),
               "built for flexrt ABI 2.0");
}

TEST_F(Cli, UndeclaredPluginOption) { EXPECT_HAS(expect_error("--set storage.options.queue_depth=4", 2), "has no option 'queue_depth'"); }

TEST_F(Cli, MissingWeightFile) {
    const fs::path cfg = tiny_config_file();
    fs::remove(dir_ / "weights" / "decoder.layers.2.fc2.weight");
    EXPECT_HAS(expect_error("--config " + cfg.string(), 3), "weight decoder.layers.2.fc2.weight: no file");
}

TEST_F(Cli, TruncatedWeightFile) {
    const fs::path cfg = tiny_config_file();
    fs::resize_file(dir_ / "weights" / "decoder.embed_tokens.weight", 5000);
    EXPECT_HAS(expect_error("--config " + cfg.string(), 4), "is truncated");
}

TEST_F(Cli, WrongShapeWeightFile) {
    const fs::path cfg = tiny_config_file();
    std::vector<uint16_t> zeros(64 * 64);
    write_npy((dir_ / "weights" / "decoder.layers.0.self_attn.k_proj.bias").string(), DType::f16, {64, 64}, zeros.data());
    const std::string e = expect_error("--config " + cfg.string(), 4);
    EXPECT_HAS(e, "decoder.layers.0.self_attn.k_proj.bias: shape (64, 64)");
    EXPECT_HAS(e, "expected (64,)");
}

TEST_F(Cli, WrongDtypeWeightFile) {
    const fs::path cfg = tiny_config_file();
    std::vector<double> zeros(64);
    write_npy((dir_ / "weights" / "decoder.layer_norm.bias").string(), DType::f64, {64}, zeros.data());
    EXPECT_HAS(expect_error("--config " + cfg.string(), 4), "dtype float64");
}

TEST_F(Cli, OffloadDirIsAFile) {
    write_file(dir_ / "afile", "x");
    EXPECT_HAS(expect_error("--set storage.offload_dir=" + (dir_ / "afile").string(), 2), "is not a directory");
}

TEST_F(Cli, OffloadDirNotWritable) {
    // /proc refuses new directories even to root.
    EXPECT_HAS(expect_error("--set storage.offload_dir=/proc/flexrt-offload", 5), "cannot be created");
}

TEST_F(Cli, PrintConfigShowsEffectiveValuesAndPluginDefaults) {
    CliResult r = run("--print-config --set policy.gpu_batch_size=8");
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_HAS(r.out, "gpu_batch_size = 8");
    EXPECT_HAS(r.out, "prefault = true");
    EXPECT_HAS(r.out, "[policy.weights]");
}

TEST_F(Cli, ListPlugins) {
    CliResult r = run("--list-plugins");
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_HAS(r.out, "storage.mmap  version 0.1.0  ABI 1.0");
    EXPECT_HAS(r.out, "schedule.normal");
    EXPECT_HAS(r.out, "option prefault (bool, default true)");
    EXPECT_EQ(r.out.find("duplicate: "), std::string::npos) << r.out;
    // A copy of storage.mmap on the plugin path: listed as a duplicate, with both libraries.
    const fs::path mine = dir_ / "mine";
    fs::create_directories(mine);
    const fs::path mmap = find_plugin(FLEXRT_PLUGIN_KIND_STORAGE, "mmap", plugin_search_path({})).path;
    fs::copy_file(mmap, mine / "libflexrt-storage-mycopy.so");
    r = run("--list-plugins --set 'runtime.plugin_path=[\"" + mine.string() + "\"]'");
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_HAS(r.out, "duplicate: storage.mmap is in 2 libraries");
    EXPECT_HAS(r.out, (mine / "libflexrt-storage-mycopy.so").string());
}

TEST_F(Cli, DiskFootprintBeyondFreeSpace) {
    // OPT-175B with every weight on disk needs ~325 GiB: refused by the memory plan before anything is written.
    const std::string e = expect_error("--set model.name=opt-175b --set policy.percent=[0,0,100,0,100,0]", 5);
    EXPECT_HAS(e, "the memory plan does not fit: disk needs");
    EXPECT_HAS(e, "free space at");
}

TEST_F(Cli, BadCommandLine) { EXPECT_HAS(expect_error("--no-such-flag", 2), "see --help"); }

}  // namespace
}  // namespace flexrt::test

namespace flexrt::test {
namespace {

// SIGINT in the middle of a run: the run stops within a step, exits 130, and removes its offload files.
TEST(CliSignal, InterruptCleansUp) {
    TempDir dir;
    write_file(dir / "run.sh", std::string(FLEXRT_BINARY) + " --progress --set storage.offload_dir=" + (dir / "offload").string() +
                                   " --set run.gen_len=200 --set run.prompt_len=64 >" + (dir / "out").string() + " 2>" +
                                   (dir / "err").string() + " &\npid=$!\nfor i in $(seq 600); do grep -q 'decode step' " +
                                   (dir / "err").string() + " && break; sleep 0.1; done\nkill -INT $pid\nwait $pid\n");
    const int status = std::system(("bash " + (dir / "run.sh").string()).c_str());
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 130) << read_file(dir / "err");
    EXPECT_NE(read_file(dir / "err").find("interrupted"), std::string::npos) << read_file(dir / "err");
    EXPECT_EQ(count_files(dir / "offload"), 0u);
}

// --version names the build; --json writes the run's result machine-readable (the figures equal the printed
// ones, the effective config, the memory per tier), whole; a --json path that cannot be written is refused
// before the run.
TEST_F(Cli, VersionAndJsonResult) {
    CliResult v = run("--version");
    ASSERT_EQ(v.code, 0) << v.err;
    EXPECT_HAS(v.out, "flexrt 0.1.0 (git ");
    EXPECT_HAS(v.out, "built with ");
    const fs::path json = dir_ / "result.json";
    CliResult r = run("--config " + tiny_config_file().string() + " --json " + json.string());
    ASSERT_EQ(r.code, 0) << r.err;
    const text::JsonValue j = text::parse_json(read_file(json), json.string());
    EXPECT_EQ(j.find("flexrt")->find("version")->text, "0.1.0");
    EXPECT_EQ(j.find("config")->find("run")->find("gen_len")->number, 4);
    const double total = j.find("figures")->find("total_tok_s")->number;
    const size_t at = r.out.find("total throughput: ");
    ASSERT_NE(at, std::string::npos);
    EXPECT_NEAR(total, std::stod(r.out.substr(at + 18)), 0.001);
    EXPECT_GT(j.find("memory_gib")->find("peak")->find("host_process")->number, 0.0);
    EXPECT_NE(j.find("memory_gib")->find("plan")->find("disk"), nullptr);
    EXPECT_FALSE(fs::exists(json.string() + ".partial"));
    EXPECT_HAS(expect_error("--json " + (dir_ / "no-such-dir" / "r.json").string(), 2), "--json");
}

// The subcommands take one pattern: `flexrt <name> [options]`; list-plugins is the run's --list-plugins.
TEST_F(Cli, SubcommandsFollowOnePattern) {
    auto shell = [&](const std::string& args) {
        const CliResult r = raw(args);
        return std::make_pair(r.code, r.out + r.err);
    };
    const auto plan = shell("--dry-run --set storage.offload_dir=" + offload().string());
    EXPECT_EQ(plan.first, 0) << plan.second;
    EXPECT_HAS(plan.second, "memory plan");
    const auto plugins = shell("list-plugins");
    EXPECT_EQ(plugins.first, 0) << plugins.second;
    EXPECT_HAS(plugins.second, "storage.aio");
    const auto help = shell("--help");
    for (const char* name :
         {"flexrt plan", "flexrt calibrate", "flexrt list-plugins", "flexrt convert", "flexrt iobench", "flexrt plugin-test"})
        EXPECT_HAS(help.second, name);
    EXPECT_EQ(shell("convert --help").first, 0);
    EXPECT_EQ(shell("iobench --help").first, 0);
    EXPECT_EQ(shell("plugin-test --help").first, 0);
    EXPECT_EQ(shell("plan --help").first, 0);
    EXPECT_EQ(shell("calibrate --help").first, 0);
}

// flexrt calibrate writes a hardware profile; flexrt plan reuses it while the machine is the same and
// calibrates again when it is not; the plan is a policy that runs (its TOML, pasted into a config); a config
// saying policy = "auto" runs the planner's choice; tiers too small for the model are an answer, not a crash.
TEST_F(Cli, CalibratePlanAndAutoPolicy) {
    const fs::path profile = dir_ / "profile" / "hw.toml";
    auto shell = [&](const std::string& args) { return raw(args, "FLEXRT_PROFILE=" + profile.string()); };
    const std::string where = " --set storage.offload_dir='\"" + offload().string() + "\"'";
    const auto cal = shell("calibrate --disk-mib 64" + where);
    ASSERT_EQ(cal.code, 0) << cal.err;
    EXPECT_HAS(cal.out, "GEMM");
    ASSERT_TRUE(fs::exists(profile));
    const auto plan = shell("plan --model opt-125m --prompt-len 32 --gen-len 8 --max-block 8 --disk-mib 64" + where);
    ASSERT_EQ(plan.code, 0) << plan.err;
    EXPECT_EQ(plan.err.find("calibrating"), std::string::npos) << "the saved profile was not reused: " << plan.err;
    EXPECT_HAS(plan.out, "best policy: ");
    EXPECT_HAS(plan.out, "memory plan: compute ");
    const auto toml_at = plan.out.find("[policy]"), end = plan.out.find("policies ranked");
    ASSERT_NE(toml_at, std::string::npos);
    // The snippet runs as it is.
    const fs::path cfg =
        config("[model]\nname = \"opt-125m\"\n[run]\nprompt_len = 32\ngen_len = 8\n" + plan.out.substr(toml_at, end - toml_at));
    const CliResult ran = run("--config " + cfg.string());
    EXPECT_EQ(ran.code, 0) << ran.err;
    EXPECT_HAS(ran.out, "total throughput");
    // Another machine's profile: calibrated again.
    std::string text = read_file(profile);
    const auto fp = text.find("fingerprint = ");
    text.replace(fp, text.find('\n', fp) - fp, "fingerprint = 'another machine'");
    write_file(profile, text);
    EXPECT_HAS(shell("plan --model opt-125m --disk-mib 64" + where).err, "calibrating");
    // policy = "auto".
    const fs::path auto_cfg =
        config("policy = \"auto\"\n[model]\nname = \"opt-125m\"\n[run]\nprompt_len = 16\ngen_len = 4\nmax_block = 8\n");
    const auto automatic = shell("--progress --config " + auto_cfg.string() + where);
    EXPECT_EQ(automatic.code, 0) << automatic.err;
    EXPECT_HAS(automatic.err, "policy = \"auto\": the planner's choice");
    EXPECT_HAS(automatic.out, "total throughput");
    EXPECT_HAS(automatic.err, "gpu_batch_size = ");
    // Nothing fits.
    const auto none = shell("plan --model opt-66b --gpu-mem 0.5 --host-mem 1 --disk 1" + where);
    EXPECT_EQ(none.code, 6) << none.out << none.err;
    EXPECT_HAS(none.out, "no policy fits");
}

// flexrt plugin-test: a library's every plugin through its conformance suite, a line per check; exit 0 when all
// pass, 1 (and the failed check, with why) when one fails; a plugin by kind.name; a missing library an error.
TEST_F(Cli, PluginTestRunsTheConformanceSuiteOfEachPluginInALibrary) {
    auto shell = [&](const std::string& args) {
        const CliResult r = raw("plugin-test " + args);
        return std::make_pair(r.code, r.out + r.err);
    };
    const fs::path builtin = find_plugin(FLEXRT_PLUGIN_KIND_SCHEDULE, "normal", plugin_search_path({})).path;
    const auto good = shell(builtin.string());
    EXPECT_EQ(good.first, 0) << good.second;
    for (const char* id : {"schedule.normal", "schedule.overlap_single", "schedule.overlap_multi"}) EXPECT_HAS(good.second, id);
    EXPECT_HAS(good.second, "plugin-test: 3 plugin(s), 9 check(s): 9 passed, 0 failed");
    const auto bad = shell(std::string(FLEXRT_TEST_PLUGIN_DIR) + "/libflexrt-schedule-broken.so");
    EXPECT_EQ(bad.first, 1) << bad.second;
    EXPECT_HAS(bad.second, "FAIL  engine_rules");
    EXPECT_HAS(bad.second, "compute without its weights");
    EXPECT_HAS(bad.second, "0 passed, 3 failed");
    const auto one = shell("storage.mmap --check faults --option threads=2");
    EXPECT_EQ(one.first, 0) << one.second;
    EXPECT_HAS(one.second, "PASS  faults");
    EXPECT_HAS(one.second, "1 check(s): 1 passed");
    const auto bad_option = shell("storage.mmap --check faults --option threads=two");
    EXPECT_NE(bad_option.first, 0);
    EXPECT_HAS(bad_option.second, "threads");
    const auto missing = shell("/no/such/libflexrt-storage-x.so");
    EXPECT_EQ(missing.first, 3) << missing.second;
    EXPECT_HAS(missing.second, "no library /no/such/libflexrt-storage-x.so");
}

// flexrt convert: the golden fixture's weights as an HF checkpoint (sharded, F16) to a numpy directory whose
// data is the fixture's, bit for bit, and from which a run gives the tokens of a run from the fixture itself.
// Killed half-way (simulated: a file deleted, one truncated, a stray .partial, a manifest line cut short), a
// re-run redoes exactly those and skips the rest; a checkpoint of another model is refused before writing.
TEST_F(Cli, ConvertHfCheckpointResumesAndRefusesTheWrongModel) {
    const opt::OptConfig c = tiny_config();
    const std::string model =
        "--set model.name='\"custom\"' --set model.num_layers=" + std::to_string(c.num_layers) +
        " --set model.hidden_size=" + std::to_string(c.hidden_size) + " --set model.num_heads=" + std::to_string(c.num_heads) +
        " --set model.ffn_size=" + std::to_string(c.ffn_size) + " --set model.vocab_size=" + std::to_string(c.vocab_size) +
        " --set model.max_seq_len=" + std::to_string(c.max_seq_len);
    const fs::path out = dir_ / "converted";
    const std::string convert =
        "convert --from " + (fixture_dir("tiny_opt_hf") / "sharded").string() + " --to " + out.string() + " " + model;
    CliResult r = run(convert);
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_HAS(r.out, "converted 52 tensors, skipped 0");
    for (const auto& e : fs::directory_iterator(fixture_dir() / "weights")) {
        Shape a, b;
        EXPECT_EQ(read_npy((out / e.path().filename()).string(), DType::f16, &a), read_npy(e.path().string(), DType::f16, &b)) << e.path();
        EXPECT_EQ(a, b);
    }
    auto tokens = [&](const fs::path& weights) {
        CliResult t = run(model + " --set model.weights='\"" + weights.string() + "\"' --set run.prompt_len=8 --set run.gen_len=4");
        EXPECT_EQ(t.code, 0) << t.err;
        return t.out.substr(t.out.find("first sequence's tokens"));
    };
    EXPECT_EQ(tokens(out), tokens(fixture_dir() / "weights"));

    fs::remove(out / "decoder.layers.1.fc1.weight");
    fs::resize_file(out / "decoder.layers.2.fc2.weight", 100);
    write_file(out / "decoder.layers.0.fc1.weight.partial", "half");
    std::ofstream(out / "flexrt-convert.manifest", std::ios::app) << "decoder.layers.0.fc2.bias\t12";  // cut by the kill
    r = run(convert);
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_HAS(r.out, "converted 2 tensors, skipped 50 already converted and verified");
    EXPECT_FALSE(fs::exists(out / "decoder.layers.0.fc1.weight.partial"));
    EXPECT_EQ(tokens(out), tokens(fixture_dir() / "weights"));

    const fs::path other = dir_ / "other";
    const std::string err = expect_error("convert --from " + (fixture_dir("tiny_opt_hf") / "single").string() + " --to " + other.string() +
                                             " " + model + " --set model.num_layers=2",
                                         4);
    EXPECT_HAS(err, "holds 16 tensors that custom does not have");
    EXPECT_FALSE(fs::exists(other));
}

// A conversion killed with SIGKILL part-way leaves no file that looks complete (every file without .partial is
// a whole .npy) and resumes: the re-run converts only the rest, and the result is byte for byte a conversion
// that was never killed. The checkpoint (a custom 16-layer model, ~220 MB of F32) is big enough to be caught
// in the middle.
TEST_F(Cli, ConvertKilledMidwayResumes) {
    const int64_t layers = 16, h = 512, f = 2048, vocab = 8192, positions = 130;
    const std::string model = "--set model.name='\"custom\"' --set model.num_layers=" + std::to_string(layers) +
                              " --set model.hidden_size=" + std::to_string(h) +
                              " --set model.num_heads=8 --set model.ffn_size=" + std::to_string(f) +
                              " --set model.vocab_size=" + std::to_string(vocab) + " --set model.max_seq_len=128";
    std::vector<std::pair<std::string, std::vector<int64_t>>> tensors = {{"decoder.embed_tokens.weight", {vocab, h}},
                                                                         {"decoder.embed_positions.weight", {positions, h}},
                                                                         {"decoder.final_layer_norm.weight", {h}},
                                                                         {"decoder.final_layer_norm.bias", {h}}};
    for (int64_t l = 0; l < layers; ++l) {
        const std::string p = "decoder.layers." + std::to_string(l) + ".";
        for (const char* proj : {"q_proj", "k_proj", "v_proj", "out_proj"})
            tensors.push_back({p + "self_attn." + proj + ".weight", {h, h}}), tensors.push_back({p + "self_attn." + proj + ".bias", {h}});
        for (const char* ln : {"self_attn_layer_norm", "final_layer_norm"})
            tensors.push_back({p + ln + ".weight", {h}}), tensors.push_back({p + ln + ".bias", {h}});
        tensors.push_back({p + "fc1.weight", {f, h}}), tensors.push_back({p + "fc1.bias", {f}});
        tensors.push_back({p + "fc2.weight", {h, f}}), tensors.push_back({p + "fc2.bias", {h}});
    }
    std::string header = "{";
    uint64_t at = 0;
    for (const auto& [name, shape] : tensors) {
        uint64_t n = 1;
        std::string dims;
        for (const int64_t d : shape) n *= static_cast<uint64_t>(d), dims += (dims.empty() ? "" : ", ") + std::to_string(d);
        header += (at ? ", \"model." : "\"model.") + name + "\": {\"dtype\": \"F32\", \"shape\": [" + dims + "], \"data_offsets\": [" +
                  std::to_string(at) + ", " + std::to_string(at + 4 * n) + "]}";
        at += 4 * n;
    }
    header += "}";
    const fs::path hf = dir_ / "hf";
    fs::create_directories(hf);
    {
        std::ofstream out(hf / "model.safetensors", std::ios::binary);
        const uint64_t len = header.size();
        for (int i = 0; i < 8; ++i) out.put(static_cast<char>((len >> (8 * i)) & 0xff));
        out << header;
        std::vector<float> block(1 << 20);
        for (size_t i = 0; i < block.size(); ++i) block[i] = static_cast<float>(static_cast<int>(i % 2001) - 1000) * 1e-3f;
        for (uint64_t done = 0; done < at; done += block.size() * 4)
            out.write(reinterpret_cast<const char*>(block.data()),
                      static_cast<std::streamsize>(std::min<uint64_t>(block.size() * 4, at - done)));
    }
    const fs::path out = dir_ / "np", clean = dir_ / "np_clean", script = dir_ / "kill.sh";
    const std::string convert = std::string(FLEXRT_BINARY) + " convert --quiet --from " + hf.string() + " " + model;
    write_file(script, convert + " --to " + out.string() + " >/dev/null 2>&1 &\npid=$!\nfor i in $(seq 2000); do\n" + "  [ $(wc -l <" +
                           (out / "flexrt-convert.manifest").string() + " 2>/dev/null || echo 0) -ge 3 ] && break; sleep 0.005\ndone\n" +
                           "kill -9 $pid\nwait $pid\necho $? >" + (dir_ / "status").string() + "\n");
    ASSERT_EQ(std::system(("bash " + script.string()).c_str()), 0);
    ASSERT_EQ(read_file(dir_ / "status"), "137\n") << "the conversion finished before it could be killed";
    size_t whole = 0;
    for (const auto& e : fs::directory_iterator(out)) {
        const std::string name = e.path().filename().string();
        if (name == "flexrt-convert.manifest" || e.path().extension() == ".partial") continue;
        Shape shape;
        EXPECT_NO_THROW(read_npy(e.path().string(), DType::f16, &shape)) << name << " looks complete but is not";
        ++whole;
    }
    EXPECT_GE(whole, 3u);
    EXPECT_LT(whole, tensors.size());
    CliResult r = run("convert --from " + hf.string() + " --to " + out.string() + " " + model);
    ASSERT_EQ(r.code, 0) << r.err;
    // What the manifest recorded is skipped (a file renamed just before the kill, unrecorded, is redone).
    const size_t at_skipped = r.out.find("skipped ");
    ASSERT_NE(at_skipped, std::string::npos) << r.out;
    const size_t skipped = std::stoul(r.out.substr(at_skipped + 8));
    EXPECT_GE(skipped, 3u) << r.out;
    EXPECT_LE(skipped, whole) << r.out;
    r = run("convert --from " + hf.string() + " --to " + clean.string() + " " + model);
    ASSERT_EQ(r.code, 0) << r.err;
    for (const auto& e : fs::directory_iterator(clean)) {
        if (e.path().filename() == "flexrt-convert.manifest") continue;
        EXPECT_EQ(read_file(e.path()), read_file(out / e.path().filename())) << e.path().filename();
    }
    EXPECT_EQ(std::distance(fs::directory_iterator(out), fs::directory_iterator()),
              std::distance(fs::directory_iterator(clean), fs::directory_iterator()));
}

// Text in, text out (run.prompts, --prompt, run.output) on a small custom model whose vocabulary holds the
// fixture tokenizer's (tests/data/tokenizer, checked against HF in text_tests).
class TextCli : public Cli {
protected:
    fs::path text_config(int64_t gpu_batch_size) {
        return config(
            "[model]\nname = \"custom\"\nnum_layers = 2\nhidden_size = 64\nnum_heads = 4\nffn_size = 128\nvocab_size = 1600\n"
            "max_seq_len = 128\ntokenizer = \"" +
            (fs::path(FLEXRT_TEST_DATA_DIR) / "tokenizer").string() + "\"\n[run]\ngen_len = 5\n[policy]\ngpu_batch_size = " +
            std::to_string(gpu_batch_size) + "\nnum_gpu_batches = 1\nweights = { gpu = 50, cpu = 25 }\n");
    }
    static std::vector<text::JsonValue> jsonl(const std::string& s) {
        std::vector<text::JsonValue> out;
        std::istringstream in(s);
        for (std::string line; std::getline(in, line);) out.push_back(text::parse_json(line, "results"));
        return out;
    }
    const text::Gpt2Tokenizer tok_ = text::Gpt2Tokenizer::from_files(fs::path(FLEXRT_TEST_DATA_DIR) / "tokenizer" / "vocab.json",
                                                                     fs::path(FLEXRT_TEST_DATA_DIR) / "tokenizer" / "merges.txt");
};

// Prompts of different lengths from a text file and the command line, in two blocks (batch 2) or one (batch
// 4): one JSONL result each, in order, whose ids decode to its text; and the same tokens either way - a
// sequence's output does not depend on the prompts it is batched with.
TEST_F(TextCli, PromptsInJsonlOutSameTokensWhateverTheBatching) {
    const fs::path prompts = dir_ / "prompts.txt";
    write_file(prompts, "Hello world\n\n  The quick brown fox jumps over the lazy dog\r\nnumbers 12345 and caf\xc3\xa9\n");
    std::vector<std::vector<std::string>> texts_by_run;
    std::vector<std::vector<std::string>> ids_by_run;
    for (int64_t gbs : {2, 4}) {
        const fs::path out = dir_ / ("out" + std::to_string(gbs) + ".jsonl");
        CliResult r = run("--config " + text_config(gbs).string() + " --prompt 'From the CLI' --set run.prompts='\"" + prompts.string() +
                          "\"' --set run.output='\"" + out.string() + "\"'");
        ASSERT_EQ(r.code, 0) << r.err;
        EXPECT_FALSE(fs::exists(out.string() + ".partial"));
        const auto results = jsonl(read_file(out));
        ASSERT_EQ(results.size(), 4u);
        const std::vector<std::string> expected = {"From the CLI", "Hello world", "  The quick brown fox jumps over the lazy dog",
                                                   "numbers 12345 and caf\xc3\xa9"};
        texts_by_run.emplace_back(), ids_by_run.emplace_back();
        for (size_t i = 0; i < results.size(); ++i) {
            const auto& v = results[i];
            EXPECT_EQ(v.find("prompt")->text, expected[i]);
            EXPECT_EQ(v.find("prompt_tokens")->number, static_cast<double>(tok_.encode(expected[i]).size()));
            std::vector<int32_t> ids;
            std::string ids_text;
            for (const auto& x : v.find("token_ids")->items) ids.push_back(static_cast<int32_t>(x.number)), ids_text += x.text + " ";
            EXPECT_EQ(v.find("text")->text, tok_.decode(ids));
            const std::string reason = v.find("finish_reason")->text;
            EXPECT_TRUE(reason == "length" ? ids.size() == 5 : reason == "stop" && ids.size() < 5) << reason << " " << ids.size();
            EXPECT_EQ(v.find("block")->number, gbs == 2 ? static_cast<double>(i / 2) : 0.0);
            texts_by_run.back().push_back(v.find("text")->text);
            ids_by_run.back().push_back(ids_text);
        }
    }
    EXPECT_EQ(ids_by_run[0], ids_by_run[1]);
    // Without run.output: readable text on stdout, each completion after its prompt.
    CliResult r = run("--config " + text_config(4).string() + " --prompt 'Hello world'");
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_HAS(r.out, "--- prompt 1 (");
    EXPECT_HAS(r.out, "Hello world" + texts_by_run[0][1]);
}

// run.stop_strings: a completion ends where a stop string first appears - its text up to the string (left
// out), its ids a prefix of the unstopped run's, finish_reason "stop" - and a completion without it runs on.
TEST_F(TextCli, StopStringsEndCompletions) {
    auto results = [&](const std::string& extra) {
        const fs::path out = dir_ / "stop.jsonl";
        CliResult r =
            run("--config " + text_config(2).string() + " --prompt 'Hello world' --prompt 'The quick brown fox' --set run.gen_len=8" +
                " --set run.output='\"" + out.string() + "\"' " + extra);
        EXPECT_EQ(r.code, 0) << r.err;
        return jsonl(read_file(out));
    };
    const auto plain = results("");
    ASSERT_EQ(plain.size(), 2u);
    const std::string first = plain[0].find("text")->text;
    ASSERT_GE(first.size(), 4u) << "the dummy model's completion is too short to cut";
    const std::string stop = first.substr(2, 2);
    const auto cut = results("--set 'run.stop_strings=[\"" + stop + "\"]'");
    ASSERT_EQ(cut.size(), 2u);
    for (size_t i = 0; i < 2; ++i) {
        const std::string whole = plain[i].find("text")->text;
        const size_t at = whole.find(stop);
        const auto& ids = cut[i].find("token_ids")->items;
        const auto& all = plain[i].find("token_ids")->items;
        ASSERT_LE(ids.size(), all.size());
        for (size_t k = 0; k < ids.size(); ++k) EXPECT_EQ(ids[k].text, all[k].text) << "prompt " << i << " id " << k;
        if (at == std::string::npos) {
            EXPECT_EQ(cut[i].find("text")->text, whole);
            EXPECT_EQ(cut[i].find("finish_reason")->text, plain[i].find("finish_reason")->text);
        } else {
            EXPECT_EQ(cut[i].find("text")->text, whole.substr(0, at)) << "prompt " << i;
            EXPECT_EQ(cut[i].find("finish_reason")->text, "stop");
        }
    }
}

TEST_F(TextCli, BadPromptsAndMissingTokenizerAreClearErrors) {
    const fs::path bad = dir_ / "bad.txt";
    write_file(bad, "fine\nnot \xff utf-8\n");
    EXPECT_HAS(expect_error("--config " + text_config(2).string() + " --set run.prompts='\"" + bad.string() + "\"'", 4),
               "bad.txt line 2: not UTF-8 text (byte 0xff at column 5)");
    const fs::path nojson = dir_ / "p.jsonl";
    write_file(nojson, "{\"prompt\": \"ok\"}\n{\"text\": \"no prompt\"}\n");
    EXPECT_HAS(expect_error("--config " + text_config(2).string() + " --set run.prompts='\"" + nojson.string() + "\"'", 4),
               "p.jsonl line 2: expected an object with a \"prompt\" string");
    write_file(nojson, "{\"prompt\": \"ok\"\n");
    EXPECT_HAS(expect_error("--config " + text_config(2).string() + " --set run.prompts='\"" + nojson.string() + "\"'", 4),
               "p.jsonl line 1: not valid JSON");
    EXPECT_HAS(expect_error("--set model.tokenizer='\"\"' --prompt hello", 2), "text prompts need a tokenizer");
    EXPECT_HAS(expect_error("--config " + text_config(2).string() + " --set run.prompts='\"" + (dir_ / "none.txt").string() + "\"'", 3),
               "cannot open");
    // A tokenizer larger than the model's vocabulary would make ids the model cannot embed.
    EXPECT_HAS(expect_error("--config " + text_config(2).string() + " --set model.vocab_size=1000 --prompt hi", 2),
               "the tokenizer has 1550 tokens, more than custom's vocabulary of 1000");
}

// Pipeline parallelism from the command line: the 2-layer model split over two processes, started with --rank /
// --world or as mpirun starts them (OMPI_COMM_WORLD_*), with text prompts in two blocks of two micro-batches: the
// last rank writes the completions, and they are one process's, token for token (stop tokens included).
TEST_F(TextCli, PipelineOfTwoProcessesGivesOneProcessCompletions) {
    const fs::path prompts = dir_ / "prompts.txt";
    write_file(prompts, "Hello world\nThe quick brown fox jumps over the lazy dog\nnumbers 12345\nA\n");
    auto ids_of = [&](const fs::path& out) {
        std::vector<std::string> ids;
        for (const auto& v : jsonl(read_file(out))) {
            ids.emplace_back();
            for (const auto& x : v.find("token_ids")->items) ids.back() += x.text + " ";
            ids.back() += v.find("finish_reason")->text;
        }
        return ids;
    };
    const std::string common =
        "--config " + text_config(1).string() + " --set run.prompts='\"" + prompts.string() + "\"' --set run.gen_len=8";
    const fs::path single_out = dir_ / "single.jsonl";
    CliResult single = run(common + " --set policy.gpu_batch_size=4 --set run.output='\"" + single_out.string() + "\"'");
    ASSERT_EQ(single.code, 0) << single.err;
    const auto expected = ids_of(single_out);
    ASSERT_EQ(expected.size(), 4u);
    for (const bool mpirun : {false, true}) {
        SCOPED_TRACE(mpirun ? "started as mpirun does" : "started with --rank / --world");
        const fs::path out = dir_ / "pipeline.jsonl";
        fs::remove(out);
        const std::string port = std::to_string(free_port());
        std::vector<std::string> args, env;
        for (int r = 0; r < 2; ++r) {
            args.push_back(common + " --set pipeline.micro_batches=2 --set run.output='\"" + out.string() + "\"' --rendezvous 127.0.0.1:" +
                           port + (mpirun ? "" : " --rank " + std::to_string(r) + " --world 2 --trace " + (dir_ / "t.json").string()));
            env.push_back(mpirun ? "OMPI_COMM_WORLD_SIZE=2 OMPI_COMM_WORLD_RANK=" + std::to_string(r) : "");
        }
        const auto results = run_ranks_cli(args, env);
        for (int r = 0; r < 2; ++r) ASSERT_EQ(results[r].code, 0) << "rank " << r << ": " << results[r].err;
        EXPECT_EQ(ids_of(out), expected);
        EXPECT_HAS(results[0].out, "rank 0 of 2 (layer-list entries [0, ");
        EXPECT_HAS(results[1].out, "pipeline: 2 stages");
        EXPECT_HAS(results[1].out, "total throughput: ");
        if (!mpirun) {  // a timeline per rank; micro-batch 1's primitives named by its global GPU batch, 1, as its steps are
            for (int r = 0; r < 2; ++r) {
                const std::string t = read_file(dir_ / ("t.rank" + std::to_string(r) + ".json"));
                EXPECT_HAS(t, "\"name\": \"compute_layer (0, 0, 1)\"");
                EXPECT_HAS(t, "\"name\": \"compute_layer (7, 0, 1)\"");
            }
        }
    }
}

// A rank that fails mid-run (its disk fails under the KV cache) ends with its own error, and the other with one
// naming it, at once; a rank that never comes is a rendezvous error within pipeline.timeout_s; ranks that
// disagree on the job stop before loading anything, naming the key.
TEST_F(Cli, PipelineFailuresEndEveryRank) {
    const std::string tiny = "--config " + tiny_config_file().string() + " --set run.gen_len=6";
    auto ranks = [&](const std::string& extra0, const std::string& extra1, const std::string& env1 = "") {
        // A rank that cannot start keeps the other at the rendezvous until the timeout: 30 s then, not 300.
        const std::string at = " --set pipeline.timeout_s=30 --rendezvous 127.0.0.1:" + std::to_string(free_port()) + " --world 2 --rank ";
        return run_ranks_cli({tiny + extra0 + at + "0", tiny + extra1 + at + "1"}, {"", env1});
    };
    const std::string cache_on_disk = " --set 'policy.cache={gpu=0,cpu=0}' --set storage.plugin=aio";  // aio: writes that can fail
    const auto t0 = std::chrono::steady_clock::now();
    const auto failed = ranks(cache_on_disk, cache_on_disk,
                              // Under ASan the injector is preloaded before ASan's runtime: allowed, as in the fault matrix.
                              "ASAN_OPTIONS=verify_asan_link_order=0:${ASAN_OPTIONS:-} LD_PRELOAD=" + std::string(FLEXRT_FAULT_INJECT) +
                                  " FLEXRT_FAULT=eio FLEXRT_FAULT_AFTER=20000 FLEXRT_FAULT_PATH=" + (dir_ / "rank1.offload").string());
    EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(60)) << "a rank waited for the timeout";
    EXPECT_EQ(failed[1].code, 5) << failed[1].err;
    EXPECT_HAS(failed[1].err, "Input/output error");
    EXPECT_EQ(failed[0].code, 5) << failed[0].err;
    EXPECT_HAS(failed[0].err, "rank 1 has ended");

    const std::string port = std::to_string(free_port());
    const auto alone = run_ranks_cli({tiny + " --set pipeline.timeout_s=2 --rendezvous 127.0.0.1:" + port + " --world 2 --rank 0"});
    EXPECT_EQ(alone[0].code, 5);
    EXPECT_HAS(alone[0].err, "the rendezvous 127.0.0.1:" + port);

    const auto disagree = ranks("", " --set run.seed=5");
    for (int r = 0; r < 2; ++r) {
        EXPECT_EQ(disagree[r].code, 2) << disagree[r].err;
        EXPECT_HAS(disagree[r].err, "run.seed differs: rank 0 has `run.seed = 42`, rank 1 has `run.seed = 5`");
    }
    // A single process is not a pipeline's: --rank without --world is a clear error.
    EXPECT_HAS(expect_error("--rank 1", 2), "--rank and --world go together");
    EXPECT_HAS(expect_error("--rank 2 --world 2", 2), "--rank = \"2\": expected an integer from 0 to 1");
}
}  // namespace
}  // namespace flexrt::test
