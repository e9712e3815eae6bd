// The cost of one generation block under a policy, predicted from the model's shapes and a hardware profile:
// prefill and decode time, and the bytes each tier holds (the engine's own memory plan). Per layer and token
// step the engine's overlapped schedules run compute, the host -> GPU link, the GPU -> host link and the disk
// side by side, so a layer takes the longest of them; the plain schedule takes their sum.
#pragma once

#include "core/src/config.hpp"
#include "engine/memory_plan.hpp"
#include "hardware_profile.hpp"
#include "models/opt/opt_config.hpp"

#include <cstdint>

namespace flexrt::planner {

// Bytes of flexrt's group4 format per fp16 byte: 4 bits a value and an fp16 (scale, min) pair per 64 values.
inline constexpr double kPackedRatio = (4.0 + 32.0 / 64.0) / 16.0;

struct Workload {
    int64_t prompt_len = 512;
    int64_t gen_len = 32;
};

// Where a layer's time goes, per token step (seconds, summed over the block's GPU batches).
struct LayerCost {
    double compute = 0;      // the compute device, including the host's attention under cpu_cache_compute
    double host_to_gpu = 0;  // weights, KV cache and hidden states coming in over the link
    double gpu_to_host = 0;  // new KV rows and hidden states going out
    double disk = 0;         // reads and writes of the disk tier
    double overlapped() const;
    double serial() const { return compute + host_to_gpu + gpu_to_host + disk; }
};

struct Prediction {
    double prefill_s = 0, decode_s = 0;
    double total_s() const { return prefill_s + decode_s; }
    // FlexLLMGen's figures: generated tokens of the block per second of the whole run, and of decoding.
    double total_throughput = 0, decode_throughput = 0;
    uint64_t compute_bytes = 0, host_bytes = 0, disk_bytes = 0;  // the memory plan per tier
    const char* bound = "";                                      // what limits a decode layer: "compute", "PCIe", "disk"
};

// `overlap`: the overlapped schedules (overlap_single / overlap_multi), else the plain one. `with_memory`:
// also the memory plan (the engine's placement arithmetic, the costly part).
Prediction predict(const opt::OptConfig& model, const Policy& policy, const Workload& w, const HardwareProfile& hw, bool overlap = true,
                   bool with_memory = true);

// Fills r's memory per tier from the engine's memory plan (what predict's `with_memory` adds).
void add_memory(Prediction& r, const opt::OptConfig& model, const Policy& policy, const Workload& w, bool gpu);

// Layer costs of one token step (step 0: the prefill), for tests and `flexrt plan --explain`.
LayerCost layer_cost(const opt::OptConfig& model, const Policy& policy, const Workload& w, const HardwareProfile& hw, int64_t step);

// A measured run of the engine: its policy (everything on the compute device, one GPU batch), workload, and
// prefill and decode seconds.
struct EngineRun {
    Policy policy;
    Workload w;
    double prefill_s = 0, decode_s = 0;
};

// How calibration folds two short real runs of the engine (the same model and steps, a small and a large
// batch) into the profile: the per-layer fixed cost (the part that does not grow with the batch: launches,
// synchronization, copies of the hidden states) and the efficiencies of the prefill and decode work.
void fit_engine_runs(HardwareProfile& hw, const opt::OptConfig& model, const EngineRun& small, const EngineRun& large);

// The engine's memory plan for this policy (dummy weights, flexrt's group4 format where it compresses).
MemoryPlan memory_of(const opt::OptConfig& model, const Policy& policy, const Workload& w, bool gpu);

}  // namespace flexrt::planner
