// Pipeline parallelism between real processes (fork, the TCP communicator): the tiny OPT split over 2 and 3
// stages with micro-batches in flight must give the tokens of one process - HF transformers' greedy tokens and
// logits, and the single-process engine's tokens under sampling and stop tokens (where whole micro-batches stop
// and are skipped) - under every schedule and tier mix tried. A rank that dies or fails mid-run ends the others
// with an error naming a rank, well before the communicator's timeout; ranks that disagree on the job stop
// before running, naming the key.
#include "process_util.hpp"
#include "test_util.hpp"

#include "core/src/tcp_communicator.hpp"
#include "engine/engine.hpp"
#include "engine/pipeline_stage.hpp"

#include <cmath>
#include <cstring>

namespace flexrt::test {
namespace {

constexpr double kLogitTolerance = 1e-3;  // as opt_golden_test: fp32 against HF's float64
constexpr double kTimeoutS = 20;          // the communicator's; a failure must end the ranks long before it

struct PipeCase {
    std::string name;
    int world = 2;
    int64_t micro = 2, gbs = 1, ngb = 2;
    TierShare weights{100, 0}, cache{100, 0}, activations{100, 0};
    bool separate = true, compress_cache = false;
    std::string schedule = "overlap_multi";
    GenerateOptions go{};
};

std::ostream& operator<<(std::ostream& os, const PipeCase& c) { return os << c.name; }

Policy policy_of(const PipeCase& c, int64_t ngb) {
    Policy p;
    p.gpu_batch_size = c.gbs;
    p.num_gpu_batches = ngb;
    p.weights = c.weights;
    p.cache = c.cache;
    p.activations = c.activations;
    p.separate_attention_mlp = c.separate;
    p.compress_cache = c.compress_cache;
    return p;
}

// What a rank returns, through a file: its tokens, stop flags and (the last rank) logits, or its error.
struct RankResult {
    std::vector<int32_t> tokens;
    std::vector<uint8_t> stopped;
    std::vector<float> logits;
    std::string error;
};

void save(const fs::path& file, const GenerationResult& r) {
    std::ofstream out(file, std::ios::binary);
    auto put = [&](const void* p, uint64_t bytes) {
        out.write(reinterpret_cast<const char*>(&bytes), sizeof bytes);
        out.write(static_cast<const char*>(p), static_cast<std::streamsize>(bytes));
    };
    put(r.tokens.data(), r.tokens.size() * sizeof(int32_t));
    put(r.stopped.data(), r.stopped.size());
    put(r.logits.data(), r.logits.size() * sizeof(float));
}

RankResult load(const fs::path& dir, int rank) {
    RankResult r;
    if (fs::exists(dir / ("rank" + std::to_string(rank) + ".err"))) r.error = read_file(dir / ("rank" + std::to_string(rank) + ".err"));
    std::ifstream in(dir / ("rank" + std::to_string(rank) + ".bin"), std::ios::binary);
    auto get = [&](auto& v) {
        uint64_t bytes = 0;
        in.read(reinterpret_cast<char*>(&bytes), sizeof bytes);
        v.resize(bytes / sizeof(v[0]));
        in.read(reinterpret_cast<char*>(v.data()), static_cast<std::streamsize>(bytes));
    };
    if (in) get(r.tokens), get(r.stopped), get(r.logits);
    return r;
}

// A schedule that runs the real one, and on its `at`-th window (from 1) either ends the process at once (as a
// kill would) or fails the way a plugin's error does.
class FailingSchedule final : public IScheduler {
public:
    FailingSchedule(IScheduler& inner, int at, bool die) : inner_(inner), at_(at), die_(die) {}
    flexrt_status run(IExecutor* ex) noexcept override {
        if (++runs_ == at_) {
            if (die_) ::_exit(42);
            return FLEXRT_STATUS_IO_ERROR;
        }
        return inner_.run(ex);
    }
    void release() noexcept override {}

private:
    IScheduler& inner_;
    int runs_ = 0, at_;
    bool die_;
};

// The plain order without load_cache at step 0, as scheduler.hpp allows: in a window that starts at a decode step
// the engine must load what the schedule did not.
class NoStepZeroCache final : public IScheduler {
public:
    flexrt_status run(IExecutor* ex) noexcept override {
        const flexrt_schedule_dims d = ex->dims();
        const auto G = static_cast<int32_t>(d.gen_len), L = static_cast<int32_t>(d.num_layers), K = static_cast<int32_t>(d.num_gpu_batches);
        for (int32_t i = 0; i < G; ++i) {
            flexrt_status s = ex->begin_step(i);
            for (int32_t j = 0; j < L && s == FLEXRT_STATUS_OK; ++j) {
                s = ex->load_weight(i, j, 0);
                for (int32_t k = 0; k < K && s == FLEXRT_STATUS_OK; ++k) {
                    if (i > 0) s = ex->load_cache(i, j, k);
                    if (s == FLEXRT_STATUS_OK) s = ex->load_hidden(i, j, k);
                    if (s == FLEXRT_STATUS_OK) s = ex->compute_layer(i, j, k);
                    if (s == FLEXRT_STATUS_OK) s = ex->store_hidden(i, j, k);
                    if (s == FLEXRT_STATUS_OK) s = ex->store_cache(i, j, k);
                }
            }
            int32_t stopped = 0;
            if (s == FLEXRT_STATUS_OK) s = ex->end_step(i, &stopped);
            if (s != FLEXRT_STATUS_OK || stopped) return s;
        }
        return FLEXRT_STATUS_OK;
    }
    void release() noexcept override {}
};

struct Fault {
    int rank = -1, window = 0;
    bool die = false;
};

// The job's terms all ranks must agree on (the app's are the config's; these the test's).
std::string terms_of(const PipeCase& c) {
    return "model = tiny_opt\nrun.gen_len = " + std::to_string(fixture().gen_len) + "\npolicy.gpu_batch_size = " + std::to_string(c.gbs) +
           "\npolicy.num_gpu_batches = " + std::to_string(c.ngb) + "\nrun.seed = " + std::to_string(c.go.seed) + "\n";
}

// Runs c over c.world forked ranks; each writes its result (or error) under dir. Returns the exit codes.
std::vector<int> run_pipeline(const PipeCase& c, const fs::path& dir, Fault fault = {}, std::function<std::string(int)> terms = {}) {
    const std::string at = "127.0.0.1:" + std::to_string(free_port());
    return run_ranks(c.world, [&](int rank) {
        try {
            const Fixture& f = fixture();
            Tiers t("mmap", false);  // a forked child: no CUDA (the parent may have started it)
            auto compressor = c.compress_cache ? make_compressor("group4") : nullptr;
            opt::NumpyDirWeights numpy(fixture_dir() / "weights", t.disk);
            const opt::OptConfig model = tiny_config();
            const auto slices = partition_layers(model.num_layers, c.separate ? 2 : 1, c.world);
            Engine engine(model, policy_of(c, c.ngb), f.prompt_len, f.gen_len, {*t.ops, t.compute, t.host, t.disk, t.transfers}, numpy, {},
                          compressor.get(), nullptr, EngineStage{slices[static_cast<size_t>(rank)], c.micro, true});
            TcpCommunicator comm(rank, c.world, at, kTimeoutS);
            check_pipeline_agreement(comm, terms ? terms(rank) : terms_of(c));
            NoStepZeroCache no_step_zero_cache;
            auto schedule = c.schedule == "no_step0_cache" ? PluginPtr<IScheduler>(&no_step_zero_cache, PluginDeleter<IScheduler>{})
                                                           : make_schedule(c.schedule);
            FailingSchedule failing(*schedule, fault.window, fault.die);
            GenerateOptions go = c.go;
            go.record_logits = true;
            IScheduler& s = fault.rank == rank ? static_cast<IScheduler&>(failing) : *schedule;
            save(dir / ("rank" + std::to_string(rank) + ".bin"), run_pipeline_stage(engine, f.prompts, go, s, {comm, comm}, c.micro));
            return 0;
        } catch (const Error& e) {
            write_file(dir / ("rank" + std::to_string(rank) + ".err"), e.what());
            return 3;
        }
    });
}

// The same job in one process: the whole layer list, every micro-batch's GPU batches as one block.
GenerationResult run_single(const PipeCase& c) {
    const Fixture& f = fixture();
    Tiers t;
    auto compressor = c.compress_cache ? make_compressor("group4") : nullptr;
    opt::NumpyDirWeights numpy(fixture_dir() / "weights", t.disk);
    Engine engine(tiny_config(), policy_of(c, c.ngb * c.micro), f.prompt_len, f.gen_len, {*t.ops, t.compute, t.host, t.disk, t.transfers},
                  numpy, {}, compressor.get());
    auto schedule = make_schedule(c.ngb * c.micro > 1 ? "overlap_multi" : "overlap_single");
    return engine.generate(f.prompts, c.go, *schedule);
}

class PipelineTest : public ::testing::TestWithParam<PipeCase> {};

// Greedy, no stop: every rank's tokens are HF's, and the last rank's logits are HF's within the tolerance.
TEST_P(PipelineTest, EveryRankGetsTheTokensOfOneProcess) {
    const PipeCase& c = GetParam();
    TempDir dir;
    const auto codes = run_pipeline(c, dir.path());
    const Fixture& f = fixture();
    const GenerationResult single = run_single(c);
    const bool greedy = !c.go.do_sample && c.go.stop_token < 0 && !c.compress_cache;
    std::string errors;  // every rank's, when any failed: the first cause is among them
    for (int r = 0; r < c.world; ++r) errors += "rank " + std::to_string(r) + ": " + load(dir.path(), r).error + "\n";
    for (int r = 0; r < c.world; ++r) {
        const RankResult got = load(dir.path(), r);
        ASSERT_EQ(codes[static_cast<size_t>(r)], 0) << errors;
        ASSERT_EQ(got.tokens.size(), static_cast<size_t>(f.n * f.gen_len));
        EXPECT_EQ(got.tokens, single.tokens) << "rank " << r << " against one process";
        EXPECT_EQ(got.stopped, single.stopped) << "rank " << r;
        for (int64_t n = 0; greedy && n < f.n * f.gen_len; ++n) EXPECT_EQ(got.tokens[n], f.tokens[n]) << "rank " << r << " against HF";
    }
    const RankResult last = load(dir.path(), c.world - 1);
    if (greedy) {
        ASSERT_EQ(last.logits.size(), f.logits.size());
        double worst = 0;
        for (int64_t b = 0; b < f.n; ++b)
            for (int64_t i = 0; i < f.gen_len; ++i)
                for (int64_t v = 0; v < f.vocab; ++v)
                    worst =
                        std::max(worst, std::abs(last.logits[(i * f.n + b) * f.vocab + v] - f.logits[(b * f.gen_len + i) * f.vocab + v]));
        EXPECT_LT(worst, kLogitTolerance) << "largest |logit - HF logit| on the last stage";
    }
    if (c.go.stop_token >= 0) {  // the case is built so that some sequence stops: the skipping was exercised
        EXPECT_TRUE(std::any_of(single.stopped.begin(), single.stopped.end(), [](uint8_t s) { return s; }));
    }
}

GenerateOptions stop_at_first_token_of(int64_t sequence) {
    GenerateOptions go;
    go.stop_token = static_cast<int64_t>(fixture().tokens[static_cast<size_t>(sequence * fixture().gen_len + 1)]);
    return go;
}

GenerateOptions sampled() {
    GenerateOptions go;
    go.do_sample = true;
    go.temperature = 0.8;
    go.top_k = 50;
    go.seed = 7;
    return go;
}

const TierShare kGpu{100, 0}, kCpu{0, 100}, kDisk{0, 0}, kHalf{50, 50}, kThirds{34, 33};

INSTANTIATE_TEST_SUITE_P(
    Cases, PipelineTest,
    ::testing::Values(PipeCase{"two_stages_overlap_multi"},
                      PipeCase{"three_stages_four_micro_batches_normal", 3, 4, 1, 1, kGpu, kGpu, kGpu, true, false, "normal"},
                      PipeCase{"three_stages_offloaded_overlap_single", 3, 2, 2, 1, kThirds, kDisk, kCpu, true, false, "overlap_single"},
                      PipeCase{"two_stages_fused_layers_weights_on_disk", 2, 2, 1, 2, kDisk, kHalf, kDisk, false, false, "overlap_multi"},
                      PipeCase{"two_stages_compressed_cache", 2, 2, 1, 2, kHalf, kCpu, kGpu, true, true, "overlap_multi"},
                      PipeCase{"three_stages_stop_token_skips_micro_batches", 3, 4, 1, 1, kGpu, kCpu, kGpu, true, false, "normal",
                               stop_at_first_token_of(0)},
                      PipeCase{"two_stages_sampled", 2, 2, 2, 1, kGpu, kGpu, kGpu, true, false, "overlap_single", sampled()},
                      PipeCase{"two_stages_schedule_without_step_zero_cache", 2, 2, 1, 2, kGpu, kDisk, kCpu, true, false,
                               "no_step0_cache"}),
    [](const auto& info) { return info.param.name; });

// A rank that dies mid-run (as kill -9 would), or whose schedule fails: every other rank ends with an error
// naming a rank that has ended, well before the timeout - nobody waits for the dead.
TEST(PipelineFailure, ADeadOrFailingRankEndsTheOthers) {
    const PipeCase c{"three_stages", 3, 2, 1, 2};
    for (const Fault fault : {Fault{1, 3, true}, Fault{2, 2, false}, Fault{0, 5, true}}) {
        SCOPED_TRACE("rank " + std::to_string(fault.rank) + (fault.die ? " dies" : " fails") + " at its window " +
                     std::to_string(fault.window));
        TempDir dir;
        const auto t0 = std::chrono::steady_clock::now();
        const auto codes = run_pipeline(c, dir.path(), fault);
        EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::duration<double>(kTimeoutS / 2)) << "a rank waited for the dead";
        for (int r = 0; r < c.world; ++r) {
            const RankResult got = load(dir.path(), r);
            if (r == fault.rank) {
                EXPECT_EQ(codes[static_cast<size_t>(r)], fault.die ? 42 : 3);
                if (!fault.die) { EXPECT_NE(got.error.find("schedule plugin failed"), std::string::npos) << got.error; }
                continue;
            }
            EXPECT_EQ(codes[static_cast<size_t>(r)], 3) << "rank " << r;
            EXPECT_NE(got.error.find("has ended"), std::string::npos) << "rank " << r << ": " << got.error;
            EXPECT_NE(got.error.find("rank "), std::string::npos) << got.error;
        }
    }
}

// Ranks that disagree on the job stop before running, each naming the key and both values.
TEST(PipelineFailure, RanksThatDisagreeStopBeforeRunning) {
    const PipeCase c{"two_stages"};
    TempDir dir;
    const auto codes = run_pipeline(
        c, dir.path(), {}, [&](int rank) { return terms_of(c) + "policy.compress_weights = " + (rank == 1 ? "true" : "false") + "\n"; });
    for (int r = 0; r < c.world; ++r) {
        EXPECT_EQ(codes[static_cast<size_t>(r)], 3);
        const std::string error = load(dir.path(), r).error;
        EXPECT_NE(error.find("policy.compress_weights differs: rank 0 has `policy.compress_weights = false`, rank 1 has "
                             "`policy.compress_weights = true`"),
                  std::string::npos)
            << error;
    }
}

}  // namespace
}  // namespace flexrt::test
