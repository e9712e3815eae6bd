// IExecutor: the engine's seven primitives, implemented by the host.
// IScheduler: a schedule plugin that only decides the order in which they are called.
//
// Indices, as in FlexLLMGen: i = token step (0 = prefill, 1..gen_len-1 = decode), j = layer in the
// layer list (input embedding, attention/MLP layers, output embedding), k = GPU batch in the block. The steps
// are those dims() gives: a pipeline stage runs a schedule over one step of one micro-batch at a time, where
// step 0 may be a decode step; a schedule need not load its cache (as at the prefill), the executor does.
// Correctness never depends on the order: every primitive waits for the buffers it reads, so a schedule
// can only change speed, never tokens.
#pragma once

#include <flexrt/abi.h>

#include <cstdint>

extern "C" {
typedef struct flexrt_schedule_dims {
    uint32_t struct_size;
    uint32_t gen_len;          // token steps, i in [0, gen_len)
    uint32_t num_layers;       // layer list length, j in [0, num_layers)
    uint32_t num_gpu_batches;  // k in [0, num_gpu_batches)
} flexrt_schedule_dims;
}

namespace flexrt {

class IExecutor {
public:
    // The loop bounds. Sync.
    virtual flexrt_schedule_dims dims() const noexcept = 0;

    // Index wrapping, so schedules read like FlexLLMGen's pseudo-code: a load with k == num_gpu_batches
    // means (j + 1, 0), with j == num_layers means (i + 1, 0), and past the last step does nothing; a store
    // with k == -1 means (j - 1, last k), with j == -1 means (i - 1, last j), and before step 0 does nothing.
    // load_cache at i == 0 need not be called: the prefill has no cache to read, and where step 0 is a decode
    // step (a pipeline stage's), compute_layer loads what was not loaded.
    //
    // All primitives are called from one thread at a time. load_* and store_* are async: they start the
    // transfer and return; compute_layer waits for its inputs and then runs. A failure of an async part
    // is returned by the primitive that waits on it, or by sync().

    virtual flexrt_status begin_step(int32_t i) noexcept = 0;                         // starts step i's timer, extends the masks
    virtual flexrt_status load_weight(int32_t i, int32_t j, int32_t k) noexcept = 0;  // acts at k == 0 only
    virtual flexrt_status load_cache(int32_t i, int32_t j, int32_t k) noexcept = 0;
    virtual flexrt_status load_hidden(int32_t i, int32_t j, int32_t k) noexcept = 0;
    virtual flexrt_status compute_layer(int32_t i, int32_t j, int32_t k) noexcept = 0;
    virtual flexrt_status store_cache(int32_t i, int32_t j, int32_t k) noexcept = 0;
    virtual flexrt_status store_hidden(int32_t i, int32_t j, int32_t k) noexcept = 0;
    // Waits until every started transfer and computation has completed.
    virtual flexrt_status sync() noexcept = 0;
    // Ends step i: syncs, stops its timer, sets *all_stopped to 1 when every sequence the schedule runs has
    // emitted its stop token (the schedule then ends the loop), else 0.
    virtual flexrt_status end_step(int32_t i, int32_t* all_stopped) noexcept = 0;

protected:
    ~IExecutor() = default;
};

class IScheduler {
public:
    // Runs the whole generation by calling `executor` (borrowed for the call). Sync. Returns the first
    // non-OK status of a primitive unchanged.
    virtual flexrt_status run(IExecutor* executor) noexcept = 0;

    virtual void* get_extension(const char* /*name*/, uint32_t /*version*/) noexcept { return nullptr; }

    // Destroys the object inside the plugin. Called once.
    virtual void release() noexcept = 0;

protected:
    ~IScheduler() = default;
};

}  // namespace flexrt
