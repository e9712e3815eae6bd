// The memory plan: the bytes a run takes on each tier - weights, KV cache, hidden states, the compute
// device's slots and workspace - computed from the model, the policy and the run before anything is
// allocated, with the engine's own placement arithmetic (placement.hpp). `flexrt --dry-run` prints it and,
// when a tier does not fit, what each remedy would free.
#pragma once

#include "core/src/config.hpp"
#include "core/src/device.hpp"
#include "engine/pipeline_partition.hpp"
#include "models/opt/opt_config.hpp"
#include "models/opt/opt_weights.hpp"

#include <flexrt/compressor.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace flexrt {

struct MemoryItem {
    TierKind tier;
    std::string what;  // "weights", "KV cache", "weight slots", ...
    uint64_t bytes;
};

struct MemoryPlan {
    std::vector<MemoryItem> items;  // one per (tier, what), in allocation order
    uint64_t total(TierKind tier) const;
};

// What Engine's constructor allocates on each tier for this model, policy and run, byte for byte (the
// compute device's pool may round each buffer up to its alignment). `elem`: bytes of an activation (2 on a
// GPU, 4 on the CPU). `format`: the compress plugin's, when the policy compresses. `weights` says which
// tensors can be read straight from their files (their disk part then takes no offload space). `stage`: a
// pipeline stage's layers and micro-batches.
MemoryPlan plan_memory(const opt::OptConfig& model, const Policy& policy, int64_t prompt_len, int64_t gen_len, uint64_t elem,
                       const Group4Format* format, opt::WeightSource& weights, const EngineStage& stage = {});

}  // namespace flexrt
