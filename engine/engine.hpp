// The offloading engine: places a model's weights, KV cache and hidden states over the three tiers per
// the policy, and implements the seven primitives a schedule plugin orders (IExecutor).
//
// Buffers on the compute device come in slots: the weights a layer does not keep there in kWeightSlots
// (placement.hpp), filled round robin and found by tag; the cache, input and output in two, keyed by the
// parity of the linear index j * num_gpu_batches + k. A prefetch for the next (j, k) never overwrites what
// the current one reads. Every primitive waits for the events of the buffers it reads, so the tokens do
// not depend on the schedule.
#pragma once

#include "core/src/config.hpp"
#include "core/src/device.hpp"
#include "core/src/transfer.hpp"
#include "engine/pipeline_partition.hpp"
#include "models/opt/opt_layers.hpp"
#include "models/opt/opt_weights.hpp"
#include "ops/compute.hpp"

#include <flexrt/compressor.hpp>
#include <flexrt/scheduler.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace flexrt {

class PackedWeightStore;

struct GenerateOptions {
    bool do_sample = false;
    double temperature = 1.0;
    int64_t top_k = 0;   // 0: off
    double top_p = 1.0;  // 1: off
    uint64_t seed = 0;
    int64_t stop_token = -1;     // -1: none
    bool record_logits = false;  // keep every step's next-token logits (tests)
    // Called on the host with sequence n's tokens so far (its newest last) unless it has stopped: true stops it
    // as the stop token does (later tokens are pad; the run ends when every sequence has stopped). Stop strings.
    std::function<bool(int64_t n, const int32_t* tokens, int64_t count)> stop_when;
};

struct GenerationResult {
    int64_t num_sequences = 0, gen_len = 0, vocab = 0;
    std::vector<int32_t> tokens;       // (num_sequences, gen_len); pad id after a sequence's stop token
    std::vector<uint8_t> stopped;      // (num_sequences,): 1 where the stop token or stop_when ended it
    std::vector<float> logits;         // (steps run, num_sequences, vocab) when recorded
    std::vector<double> step_seconds;  // step 0 is the prefill
    int64_t batch_steps_skipped = 0;   // (step, GPU batch) pairs not computed: every sequence of the batch had stopped

    // Whether sequences [first, first + count) have all stopped: a GPU batch, a micro-batch, a window.
    bool all_stopped(int64_t first, int64_t count) const {
        return std::all_of(stopped.begin() + first, stopped.begin() + first + count, [](uint8_t s) { return s != 0; });
    }
};

struct EngineTiers {
    ops::Compute& ops;  // the compute device's ops (its memory is `compute`)
    IDevice& compute;
    IDevice& host;
    DiskDevice& disk;
    TransferEngine& transfers;
};

using ProgressFn = std::function<void(const std::string&)>;

class Engine final : public IExecutor {
public:
    // Places every layer's weights (reading them from `weights`) and allocates the cache, hidden-state and
    // slot buffers for blocks of policy.block_size() prompts of up to prompt_len tokens and gen_len new
    // tokens. Throws flexrt::Error naming what failed.
    // policy.compress_weights: `compressor` (borrowed, outliving the engine) compresses every weight of two or
    // more dimensions once, here; it must declare the group4 format (compressor.hpp), which the compute
    // device dequantizes just before use. `store` (borrowed; optional) keeps the compressed weights between
    // runs: read from it when they match, written to it when not.
    Engine(const opt::OptConfig& model, const Policy& policy, int64_t prompt_len, int64_t gen_len, EngineTiers tiers,
           opt::WeightSource& weights, ProgressFn progress = {}, ICompressor* compressor = nullptr, PackedWeightStore* store = nullptr,
           const EngineStage& stage = {});
    ~Engine();

    // Runs one block: `prompts` holds policy.block_size() token lists of 1..prompt_len tokens (left-padded
    // here). The scheduler orders the primitives. Throws flexrt::Error with the first failure.
    GenerationResult generate(const std::vector<std::vector<int32_t>>& prompts, const GenerateOptions& options, IScheduler& scheduler);

    // generate() in parts, for a pipeline stage: begin_run takes micro_batches * policy.block_size() prompts (every
    // stage gets them all: the attention masks come from their lengths) and fills `result` (which outlives the
    // run) as windows run; run_window runs the schedule over steps [step, step + steps) of one micro-batch, the
    // steps before it already run; end_run lets go of `result`. A stage without the output embedding gets the
    // tokens and stop flags of the last stage into `result` before they are read: before the window of the next
    // step.
    void begin_run(const std::vector<std::vector<int32_t>>& prompts, const GenerateOptions& options, GenerationResult& result);
    void run_window(IScheduler& scheduler, int32_t step, int32_t steps, int64_t micro_batch);
    void end_run();
    // A stage's hidden states in and out: a buffer of (gbs, seq, h) activations on the compute device, or in host
    // memory under EngineStage::message_on_host (allocated when the stage lacks the input or the output embedding), and the copies between
    // it and GPU batch k's home (k counts over all micro-batches) at step i, done when they return.
    Buffer& stage_message();
    uint64_t stage_message_bytes(int32_t i) const;
    void import_hidden(int32_t i, int64_t k);
    void export_hidden(int32_t i, int64_t k);

    const std::vector<std::unique_ptr<opt::Layer>>& layers() const { return layers_; }

    // --- IExecutor ---
    flexrt_schedule_dims dims() const noexcept override;
    flexrt_status begin_step(int32_t i) noexcept override;
    flexrt_status load_weight(int32_t i, int32_t j, int32_t k) noexcept override;
    flexrt_status load_cache(int32_t i, int32_t j, int32_t k) noexcept override;
    flexrt_status load_hidden(int32_t i, int32_t j, int32_t k) noexcept override;
    flexrt_status compute_layer(int32_t i, int32_t j, int32_t k) noexcept override;
    flexrt_status store_cache(int32_t i, int32_t j, int32_t k) noexcept override;
    flexrt_status store_hidden(int32_t i, int32_t j, int32_t k) noexcept override;
    flexrt_status sync() noexcept override;
    flexrt_status end_step(int32_t i, int32_t* all_stopped) noexcept override;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
    std::vector<std::unique_ptr<opt::Layer>> layers_;
};

}  // namespace flexrt
