// The memory plan as users read it (`flexrt --dry-run`, and the check every run makes before it allocates):
// the bytes each tier needs against what it has, and when a tier does not fit, by how much and what each
// remedy would free for this model - FlexLLMGen's README FAQ, in its order: unpin the weights, compress
// them, move them to disk; then compress the KV cache.
#pragma once

#include "core/src/memory_stats.hpp"  // host_available_bytes, disk_free_bytes

#include "engine/memory_plan.hpp"

#include <functional>
#include <optional>
#include <string>

namespace flexrt {

struct TierCapacity {
    std::optional<uint64_t> compute, host, disk;     // unknown: not checked
    std::string compute_from, host_from, disk_from;  // where the figure comes from
    bool compute_is_host = false;                    // the CPU compute device: its buffers and the host tier share host memory
    bool host_pinned_cap = false;                    // the host capacity is runtime.pinned_gib (pinned weights)
};

struct MemoryReport {
    std::string text;  // the table, and the remedies when something does not fit
    bool fits = true;
    std::string shortfall;      // one line: which tier, by how much (when it does not fit)
    bool memory_short = false;  // a memory tier does not fit (else only the disk)
};

// `replan(policy)`: the plan under another policy, for the remedies' figures.
MemoryReport report_memory(const MemoryPlan& plan, const TierCapacity& capacity, const Policy& policy,
                           const std::function<MemoryPlan(const Policy&)>& replan);

}  // namespace flexrt
