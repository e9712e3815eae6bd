// The host communicator between real processes (fork): a ring of messages of several sizes with their tags and
// a barrier, between 3 ranks started in any order; a rank that dies ends its peers' next receive with an error
// naming it within the timeout, not a hang; a mismatched message or a bad rendezvous is a clear error.
#include "process_util.hpp"
#include "test_util.hpp"

#include "core/src/gpu_upload.hpp"
#include "core/src/nccl_communicator.hpp"
#include "core/src/tcp_communicator.hpp"

#include <random>
#include <thread>

namespace flexrt::test {
namespace {

std::vector<uint8_t> pattern(size_t n, unsigned seed) {
    std::vector<uint8_t> v(n);
    std::mt19937 rng(seed);
    for (auto& b : v) b = static_cast<uint8_t>(rng());
    return v;
}

TEST(TcpCommunicator, RingOfMessagesAndABarrierBetweenProcesses) {
    const std::string at = "127.0.0.1:" + std::to_string(free_port());
    const auto codes = run_ranks(
        3,
        [&](int rank) {
            TcpCommunicator c(rank, 3, at, 20);
            const int next = (rank + 1) % 3, prev = (rank + 2) % 3;
            for (uint64_t tag = 0; tag < 4; ++tag) {
                const size_t n = tag == 3 ? (8u << 20) + 13 : 1000 * tag + 1;  // up to 8 MiB, odd sizes
                const auto out = pattern(n, static_cast<unsigned>(rank * 100 + tag));
                std::vector<uint8_t> in(n);
                if (rank == 0) {  // rank 0 receives first, the others send first (FlexLLMGen's order)
                    c.recv(prev, in.data(), n, tag);
                    c.send(next, out.data(), n, tag);
                } else {
                    c.send(next, out.data(), n, tag);
                    c.recv(prev, in.data(), n, tag);
                }
                if (in != pattern(n, static_cast<unsigned>(prev * 100 + tag))) return 2;
            }
            c.barrier();
            return 0;
        },
        30);
    EXPECT_EQ(codes, (std::vector<int>{0, 0, 0}));
}

TEST(TcpCommunicator, ADeadRankEndsItsPeersWithAnErrorNamingIt) {
    const std::string at = "127.0.0.1:" + std::to_string(free_port());
    const auto t0 = std::chrono::steady_clock::now();
    const auto codes = run_ranks(3, [&](int rank) {
        TcpCommunicator c(rank, 3, at, 20);
        if (rank == 2) ::_exit(9);  // killed before it sends anything
        uint8_t b = 0;
        try {
            c.recv(2, &b, 1, 0);
        } catch (const Error& e) { return std::string(e.what()).find("rank 2 has ended") != std::string::npos ? 0 : 3; }
        return 4;
    });
    EXPECT_EQ(codes, (std::vector<int>{0, 0, 9}));
    EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(15)) << "the peers waited for the timeout, not the closed socket";
}

TEST(TcpCommunicator, MismatchedMessagesAndBadAddressesAreClearErrors) {
    const std::string at = "127.0.0.1:" + std::to_string(free_port());
    const auto codes = run_ranks(2, [&](int rank) {
        TcpCommunicator c(rank, 2, at, 20);
        uint32_t v = 7;
        if (rank == 1) {
            c.send(0, &v, sizeof v, 5);
            return 0;
        }
        try {
            c.recv(1, &v, sizeof v, 6);
        } catch (const Error& e) { return std::string(e.what()).find("message 5 of 4 bytes where message 6") != std::string::npos ? 0 : 3; }
        return 4;
    });
    EXPECT_EQ(codes, (std::vector<int>{0, 0}));
    EXPECT_THROW(TcpCommunicator(0, 2, "no-port-here", 1), Error);
    EXPECT_THROW(TcpCommunicator(2, 2, "127.0.0.1:1", 1), Error);
    // Nobody else comes: the rendezvous times out naming itself.
    try {
        TcpCommunicator(0, 2, "127.0.0.1:" + std::to_string(free_port()), 0.3);
        ADD_FAILURE() << "a world of 2 formed alone";
    } catch (const Error& e) { EXPECT_NE(std::string(e.what()).find("rendezvous"), std::string::npos) << e.what(); }
}

// The NCCL path with one rank on one GPU (the several-GPU runs need a machine of several): a grouped send to
// itself lands byte for byte, and a barrier returns. Without CUDA, constructing one is a clear error.
TEST(NcclCommunicator, OneRankSendsToItselfOnTheGpu) {
    TcpCommunicator boot(0, 1, "127.0.0.1:1");  // a world of one: no network
#ifndef FLEXRT_WITH_CUDA
    try {
        NcclCommunicator nccl(boot);
        ADD_FAILURE() << "an NCCL communicator without CUDA";
    } catch (const Error& e) { EXPECT_EQ(e.status(), FLEXRT_STATUS_UNSUPPORTED) << e.what(); }
#else
    if (!gpu_available()) GTEST_SKIP() << "no GPU here";
    NcclCommunicator nccl(boot);
    EXPECT_EQ(nccl.world(), 1);
    const auto data = pattern((4u << 20) + 7, 77);
    GpuMemory a(data.size()), b(data.size());
    ASSERT_TRUE(
        gpu_copy(a.data(), MemoryKind::device, reinterpret_cast<const std::byte*>(data.data()), MemoryKind::host, data.size()).is_ok());
    nccl.send_recv(0, a.data(), 0, b.data(), data.size());
    std::vector<uint8_t> back(data.size());
    b.copy_to_host(back.data(), 0, back.size());
    EXPECT_EQ(back, data);
    nccl.barrier();
#endif
}

}  // namespace
}  // namespace flexrt::test
