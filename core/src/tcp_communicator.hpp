// The host communicator: TCP between the ranks' processes (one host or several), with a rendezvous at rank 0:
// `flexrt --rank R --world N --rendezvous host:port` (NCCL's unique id travels the same way). Rank 0 listens at
// host:port; every other rank connects to it (retrying until the timeout, as ranks start in any order), gives
// its rank and a port of its own, and gets the table of all; then each pair of ranks connects directly. A rank
// that ends closes its sockets, so its peers' next send or receive fails naming it. Threads may share one.
#pragma once

#include "communicator.hpp"

#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace flexrt {

class TcpCommunicator final : public ICommunicator {
public:
    // Throws naming the rendezvous address and what failed (a bad address, a rank or world out of range, a
    // peer that did not come within `timeout_s`). After it, a call waits for a live peer as long as it takes
    // (a rank's step may take minutes), or `idle_timeout_s` when above 0; a peer that has ended fails it at once.
    TcpCommunicator(int rank, int world, const std::string& rendezvous, double timeout_s = 300, double idle_timeout_s = 0);
    ~TcpCommunicator() override;
    TcpCommunicator(const TcpCommunicator&) = delete;
    TcpCommunicator& operator=(const TcpCommunicator&) = delete;

    int rank() const noexcept override { return rank_; }
    int world() const noexcept override { return world_; }
    void send(int peer, const void* data, uint64_t bytes, uint64_t tag) override;
    void recv(int peer, void* data, uint64_t bytes, uint64_t tag) override;
    void barrier() override;
    void abort() noexcept override;
    bool peer_gone(int peer) noexcept override;

private:
    int socket_of(int peer, const char* what) const;
    int rank_, world_;
    int timeout_ms_, idle_ms_;  // the rendezvous's; each call's afterwards (-1: none)
    std::vector<int> peers_;    // a connected socket per rank (-1 for this one)
    // Calls from several threads are safe: a message to (or from) a peer goes whole under its lock.
    std::unique_ptr<std::mutex[]> send_locks_, recv_locks_;
};

}  // namespace flexrt
