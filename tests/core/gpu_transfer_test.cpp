// The GPU as a tier: its pool, and the transfer engine's routes to and from it (host, pinned host, device,
// disk through pinned staging), at aligned and misaligned offsets. Skipped without a GPU.
#include "test_util.hpp"

#include "core/src/cuda_device.hpp"
#include "core/src/gpu_upload.hpp"

namespace flexrt::test {
namespace {

#define REQUIRE_GPU() \
    if (!gpu_available()) GTEST_SKIP() << "no GPU here: the GPU tier tests run on the device machine"

std::vector<std::byte> pattern(size_t n, unsigned seed) {
    std::vector<std::byte> v(n);
    std::mt19937 rng(seed);
    for (auto& b : v) b = static_cast<std::byte>(rng());
    return v;
}

class GpuTier : public ::testing::TestWithParam<std::string> {};  // the storage plugin

TEST_P(GpuTier, RoundTripThroughEveryTier) {
    REQUIRE_GPU();
    Tiers t(GetParam());
    CudaDevice gpu(256ull << 20);
    MemoryDevice pinned(TierKind::host, "pinned host", true);
    const uint64_t n = (21ull << 20) + 333;  // several staging chunks and a ragged end
    auto data = pattern(n, 3);
    auto src = t.host.allocate(n, "src");
    std::memcpy(src->data(), data.data(), n);
    auto g1 = gpu.allocate(n, "g1"), g2 = gpu.allocate(n + 4096, "g2");
    auto file = t.disk.allocate(n + 8192, "f");
    auto back = pinned.allocate(n, "back");
    TransferEngine& x = t.transfers;
    Event a = x.copy({g1.get(), 0, n}, {src.get(), 0, n});           // pageable host -> GPU
    Event b = x.copy({file.get(), 4097, n}, {g1.get(), 0, n}, {a});  // GPU -> disk, misaligned
    Event c = x.copy({g2.get(), 7, n}, {file.get(), 4097, n}, {b});  // disk -> GPU, misaligned
    Event d = x.copy({back.get(), 0, n}, {g2.get(), 7, n}, {c});     // GPU -> pinned host
    Status s = d.wait();
    ASSERT_TRUE(s.is_ok()) << s.message();
    EXPECT_EQ(std::memcmp(back->data(), data.data(), n), 0);
    // Aligned both ways, through the pipeline's fast path.
    Event e = x.copy({file.get(), 0, n}, {g1.get(), 0, n});
    Event f = x.copy({g2.get(), 0, n}, {file.get(), 0, n}, {e});
    Event g = x.copy({back.get(), 0, n}, {g2.get(), 0, n}, {f});
    ASSERT_TRUE(g.wait().is_ok()) << g.wait().message();
    EXPECT_EQ(std::memcmp(back->data(), data.data(), n), 0);
    // GPU -> pageable host: relayed through pinned staging chunks.
    auto pageable = t.host.allocate(n, "pageable");
    Event h = x.copy({pageable.get(), 0, n}, {g2.get(), 0, n});
    ASSERT_TRUE(h.wait().is_ok()) << h.wait().message();
    EXPECT_EQ(std::memcmp(pageable->data(), data.data(), n), 0);
    EXPECT_TRUE(x.wait_all().is_ok());
}

INSTANTIATE_TEST_SUITE_P(Storage, GpuTier, ::testing::Values("mmap", "aio"));

TEST(CudaDevicePool, ExhaustionNamesThePurposeAndFreesCoalesce) {
    REQUIRE_GPU();
    CudaDevice gpu(64ull << 20);
    auto a = gpu.allocate(16ull << 20, "a"), b = gpu.allocate(16ull << 20, "b"), c = gpu.allocate(16ull << 20, "c");
    EXPECT_EQ(gpu.allocated_bytes(), 48ull << 20);
    try {
        gpu.allocate(32ull << 20, "the KV cache of layer 7");
        FAIL() << "no error";
    } catch (const Error& e) {
        EXPECT_EQ(e.status(), FLEXRT_STATUS_OUT_OF_MEMORY);
        EXPECT_NE(std::string(e.what()).find("the KV cache of layer 7"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("largest free block"), std::string::npos) << e.what();
    }
    a.reset();
    b.reset();  // a and b merge into one 32 MiB block
    auto big = gpu.allocate(32ull << 20, "big");
    EXPECT_NE(big->data(), nullptr);
    EXPECT_EQ(gpu.peak_bytes(), 48ull << 20);
}

TEST(CudaDevicePool, MoreThanTheGpuHasIsRefusedUpFront) {
    REQUIRE_GPU();
    try {
        CudaDevice too_big(1ull << 50);
        FAIL() << "no error";
    } catch (const Error& e) {
        EXPECT_EQ(e.status(), FLEXRT_STATUS_OUT_OF_MEMORY);
        EXPECT_NE(std::string(e.what()).find("free"), std::string::npos) << e.what();
    }
}

TEST(CudaDevicePool, WithoutCudaItSaysSo) {
    if (gpu_available()) GTEST_SKIP() << "a GPU is present";
    EXPECT_THROW(CudaDevice(1 << 20), Error);
}

}  // namespace
}  // namespace flexrt::test
