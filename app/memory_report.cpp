#include "memory_report.hpp"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace flexrt {
namespace {

std::string gib(uint64_t bytes) {
    char s[32];
    std::snprintf(s, sizeof s, "%.2f GiB", static_cast<double>(bytes) / (1ull << 30));
    return s;
}

const char* label(TierKind t) { return t == TierKind::compute ? "compute device" : t == TierKind::host ? "host memory" : "disk"; }

}  // namespace

MemoryReport report_memory(const MemoryPlan& plan, const TierCapacity& cap, const Policy& policy,
                           const std::function<MemoryPlan(const Policy&)>& replan) {
    MemoryReport r;
    std::ostringstream out;
    out << "memory plan (bytes each tier holds for the whole run):\n";
    struct Need {
        TierKind tier;
        uint64_t need;
        std::optional<uint64_t> have;
        std::string from;
    };
    const uint64_t compute = plan.total(TierKind::compute), host = plan.total(TierKind::host), disk = plan.total(TierKind::disk);
    std::vector<Need> needs;
    if (cap.compute_is_host) {  // one pool of host memory for both
        needs.push_back({TierKind::host, compute + host, cap.host, cap.host_from + " (the compute device's buffers included)"});
    } else {
        needs.push_back({TierKind::compute, compute, cap.compute, cap.compute_from});
        needs.push_back({TierKind::host, host, cap.host, cap.host_from});
    }
    needs.push_back({TierKind::disk, disk, cap.disk, cap.disk_from});
    for (const TierKind t : {TierKind::compute, TierKind::host, TierKind::disk}) {
        out << "  " << label(t) << ": " << gib(plan.total(t)) << "\n";
        for (const MemoryItem& i : plan.items)
            if (i.tier == t) out << "    " << gib(i.bytes) << "  " << i.what << "\n";
    }
    std::vector<Need> over;
    for (const Need& n : needs) {
        if (!n.have) {
            out << "  " << label(n.tier) << ": needs " << gib(n.need) << ", capacity unknown (" << n.from << ")\n";
            continue;
        }
        const bool ok = n.need <= *n.have;
        out << "  " << label(n.tier) << ": needs " << gib(n.need) << " of " << gib(*n.have) << " (" << n.from
            << "): " << (ok ? "fits" : "does not fit, " + gib(n.need - *n.have) + " over") << "\n";
        if (!ok) over.push_back(n);
    }
    r.fits = over.empty();
    if (r.fits) {
        r.text = out.str();
        return r;
    }
    std::ostringstream sf;
    for (size_t i = 0; i < over.size(); ++i)
        sf << (i ? "; " : "") << label(over[i].tier) << " needs " << gib(over[i].need) << " of " << gib(*over[i].have) << " ("
           << over[i].from << "), " << gib(over[i].need - *over[i].have) << " over";
    r.shortfall = sf.str();
    r.memory_short = std::any_of(over.begin(), over.end(), [](const Need& o) { return o.tier != TierKind::disk; });

    // The remedies, in FlexLLMGen's order, each with what it frees on the tiers that do not fit.
    out << "remedies, in order:\n";
    auto freed = [&](const MemoryPlan& other) {
        std::ostringstream f;
        for (size_t i = 0; i < over.size(); ++i) {
            const TierKind t = over[i].tier;
            const uint64_t before = cap.compute_is_host && t == TierKind::host ? compute + host : plan.total(t);
            const uint64_t after =
                cap.compute_is_host && t == TierKind::host ? other.total(TierKind::compute) + other.total(TierKind::host) : other.total(t);
            f << (i ? ", " : "") << "frees " << gib(before > after ? before - after : 0) << " of " << label(t)
              << (after <= *over[i].have ? " (then fits)" : " (still " + gib(after - *over[i].have) + " over)");
        }
        return f.str();
    };
    int n = 0;
    if (cap.host_pinned_cap && policy.pin_weights)
        out << "  " << ++n << ". policy.pin_weights = false: host memory is no longer limited to runtime.pinned_gib (copies to the GPU "
            << "are relayed through the pinned staging pool)\n";
    if (!policy.compress_weights) {
        Policy p = policy;
        p.compress_weights = true;
        out << "  " << ++n << ". policy.compress_weights = true (4-bit group-wise weights): " << freed(replan(p)) << "\n";
    }
    for (const Need& o : over) {
        if (o.tier == TierKind::disk) continue;
        Policy p = policy;
        // The weights that take this memory, on disk instead (with the CPU compute device, both shares).
        const bool gpu_share = o.tier == TierKind::compute || cap.compute_is_host, cpu_share = o.tier == TierKind::host;
        if ((!gpu_share || p.weights.gpu == 0) && (!cpu_share || p.weights.cpu == 0)) continue;
        std::string which;
        if (gpu_share && p.weights.gpu > 0) p.weights.gpu = 0, which = "policy.weights.gpu = 0";
        if (cpu_share && p.weights.cpu > 0) p.weights.cpu = 0, which += std::string(which.empty() ? "" : ", ") + "policy.weights.cpu = 0";
        out << "  " << ++n << ". " << which << " (those weights on disk): " << freed(replan(p)) << "\n";
    }
    if (!policy.compress_cache) {
        Policy p = policy;
        p.compress_cache = true;
        out << "  " << ++n << ". policy.compress_cache = true (a 4-bit KV cache): " << freed(replan(p)) << "\n";
    }
    out << "  or fewer sequences or tokens: policy.gpu_batch_size, policy.num_gpu_batches, run.prompt_len, run.gen_len\n";
    r.text = out.str();
    return r;
}

}  // namespace flexrt
