// The fault matrix: the real flexrt binary, run under an LD_PRELOAD fault injector (tests/tools/fault_inject.cpp)
// that fails its writes to one place part-way (EIO, ENOSPC), makes them short, or under kill -9, for each
// operation that writes: `flexrt convert`, an offloaded run (weights and KV cache on disk, storage.aio and
// storage.mmap), and compress.store_dir. In every cell:
//   - a failure is an error exit naming the cause, never a success;
//   - nothing that looks complete is half-written: every file under its final name equals the one a clean
//     run writes, and the offload directory is left empty;
//   - short writes lose nothing: the result is the clean run's, byte for byte or token for token;
//   - after a kill -9 the next run starts clean (stale run directory removed, conversion resumed).
// Cells that cannot happen are left out and said so: storage.mmap writes through a memory map, so only its
// space reservation (ENOSPC) is a system call that can fail.
#include "test_util.hpp"

#include <sys/wait.h>

#include <chrono>
#include <csignal>
#include <thread>

namespace flexrt::test {
namespace {

#define EXPECT_HAS(haystack, needle) EXPECT_NE((haystack).find(needle), std::string::npos) << (haystack)

struct Result {
    int code;
    std::string out, err;
};

class FaultMatrix : public ::testing::Test {
protected:
    // `flexrt ARGS` with the injector set to `fault` ("" for none) on paths containing `where`, after `after` bytes.
    Result run(const std::string& args, const std::string& fault = "", const fs::path& where = {}, long long after = 0) {
        const fs::path out = dir_ / "stdout", err = dir_ / "stderr";
        std::string env;
        if (!fault.empty())
            // (ASan wants its runtime first among the loaded libraries; the preloaded injector, which intercepts no
            // memory function, comes before it, and that check is switched off.)
            env = "ASAN_OPTIONS=verify_asan_link_order=0:${ASAN_OPTIONS:-} LD_PRELOAD=" + std::string(FLEXRT_FAULT_INJECT) +
                  " FLEXRT_FAULT=" + fault + " FLEXRT_FAULT_PATH=" + where.string() + " FLEXRT_FAULT_AFTER=" + std::to_string(after) + " ";
        const int status =
            std::system((env + FLEXRT_BINARY + " " + args + " >" + out.string() + " 2>" + err.string() + " </dev/null").c_str());
        return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, read_file(out), read_file(err)};
    }
    static std::string tokens(const Result& r) {
        const auto at = r.out.find("first sequence's tokens");
        return at == std::string::npos ? "" : r.out.substr(at, r.out.find('\n', at) - at);
    }
    // Starts `flexrt ARGS` and kills it with SIGKILL as soon as `ready` holds (or after 60 s).
    void kill_when(const std::string& args, const std::function<bool()>& ready) {
        const pid_t pid = ::fork();
        if (pid == 0) {
            const std::string cmd = std::string(FLEXRT_BINARY) + " " + args + " >/dev/null 2>&1 </dev/null";
            ::execl("/bin/sh", "sh", "-c", ("exec " + cmd).c_str(), static_cast<char*>(nullptr));
            ::_exit(127);
        }
        ASSERT_GT(pid, 0);
        const auto t0 = std::chrono::steady_clock::now();
        while (!ready() && std::chrono::steady_clock::now() - t0 < std::chrono::seconds(60))
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
        ::kill(pid, SIGKILL);
        int status = 0;
        ::waitpid(pid, &status, 0);
        EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << "the run ended before it could be killed: " << args;
    }
    TempDir dir_;
};

// ---- flexrt convert: a checkpoint to a numpy directory ----

class ConvertFaults : public FaultMatrix {
protected:
    void SetUp() override {
        clean_ = dir_ / "clean";
        const Result r = run(convert_args(clean_));
        ASSERT_EQ(r.code, 0) << r.err;
    }
    std::string convert_args(const fs::path& to) const {
        const opt::OptConfig c = tiny_config();
        return "convert --quiet --from " + (fixture_dir("tiny_opt_hf") / "single").string() + " --to " + to.string() +
               " --set model.name='\"custom\"' --set model.num_layers=" + std::to_string(c.num_layers) +
               " --set model.hidden_size=" + std::to_string(c.hidden_size) + " --set model.num_heads=" + std::to_string(c.num_heads) +
               " --set model.ffn_size=" + std::to_string(c.ffn_size) + " --set model.vocab_size=" + std::to_string(c.vocab_size) +
               " --set model.max_seq_len=" + std::to_string(c.max_seq_len);
    }
    // Every file of `out` under its final name is the clean conversion's, byte for byte; returns how many.
    size_t expect_complete_files_whole(const fs::path& out) const {
        size_t whole = 0;
        for (const auto& e : fs::directory_iterator(out)) {
            const std::string name = e.path().filename().string();
            if (name.ends_with(".partial") || name == "flexrt-convert.manifest") continue;
            EXPECT_EQ(read_file(e.path()), read_file(clean_ / name)) << name << " looks complete but is not the clean conversion's";
            ++whole;
        }
        return whole;
    }
    fs::path clean_;
};

TEST_F(ConvertFaults, EioAndEnospcFailNamingTheCauseAndLeaveOnlyWholeFiles) {
    for (const auto& [fault, text] : {std::pair{"eio", "Input/output error"}, std::pair{"enospc", "No space left on device"}}) {
        const fs::path out = dir_ / (std::string("out-") + fault);
        const Result r = run(convert_args(out), fault, out, 20000);
        EXPECT_EQ(r.code, 5) << fault << ": " << r.err;
        EXPECT_HAS(r.err, text);
        const size_t whole = expect_complete_files_whole(out);
        EXPECT_LT(whole, count_files(clean_) - 1) << fault << ": the fault hit after the whole conversion";
        // The re-run, without the fault, finishes the job: the clean conversion.
        const Result again = run(convert_args(out));
        ASSERT_EQ(again.code, 0) << again.err;
        EXPECT_EQ(expect_complete_files_whole(out), count_files(clean_) - 1);
    }
}

TEST_F(ConvertFaults, ShortWritesLoseNothing) {
    const fs::path out = dir_ / "out-short";
    const Result r = run(convert_args(out), "short", out, 0);
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_EQ(expect_complete_files_whole(out), count_files(clean_) - 1);
}

// (kill -9 of a conversion: Cli.ConvertKilledMidwayResumes, in cli_test.cpp.)

// ---- an offloaded run: weights (a quarter) and the whole KV cache on disk ----

class OffloadFaults : public FaultMatrix, public ::testing::WithParamInterface<const char*> {
protected:
    std::string run_args(bool quiet = true) const {
        return std::string(quiet ? "--quiet" : "--progress") + " --set storage.plugin='\"" + std::string(GetParam()) +
               "\"' --set storage.offload_dir='\"" + offload().string() +
               "\"' --set run.prompt_len=64 --set run.gen_len=6 --set policy.cache.gpu=0 --set policy.cache.cpu=0";
    }
    fs::path offload() const { return dir_ / "offload"; }
    bool is_mmap() const { return std::string(GetParam()) == "mmap"; }
};

TEST_P(OffloadFaults, EioAndEnospcStopTheRunCleanly) {
    const Result clean = run(run_args());
    ASSERT_EQ(clean.code, 0) << clean.err;
    struct Cell {
        const char* fault;
        long long after;  // bytes into the offload dir before the fault: at placement, or mid-run (KV cache stores)
        const char* text;
    };
    for (const Cell& c : {Cell{"enospc", 1 << 20, "No space left on device"}, Cell{"enospc", 80ll << 20, "No space left on device"},
                          Cell{"eio", 1 << 20, "Input/output error"}, Cell{"eio", 80ll << 20, "Input/output error"}}) {
        if (is_mmap() && (std::string(c.fault) == "eio" || c.after > (1 << 20))) continue;  // mmap: only the reservation
        const Result r = run(run_args(), c.fault, offload(), c.after);
        EXPECT_EQ(r.code, 5) << c.fault << " after " << c.after << ": " << r.err << r.out;
        EXPECT_HAS(r.err, c.text);
        EXPECT_EQ(tokens(r), "") << "a failed run printed tokens";
        EXPECT_EQ(count_files(offload()), 0u) << c.fault << " after " << c.after << ": files left in the offload dir";
    }
}

TEST_P(OffloadFaults, ShortWritesLoseNothing) {
    if (is_mmap()) GTEST_SKIP() << "storage.mmap writes through a memory map: no write system call to shorten";
    const Result clean = run(run_args());
    ASSERT_EQ(clean.code, 0) << clean.err;
    const Result r = run(run_args(), "short", offload(), 0);
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_EQ(tokens(r), tokens(clean));
    EXPECT_FALSE(tokens(r).empty());
}

TEST_P(OffloadFaults, KilledRunIsCleanedByTheNext) {
    const Result clean = run(run_args());
    ASSERT_EQ(clean.code, 0) << clean.err;
    // Killed once its run directory holds the weights' files.
    kill_when(run_args() + " --set run.gen_len=64", [&] { return count_files(offload()) > 0; });
    EXPECT_GT(count_files(offload()), 0u) << "a killed run leaves its directory (nothing runs at exit)";
    const Result next = run(run_args(false));
    ASSERT_EQ(next.code, 0) << next.err;
    EXPECT_HAS(next.err, "left by a run that no longer exists");
    EXPECT_EQ(tokens(next), tokens(clean));
    EXPECT_EQ(count_files(offload()), 0u);
}

INSTANTIATE_TEST_SUITE_P(Storage, OffloadFaults, ::testing::Values("aio", "mmap"));

// ---- compress.store_dir: compressed weights kept between runs ----

class StoreFaults : public FaultMatrix {
protected:
    std::string run_args() const {
        return "--quiet --set storage.offload_dir='\"" + (dir_ / "offload").string() + "\"' --set run.prompt_len=16 --set run.gen_len=3 " +
               "--set policy.compress_weights=true --set compress.store_dir='\"" + store().string() + "\"'";
    }
    fs::path store() const { return dir_ / "store"; }
};

TEST_F(StoreFaults, FaultsAndKillLeaveAStoreThatGivesTheCleanTokens) {
    const Result clean = run(run_args());  // writes the store
    ASSERT_EQ(clean.code, 0) << clean.err;
    const size_t entries = count_files(store());
    fs::remove_all(store());
    for (const auto& [fault, text] : {std::pair{"eio", "Input/output error"}, std::pair{"enospc", "No space left on device"}}) {
        const Result r = run(run_args(), fault, store(), 10 << 20);
        EXPECT_EQ(r.code, 5) << fault << ": " << r.err;
        EXPECT_HAS(r.err, text);
        EXPECT_LT(count_files(store()), entries) << fault << ": the fault hit after the whole store was written";
        // What the failed run left is read back only where whole: the next run completes it, same tokens.
        const Result again = run(run_args());
        ASSERT_EQ(again.code, 0) << again.err;
        EXPECT_EQ(tokens(again), tokens(clean)) << "after " << fault;
        EXPECT_EQ(count_files(store()), entries);
        fs::remove_all(store());
    }
    const Result shortened = run(run_args(), "short", store(), 0);
    ASSERT_EQ(shortened.code, 0) << shortened.err;
    EXPECT_EQ(tokens(run(run_args())), tokens(clean)) << "a store written with short writes";
    fs::remove_all(store());
    kill_when(run_args(), [&] { return count_files(store()) >= entries / 2; });
    const Result after_kill = run(run_args());
    ASSERT_EQ(after_kill.code, 0) << after_kill.err;
    EXPECT_EQ(tokens(after_kill), tokens(clean)) << "after a kill -9 mid-store";
}

}  // namespace
}  // namespace flexrt::test
