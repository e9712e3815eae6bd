#include "policy_search.hpp"

#include <algorithm>
#include <cstdio>
#include <sstream>

namespace flexrt::planner {
namespace {

struct Split {
    double gpu, cpu;  // percent; the rest on disk
};

}  // namespace

bool fits(const Prediction& p, const Limits& l) {
    const uint64_t host = p.host_bytes + (l.compute_is_host ? p.compute_bytes : 0);
    return (l.compute_is_host || p.compute_bytes <= l.compute) && host <= l.host && p.disk_bytes <= l.disk;
}

std::vector<Candidate> search_policies(const opt::OptConfig& m, const Workload& w, const HardwareProfile& hw, const Limits& limits,
                                       size_t keep, int64_t max_block) {
    std::vector<Split> weight_splits;
    for (int g = 0; g <= 100; g += 10)
        for (int c = 0; c <= 100 - g; c += 10) weight_splits.push_back({static_cast<double>(g), static_cast<double>(c)});
    const std::vector<Split> cache_splits = {{100, 0}, {50, 50}, {0, 100}, {0, 0}};
    const std::vector<int64_t> batch_sizes = {1, 2, 4, 8, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512};
    const std::vector<int64_t> batch_counts = {1, 2, 3, 4, 6, 8, 12, 16, 24, 32};
    const double model_bytes = static_cast<double>(m.model_bytes());

    // Every policy whose lower bound of memory fits, with its predicted time (memory left for the finalists).
    std::vector<Candidate> all;
    for (const Split& ws : weight_splits)
        for (const Split& cs : cache_splits)
            for (int compress = 0; compress < 4; ++compress)
                for (int ccc = 0; ccc < (hw.gpu && cs.gpu < 100 ? 2 : 1); ++ccc)
                    for (int64_t gbs : batch_sizes)
                        for (int64_t ngb : batch_counts) {
                            if (max_block && gbs * ngb > max_block) continue;
                            Policy p;
                            p.gpu_batch_size = gbs, p.num_gpu_batches = ngb;
                            p.weights = {ws.gpu, ws.cpu}, p.cache = {cs.gpu, cs.cpu}, p.activations = {100, 0};
                            p.compress_weights = compress & 1, p.compress_cache = (compress & 2) != 0;
                            p.cpu_cache_compute = ccc != 0;
                            const double wb = model_bytes * (p.compress_weights ? kPackedRatio : 1.0);
                            const double kv = static_cast<double>(m.cache_bytes(gbs * ngb, w.prompt_len + w.gen_len)) *
                                              (p.compress_cache ? kPackedRatio : 1.0);
                            const double need_compute = wb * ws.gpu / 100 + kv * cs.gpu / 100,
                                         need_host = wb * ws.cpu / 100 + kv * cs.cpu / 100,
                                         need_disk = wb * (100 - ws.gpu - ws.cpu) / 100 + kv * (100 - cs.gpu - cs.cpu) / 100;
                            if (!limits.compute_is_host && need_compute > static_cast<double>(limits.compute)) continue;
                            if (need_host + (limits.compute_is_host ? need_compute : 0) > static_cast<double>(limits.host)) continue;
                            if (need_disk > static_cast<double>(limits.disk)) continue;
                            all.push_back({p, predict(m, p, w, hw, true, false), ngb == 1 ? "overlap_single" : "overlap_multi"});
                        }
    std::sort(all.begin(), all.end(),
              [](const Candidate& a, const Candidate& b) { return a.prediction.total_throughput > b.prediction.total_throughput; });
    // The fastest that fit by the engine's own memory plan.
    std::vector<Candidate> out;
    for (Candidate& c : all) {
        if (out.size() >= keep) break;
        add_memory(c.prediction, m, c.policy, w, hw.gpu);  // the time is predicted already
        if (fits(c.prediction, limits)) out.push_back(c);
    }
    return out;
}

std::string policy_toml(const Candidate& c) {
    const Policy& p = c.policy;
    std::ostringstream os;
    auto tiers = [](const TierShare& t) {
        char s[64];
        std::snprintf(s, sizeof s, "{ gpu = %g, cpu = %g }", t.gpu, t.cpu);
        return std::string(s);
    };
    os << "[policy]\n"
       << "gpu_batch_size = " << p.gpu_batch_size << "\n"
       << "num_gpu_batches = " << p.num_gpu_batches << "\n"
       << "weights = " << tiers(p.weights) << "\n"
       << "cache = " << tiers(p.cache) << "\n"
       << "activations = " << tiers(p.activations) << "\n"
       << "compress_weights = " << (p.compress_weights ? "true" : "false") << "\n"
       << "compress_cache = " << (p.compress_cache ? "true" : "false") << "\n"
       << "cpu_cache_compute = " << (p.cpu_cache_compute ? "true" : "false") << "\n"
       << "[schedule]\nplugin = \"" << c.schedule << "\"\n";
    return os.str();
}

}  // namespace flexrt::planner
