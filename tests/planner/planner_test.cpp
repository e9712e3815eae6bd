// The planner on the CPU: the cost model's monotonicity (more bandwidth or compute never predicts slower), the
// search's memory constraint (a returned policy always fits, by the engine's own memory plan), plans for every
// OPT size on a few hardware profiles, the profile file, and `policy = "auto"` in a config.
#include "test_util.hpp"

#include "planner/cost_model.hpp"
#include "planner/hardware_profile.hpp"
#include "planner/policy_search.hpp"

namespace flexrt::test {
namespace {

using planner::HardwareProfile;

constexpr uint64_t kGiB = 1ull << 30;

// An H100 with a PCIe 5 link and an NVMe disk (about what BENCH.md measured), an older PCIe 3 GPU box, and a
// CPU-only machine.
HardwareProfile h100() {
    HardwareProfile p;
    p.fingerprint = "test h100", p.storage = "aio", p.gpu = true, p.gpu_name = "H100";
    p.gpu_memory = 70 * kGiB, p.host_memory = 120 * kGiB, p.disk_free = 400 * kGiB;
    p.gemm_flops = 700e12, p.mem_bps = 3.0e12, p.h2d_bps = 54e9, p.d2h_bps = 50e9, p.disk_read_bps = 1.3e9, p.disk_write_bps = 1.0e9;
    p.cpu_attention_bps = 40e9, p.layer_overhead_s = 60e-6;
    return p;
}
HardwareProfile small_gpu() {
    HardwareProfile p = h100();
    p.fingerprint = "test t4", p.gpu_name = "T4", p.gpu_memory = 15 * kGiB, p.host_memory = 200 * kGiB, p.disk_free = 1500 * kGiB;
    p.gemm_flops = 40e12, p.mem_bps = 0.25e12, p.h2d_bps = 12e9, p.d2h_bps = 12e9, p.disk_read_bps = 2e9, p.cpu_attention_bps = 20e9;
    return p;
}
HardwareProfile cpu_only() {
    HardwareProfile p;
    p.fingerprint = "test cpu", p.storage = "mmap", p.gpu = false;
    p.gpu_memory = p.host_memory = 24 * kGiB, p.disk_free = 100 * kGiB;
    p.gemm_flops = 50e9, p.mem_bps = 10e9, p.disk_read_bps = 1e9, p.disk_write_bps = 0.8e9, p.cpu_attention_bps = 8e9;
    p.layer_overhead_s = 20e-6;
    return p;
}

planner::Limits limits_of(const HardwareProfile& p) { return {p.gpu_memory, p.host_memory, p.disk_free, !p.gpu}; }

opt::OptConfig model(const std::string& name) {
    ModelSection s;
    s.name = name;
    return opt::from_section(s);
}

Policy policy(double wg, double wc, double cg, double cc, int64_t gbs, int64_t ngb, bool cw = false, bool cc_ = false, bool ccc = false) {
    Policy p;
    p.weights = {wg, wc}, p.cache = {cg, cc}, p.gpu_batch_size = gbs, p.num_gpu_batches = ngb;
    p.compress_weights = cw, p.compress_cache = cc_, p.cpu_cache_compute = ccc;
    return p;
}

TEST(CostModel, MoreBandwidthOrComputeNeverPredictsSlower) {
    const planner::Workload w{512, 32};
    const std::vector<Policy> policies = {policy(100, 0, 100, 0, 32, 1),
                                          policy(0, 100, 100, 0, 32, 2),
                                          policy(20, 30, 0, 100, 16, 4, false, false, true),
                                          policy(0, 0, 0, 0, 8, 2),
                                          policy(50, 50, 50, 50, 64, 4, true, true),
                                          policy(0, 50, 0, 50, 24, 3, true, false, true)};
    double HardwareProfile::*rates[] = {
        &HardwareProfile::gemm_flops,    &HardwareProfile::mem_bps,        &HardwareProfile::h2d_bps,          &HardwareProfile::d2h_bps,
        &HardwareProfile::disk_read_bps, &HardwareProfile::disk_write_bps, &HardwareProfile::cpu_attention_bps};
    for (const char* name : {"opt-6.7b", "opt-30b"})
        for (const Policy& p : policies)
            for (HardwareProfile hw : {h100(), small_gpu(), cpu_only()})
                for (auto rate : rates)
                    for (bool overlap : {true, false}) {
                        const double before = planner::predict(model(name), p, w, hw, overlap, false).total_s();
                        HardwareProfile faster = hw;
                        faster.*rate *= 1.7;
                        const double after = planner::predict(model(name), p, w, faster, overlap, false).total_s();
                        EXPECT_LE(after, before * (1 + 1e-12)) << name << " " << hw.fingerprint;
                        EXPECT_GT(before, 0);
                    }
}

TEST(CostModel, OverlapNeverSlowerAndLongerRunsNeverFaster) {
    const auto hw = h100();
    const Policy p = policy(30, 70, 100, 0, 32, 2);
    const auto m = model("opt-30b");
    EXPECT_LE(planner::predict(m, p, {512, 32}, hw, true, false).total_s(), planner::predict(m, p, {512, 32}, hw, false, false).total_s());
    EXPECT_LT(planner::predict(m, p, {512, 32}, hw, true, false).total_s(), planner::predict(m, p, {512, 64}, hw, true, false).total_s());
    EXPECT_LT(planner::predict(m, p, {256, 32}, hw, true, false).total_s(), planner::predict(m, p, {512, 32}, hw, true, false).total_s());
}

// What bounds a decode layer, as one expects on an H100: 6.7B on the GPU computes (memory-bound GEMMs count as
// compute), 30B streamed from the host waits on PCIe, weights on disk wait on the disk.
TEST(CostModel, TheBoundIsWhereTheBytesMove) {
    const auto hw = h100();
    EXPECT_STREQ(planner::predict(model("opt-6.7b"), policy(100, 0, 100, 0, 32, 4), {512, 32}, hw, true, false).bound, "compute");
    EXPECT_STREQ(planner::predict(model("opt-30b"), policy(0, 100, 100, 0, 32, 2), {512, 32}, hw, true, false).bound, "PCIe");
    EXPECT_STREQ(planner::predict(model("opt-6.7b"), policy(0, 0, 100, 0, 16, 1), {512, 16}, hw, true, false).bound, "disk");
}

// Plans for every OPT size on each profile: each returned policy fits by the engine's own memory plan, the
// list is ranked, and the sizes that fit the machine's disk and memory at all get a plan.
TEST(PolicySearch, EveryOptSizeOnEveryProfileFitsItsTiers) {
    for (const HardwareProfile& hw : {h100(), small_gpu(), cpu_only()})
        for (const char* name : {"opt-125m", "opt-1.3b", "opt-6.7b", "opt-13b", "opt-30b", "opt-66b", "opt-175b"}) {
            const auto m = model(name);
            const planner::Workload w{512, 32};
            const auto lim = limits_of(hw);
            const auto found = planner::search_policies(m, w, hw, lim, 3);
            const double total =
                static_cast<double>(lim.compute_is_host ? lim.host : lim.compute + lim.host) + static_cast<double>(lim.disk);
            if (static_cast<double>(m.model_bytes()) * 0.3 < total) { ASSERT_FALSE(found.empty()) << name << " on " << hw.fingerprint; }
            for (size_t i = 0; i < found.size(); ++i) {
                const auto& c = found[i];
                const MemoryPlan plan = planner::memory_of(m, c.policy, w, hw.gpu);
                EXPECT_EQ(plan.total(TierKind::compute), c.prediction.compute_bytes);
                EXPECT_TRUE(planner::fits(c.prediction, lim)) << name << " on " << hw.fingerprint << ":\n" << planner::policy_toml(c);
                if (i) { EXPECT_LE(c.prediction.total_throughput, found[i - 1].prediction.total_throughput); }
                EXPECT_EQ(c.schedule, c.policy.num_gpu_batches == 1 ? "overlap_single" : "overlap_multi");
            }
        }
}

TEST(PolicySearch, NothingFitsIsAnEmptyAnswerNotAWrongOne) {
    HardwareProfile hw = small_gpu();
    hw.host_memory = 8 * kGiB, hw.disk_free = 10 * kGiB;
    EXPECT_TRUE(planner::search_policies(model("opt-175b"), {512, 32}, hw, limits_of(hw), 3).empty());
}

// More of a resource never makes the plan worse: the best predicted throughput with a faster link or more
// GPU memory is at least the old best.
TEST(PolicySearch, MoreOfAResourceNeverAWorsePlan) {
    const auto m = model("opt-30b");
    const planner::Workload w{512, 32};
    HardwareProfile hw = small_gpu();
    const double base = planner::search_policies(m, w, hw, limits_of(hw), 1).at(0).prediction.total_throughput;
    HardwareProfile link = hw;
    link.h2d_bps *= 2;
    EXPECT_GE(planner::search_policies(m, w, link, limits_of(link), 1).at(0).prediction.total_throughput, base);
    HardwareProfile mem = hw;
    mem.gpu_memory *= 2;
    EXPECT_GE(planner::search_policies(m, w, mem, limits_of(mem), 1).at(0).prediction.total_throughput, base);
}

TEST(PolicySearch, MaxBlockIsHonoured) {
    const auto hw = h100();
    for (const auto& c : planner::search_policies(model("opt-6.7b"), {512, 32}, hw, limits_of(hw), 4, 48))
        EXPECT_LE(c.policy.block_size(), 48);
}

// Calibration's fit inverts the model: runs "measured" on a machine whose per-layer cost and efficiencies are
// known give those values back; runs that do not fit the line fall back to the large run alone.
TEST(CostModel, EngineRunsFitTheFixedCostAndTheEfficiencies) {
    HardwareProfile truth = h100();
    truth.layer_overhead_s = 80e-6, truth.prefill_efficiency = 0.6, truth.decode_efficiency = 0.7;
    const auto m = model("opt-6.7b");
    auto measured = [&](int64_t batch) {
        planner::EngineRun r;
        r.policy = policy(100, 0, 100, 0, batch, 1), r.w = {512, 8};
        const auto p = planner::predict(m, r.policy, r.w, truth, true, false);
        r.prefill_s = p.prefill_s, r.decode_s = p.decode_s;
        return r;
    };
    HardwareProfile fitted = h100();
    planner::fit_engine_runs(fitted, m, measured(8), measured(64));
    EXPECT_NEAR(fitted.decode_efficiency, 0.7, 0.03);
    EXPECT_NEAR(fitted.layer_overhead_s, 80e-6, 10e-6);
    EXPECT_NEAR(fitted.prefill_efficiency, 0.6, 0.03);
    // A large run faster per sequence than the line allows: the fallback, no fixed cost.
    auto odd = measured(64);
    odd.decode_s = measured(8).decode_s * 0.9;
    planner::fit_engine_runs(fitted, m, measured(8), odd);
    EXPECT_EQ(fitted.layer_overhead_s, 0);
    EXPECT_GT(fitted.decode_efficiency, 0);
}

TEST(HardwareProfile, SavesAndLoadsAndNamesWhatIsWrong) {
    TempDir dir;
    const HardwareProfile p = h100();
    p.save(dir / "p.toml");
    EXPECT_FALSE(fs::exists(dir / "p.toml.partial"));
    const HardwareProfile q = HardwareProfile::load(dir / "p.toml");
    EXPECT_EQ(q.fingerprint, p.fingerprint);
    EXPECT_NEAR(q.h2d_bps, p.h2d_bps, 1e3);
    EXPECT_NEAR(q.gemm_flops, p.gemm_flops, 1e6);
    EXPECT_NEAR(static_cast<double>(q.gpu_memory), static_cast<double>(p.gpu_memory), 1e3);
    write_file(dir / "bad.toml", "[hardware]\nfingerprint = \"x\"\n");
    try {
        HardwareProfile::load(dir / "bad.toml");
        ADD_FAILURE() << "a profile without its rates loaded";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find((dir / "bad.toml").string()), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("hardware."), std::string::npos) << e.what();
    }
}

TEST(AutoPolicy, ConfigSaysAutoOrATable) {
    const Config cfg = load_config("policy = \"auto\"\n[model]\nname = \"opt-125m\"\n", "test", {});
    EXPECT_TRUE(cfg.policy_auto);
    EXPECT_FALSE(load_config("[policy]\ngpu_batch_size = 2\n", "test", {}).policy_auto);
    try {
        load_config("policy = \"fast\"\n", "test", {});
        ADD_FAILURE() << "policy = \"fast\" accepted";
    } catch (const Error& e) { EXPECT_NE(std::string(e.what()).find("\"auto\""), std::string::npos) << e.what(); }
}

}  // namespace
}  // namespace flexrt::test
