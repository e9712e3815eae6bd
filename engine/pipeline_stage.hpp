// One rank's part of a pipeline over several GPUs or hosts (FlexLLMGen's dist_flex_opt, reference section 7): an
// engine over its stage's slice of the layers (pipeline_partition.hpp) with micro-batches in flight, so that in
// every token step the stages work on different micro-batches at once. Per step i and micro-batch t:
//   - stage 0 reads the tokens of step i - 1 (or the prompts); the others receive the hidden states of (i, t)
//     from the stage before, one message per GPU batch;
//   - the engine runs the schedule plugin over the stage's layers for (i, t);
//   - a stage sends its hidden states to the next; the last stage sends the tokens of (i, t) and the stop flags to
//     every other stage (stage 0 feeds them back in; all of them can skip what has stopped and report them).
// Hidden states travel over `data` (NCCL between GPUs, or TCP), tokens over `control` (TCP, host memory) from a
// sending thread, so that a stage is never blocked sending tokens while the stage it waits for waits on it. A
// micro-batch whose sequences have all stopped is skipped by every stage alike, messages included: each decides
// it from the same tokens. When anything fails, both communicators are aborted, so every other rank ends with an
// error naming this one instead of waiting for it.
#pragma once

#include "core/src/communicator.hpp"
#include "engine/engine.hpp"

#include <string>
#include <vector>

namespace flexrt {

struct PipelineLinks {
    ICommunicator& data;     // hidden states: buffers of the engine's stage_message() memory
    ICommunicator& control;  // tokens, stop flags and the agreement check: host memory
};

// Checks that every rank runs the same job: `terms` holds "key = value" lines that must be equal on all ranks
// (the model, batch shape, lengths, sampling). Collective over `control`: rank 0 compares and tells every rank
// the verdict. Throws on every rank, naming the first key that differs, the rank and both values.
void check_pipeline_agreement(ICommunicator& control, const std::string& terms);

// Runs a block on this rank's stage: `prompts` are all micro_batches * block_size prompts (every rank gets them).
// Every rank returns the same tokens and stop flags; step_seconds are this rank's wall time per step (the last
// rank's are the pipeline's), said to `progress` at the prefill and about eight times a run. Throws flexrt::Error with the first failure,
// here or at a peer.
GenerationResult run_pipeline_stage(Engine& engine, const std::vector<std::vector<int32_t>>& prompts, const GenerateOptions& options,
                                    IScheduler& scheduler, PipelineLinks links, int64_t micro_batches, const ProgressFn& progress = {});

}  // namespace flexrt
