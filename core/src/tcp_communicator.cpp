#include "tcp_communicator.hpp"

#include <flexrt/status.hpp>

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <thread>

namespace flexrt {
namespace {

using Clock = std::chrono::steady_clock;
constexpr uint64_t kHello = 0x464c585254434f4dull;  // "FLXRTCOM"
constexpr uint64_t kBarrierTag = ~0ull;

struct Header {
    uint64_t tag, bytes;
};

[[noreturn]] void fail_sys(const std::string& what) {
    const int err = errno;
    FLEXRT_THROW(status_from_errno(err), what + ": " + errno_text(err));
}

// Waits until fd is readable (or writable); false on timeout.
bool wait_for(int fd, short events, int timeout_ms) {
    pollfd p{fd, events, 0};
    for (;;) {
        const int n = ::poll(&p, 1, timeout_ms);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) fail_sys("poll");
        return n > 0;
    }
}

void write_all(int fd, const void* data, uint64_t bytes, int timeout_ms, const std::string& peer) {
    const auto* p = static_cast<const char*>(data);
    for (uint64_t done = 0; done < bytes;) {
        if (!wait_for(fd, POLLOUT, timeout_ms))
            FLEXRT_THROW(FLEXRT_STATUS_IO_ERROR, peer + " took no data for " + std::to_string(timeout_ms / 1000) + " s");
        const ssize_t n = ::send(fd, p + done, bytes - done, MSG_NOSIGNAL);
        if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (n < 0 && (errno == EPIPE || errno == ECONNRESET)) FLEXRT_THROW(FLEXRT_STATUS_IO_ERROR, peer + " has ended (connection closed)");
        if (n < 0) fail_sys("sending to " + peer);
        done += static_cast<uint64_t>(n);
    }
}

void read_all(int fd, void* data, uint64_t bytes, int timeout_ms, const std::string& peer) {
    auto* p = static_cast<char*>(data);
    for (uint64_t done = 0; done < bytes;) {
        if (!wait_for(fd, POLLIN, timeout_ms))
            FLEXRT_THROW(FLEXRT_STATUS_IO_ERROR, peer + " sent nothing for " + std::to_string(timeout_ms / 1000) + " s");
        const ssize_t n = ::recv(fd, p + done, bytes - done, 0);
        if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (n == 0 || (n < 0 && errno == ECONNRESET)) FLEXRT_THROW(FLEXRT_STATUS_IO_ERROR, peer + " has ended (connection closed)");
        if (n < 0) fail_sys("receiving from " + peer);
        done += static_cast<uint64_t>(n);
    }
}

std::string name_of(int rank) { return "rank " + std::to_string(rank); }

// A socket that closes itself unless released.
struct Fd {
    int fd = -1;
    explicit Fd(int f) : fd(f) {}
    ~Fd() {
        if (fd >= 0) ::close(fd);
    }
    int release() { return std::exchange(fd, -1); }
};

int listen_on(const sockaddr_in& addr, const std::string& what) {
    Fd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (s.fd < 0) fail_sys("socket");
    const int one = 1;
    ::setsockopt(s.fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(s.fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) fail_sys("binding " + what);
    if (::listen(s.fd, 128) != 0) fail_sys("listening on " + what);
    return s.release();
}

// Connects to addr, retrying until the deadline (the peer may not listen yet).
int connect_to(const sockaddr_in& addr, Clock::time_point deadline, const std::string& what) {
    for (;;) {
        Fd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
        if (s.fd < 0) fail_sys("socket");
        if (::connect(s.fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0) {
            const int one = 1;
            ::setsockopt(s.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            return s.release();
        }
        if (Clock::now() > deadline) fail_sys("connecting to " + what);
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
}

int accept_one(int listener, Clock::time_point deadline, const std::string& what) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0 || !wait_for(listener, POLLIN, static_cast<int>(left)))
        FLEXRT_THROW(FLEXRT_STATUS_IO_ERROR, what + ": not every rank came before the timeout");
    const int fd = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) fail_sys("accepting on " + what);
    const int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

sockaddr_in resolve(const std::string& rendezvous) {
    const auto colon = rendezvous.rfind(':');
    if (colon == std::string::npos || colon == 0)
        FLEXRT_THROW(FLEXRT_STATUS_INVALID_ARGUMENT, "--rendezvous '" + rendezvous + "': expected host:port");
    const std::string host = rendezvous.substr(0, colon), port = rendezvous.substr(colon + 1);
    addrinfo hints{}, *res = nullptr;
    hints.ai_family = AF_INET, hints.ai_socktype = SOCK_STREAM;
    if (const int e = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &res); e != 0 || !res)
        FLEXRT_THROW(FLEXRT_STATUS_INVALID_ARGUMENT, "--rendezvous '" + rendezvous + "': " + ::gai_strerror(e));
    sockaddr_in a{};
    std::memcpy(&a, res->ai_addr, sizeof a);
    ::freeaddrinfo(res);
    return a;
}

struct Entry {  // what the rendezvous hands out per rank: where it listens
    uint32_t ip;
    uint16_t port;
};

}  // namespace

TcpCommunicator::TcpCommunicator(int rank, int world, const std::string& rendezvous, double timeout_s, double idle_timeout_s)
    : rank_(rank),
      world_(world),
      timeout_ms_(static_cast<int>(timeout_s * 1000)),
      idle_ms_(idle_timeout_s > 0 ? static_cast<int>(idle_timeout_s * 1000) : -1),
      peers_(static_cast<size_t>(std::max(world, 0)), -1),
      send_locks_(std::make_unique<std::mutex[]>(peers_.size())),
      recv_locks_(std::make_unique<std::mutex[]>(peers_.size())) {
    if (world < 1 || rank < 0 || rank >= world)
        FLEXRT_THROW(FLEXRT_STATUS_INVALID_ARGUMENT, "rank " + std::to_string(rank) + " of a world of " + std::to_string(world));
    if (world == 1) return;
    const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms_);
    const sockaddr_in meet = resolve(rendezvous);
    const std::string where = "the rendezvous " + rendezvous;
    std::vector<Entry> table(static_cast<size_t>(world));
    // Every rank but 0 listens on a port of its own for the ranks above it.
    sockaddr_in any{};
    any.sin_family = AF_INET;
    Fd own(rank > 0 ? listen_on(any, "a port of rank " + std::to_string(rank)) : -1);
    if (rank == 0) {
        Fd listener(listen_on(meet, where));
        for (int n = 1; n < world; ++n) {
            Fd s(accept_one(listener.fd, deadline, where));
            uint64_t hello[3];
            read_all(s.fd, hello, sizeof hello, timeout_ms_, "a joining rank");
            const int r = static_cast<int>(hello[1]);
            if (hello[0] != kHello || r < 1 || r >= world || static_cast<int>(hello[2]) != world || peers_[static_cast<size_t>(r)] >= 0)
                FLEXRT_THROW(FLEXRT_STATUS_INVALID_ARGUMENT, where + ": a rank said it is rank " + std::to_string(r) + " of " +
                                                                 std::to_string(hello[2]) + "; this world has " + std::to_string(world));
            sockaddr_in peer{};
            socklen_t len = sizeof peer;
            ::getpeername(s.fd, reinterpret_cast<sockaddr*>(&peer), &len);
            uint64_t port = 0;
            read_all(s.fd, &port, sizeof port, timeout_ms_, name_of(r));
            table[static_cast<size_t>(r)] = {peer.sin_addr.s_addr, static_cast<uint16_t>(port)};
            peers_[static_cast<size_t>(r)] = s.release();
        }
        for (int r = 1; r < world; ++r)
            write_all(peers_[static_cast<size_t>(r)], table.data(), table.size() * sizeof(Entry), timeout_ms_, name_of(r));
        return;
    }
    sockaddr_in mine{};
    socklen_t len = sizeof mine;
    ::getsockname(own.fd, reinterpret_cast<sockaddr*>(&mine), &len);
    peers_[0] = connect_to(meet, deadline, where);
    const uint64_t hello[3] = {kHello, static_cast<uint64_t>(rank), static_cast<uint64_t>(world)};
    const uint64_t port = ntohs(mine.sin_port);
    write_all(peers_[0], hello, sizeof hello, timeout_ms_, "rank 0");
    write_all(peers_[0], &port, sizeof port, timeout_ms_, "rank 0");
    read_all(peers_[0], table.data(), table.size() * sizeof(Entry), timeout_ms_, "rank 0");
    // Pairs of ranks above 0: the higher connects to the lower, and says who it is.
    for (int r = 1; r < rank; ++r) {
        sockaddr_in a{};
        a.sin_family = AF_INET, a.sin_addr.s_addr = table[static_cast<size_t>(r)].ip,
        a.sin_port = htons(table[static_cast<size_t>(r)].port);
        peers_[static_cast<size_t>(r)] = connect_to(a, deadline, name_of(r));
        const uint64_t me = static_cast<uint64_t>(rank);
        write_all(peers_[static_cast<size_t>(r)], &me, sizeof me, timeout_ms_, name_of(r));
    }
    for (int n = rank + 1; n < world; ++n) {
        Fd s(accept_one(own.fd, deadline, "rank " + std::to_string(rank) + "'s port"));
        uint64_t who = 0;
        read_all(s.fd, &who, sizeof who, timeout_ms_, "a rank above " + std::to_string(rank));
        if (who <= static_cast<uint64_t>(rank) || who >= static_cast<uint64_t>(world) || peers_[who] >= 0)
            FLEXRT_THROW(FLEXRT_STATUS_INVALID_ARGUMENT,
                         "rank " + std::to_string(rank) + ": a peer said it is rank " + std::to_string(who));
        peers_[who] = s.release();
    }
}

TcpCommunicator::~TcpCommunicator() {
    for (int fd : peers_)
        if (fd >= 0) ::close(fd);
}

int TcpCommunicator::socket_of(int peer, const char* what) const {
    if (peer < 0 || peer >= world_ || peer == rank_)
        FLEXRT_THROW(FLEXRT_STATUS_INVALID_ARGUMENT, std::string(what) + " to or from rank " + std::to_string(peer) + " of a world of " +
                                                         std::to_string(world_) + " (this is rank " + std::to_string(rank_) + ")");
    return peers_[static_cast<size_t>(peer)];
}

void TcpCommunicator::send(int peer, const void* data, uint64_t bytes, uint64_t tag) {
    const int fd = socket_of(peer, "send");
    std::lock_guard lock(send_locks_[static_cast<size_t>(peer)]);
    const Header h{tag, bytes};
    write_all(fd, &h, sizeof h, idle_ms_, name_of(peer));
    write_all(fd, data, bytes, idle_ms_, name_of(peer));
}

void TcpCommunicator::recv(int peer, void* data, uint64_t bytes, uint64_t tag) {
    const int fd = socket_of(peer, "recv");
    std::lock_guard lock(recv_locks_[static_cast<size_t>(peer)]);
    Header h{};
    read_all(fd, &h, sizeof h, idle_ms_, name_of(peer));
    if (h.tag != tag || h.bytes != bytes)
        FLEXRT_THROW(FLEXRT_STATUS_INTERNAL, name_of(peer) + " sent message " + std::to_string(h.tag) + " of " + std::to_string(h.bytes) +
                                                 " bytes where message " + std::to_string(tag) + " of " + std::to_string(bytes) +
                                                 " was expected");
    read_all(fd, data, bytes, idle_ms_, name_of(peer));
}

void TcpCommunicator::abort() noexcept {
    for (int fd : peers_)
        if (fd >= 0) ::shutdown(fd, SHUT_RDWR);  // closed in the destructor: another thread may be in a call on it
}

bool TcpCommunicator::peer_gone(int peer) noexcept {
    if (peer < 0 || peer >= world_ || peer == rank_) return false;
    pollfd p{peers_[static_cast<size_t>(peer)], POLLRDHUP, 0};
    return ::poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

void TcpCommunicator::barrier() {
    if (world_ == 1) return;
    const uint8_t token = 1;
    uint8_t got = 0;
    if (rank_ == 0) {
        for (int r = 1; r < world_; ++r) recv(r, &got, 1, kBarrierTag);
        for (int r = 1; r < world_; ++r) send(r, &token, 1, kBarrierTag);
    } else {
        send(0, &token, 1, kBarrierTag);
        recv(0, &got, 1, kBarrierTag);
    }
}

}  // namespace flexrt
