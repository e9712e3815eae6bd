// The stage-to-stage transport of pipeline parallelism: blocking point-to-point messages between ranks. Two
// implementations behind it: TCP between processes on host memory (tests, CPU runs, FlexLLMGen's gloo), and
// NCCL on GPU buffers. A peer that is gone is an error naming it, never a hang.
#pragma once

#include <cstdint>

namespace flexrt {

class ICommunicator {
public:
    virtual ~ICommunicator() = default;
    virtual int rank() const noexcept = 0;
    virtual int world() const noexcept = 0;
    // Sends `bytes` at `data` to `peer`, and receives as many from it. Messages between two ranks arrive in
    // order; `tag` must match on both sides (a mismatch is an error naming both tags). Throws flexrt::Error
    // naming the peer when it has ended or failed (at once: a live peer is waited for, however long its step).
    virtual void send(int peer, const void* data, uint64_t bytes, uint64_t tag) = 0;
    virtual void recv(int peer, void* data, uint64_t bytes, uint64_t tag) = 0;
    // Returns once every rank has called it.
    virtual void barrier() = 0;
    // Ends every connection of this rank now, from any thread: calls blocked here fail at once, and the peers'
    // next calls fail naming this rank. What a rank does when it fails, so that no peer waits for it.
    virtual void abort() noexcept = 0;
    // Whether `peer` has ended (its connection closed), without waiting; false where the transport cannot tell.
    virtual bool peer_gone(int peer) noexcept = 0;
};

}  // namespace flexrt
