// The GPU communicator: NCCL point-to-point between ranks' GPU buffers, on a stream of its own. Its unique id
// travels from rank 0 to the others over a bootstrap communicator (the TCP one, whatever launched the ranks).
// NCCL is opened at run time (dlopen libnccl.so.2), so flexrt runs where NCCL is absent as long as no
// pipeline over GPUs is asked for; then the error says NCCL is missing. Without CUDA, constructing one
// reports UNSUPPORTED.
#pragma once

#include "communicator.hpp"

#include <memory>

namespace flexrt {

class NcclCommunicator final : public ICommunicator {
public:
    // Collective over `bootstrap`'s ranks: each calls it with its own GPU. Throws naming what failed. `bootstrap`
    // (borrowed, outliving this) also tells when a peer has ended: NCCL alone would wait for it forever.
    explicit NcclCommunicator(ICommunicator& bootstrap, int device = 0);
    ~NcclCommunicator() override;
    int rank() const noexcept override;
    int world() const noexcept override;
    // `data`: device memory. Each returns once its transfer has completed. A peer may be this rank itself.
    void send(int peer, const void* data, uint64_t bytes, uint64_t tag) override;
    void recv(int peer, void* data, uint64_t bytes, uint64_t tag) override;
    // Sends and receives at once (grouped): what a stage does with its neighbours, and a rank with itself.
    void send_recv(int to, const void* out, int from, void* in, uint64_t bytes);
    void barrier() override;
    void abort() noexcept override;
    bool peer_gone(int peer) noexcept override;

    struct Impl;

private:
    std::unique_ptr<Impl> impl_;
};

}  // namespace flexrt
