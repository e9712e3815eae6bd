// `flexrt plan`'s search: every policy on a grid - weights over the three tiers in 10% steps, the KV cache on
// the GPU, the host, split, or on disk, compression of weights and cache, cpu_cache_compute, GPU batch size
// and count - predicted by the cost model; those that fit the tiers (the engine's memory plan) ranked by
// total throughput.
#pragma once

#include "cost_model.hpp"

#include <optional>
#include <string>
#include <vector>

namespace flexrt::planner {

// What each tier may hold, in bytes.
struct Limits {
    uint64_t compute = 0, host = 0, disk = 0;
    bool compute_is_host = false;  // the CPU compute path: the compute tier's buffers are host memory too
};

struct Candidate {
    Policy policy;
    Prediction prediction;
    std::string schedule;  // the schedule plugin it is predicted with
};

bool fits(const Prediction& p, const Limits& limits);

// The `keep` fastest policies that fit, fastest first; empty when none does. `max_block`: the most sequences
// a block may hold (the prompts a user has; 0: no limit).
std::vector<Candidate> search_policies(const opt::OptConfig& model, const Workload& w, const HardwareProfile& hw, const Limits& limits,
                                       size_t keep = 4, int64_t max_block = 0);

// The candidate as config text: [policy] and [schedule], to paste or to run (`policy = "auto"` does this).
std::string policy_toml(const Candidate& c);

}  // namespace flexrt::planner
