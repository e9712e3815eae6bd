// What every storage plugin must do, checked the same way for each: round trips of random data at aligned
// and unaligned sizes and offsets (through the core, which bounces what the plugin cannot take), files that
// are not a multiple of the alignment, reads past the end, concurrent and many small or few large requests,
// rename. Every in-tree plugin (and configuration) is instantiated; FLEXRT_TEST_PLUGIN=/path/lib.so adds a
// third party's.
#include "test_util.hpp"

#include "ops/f16.hpp"

#include <cstdlib>
#include <random>
#include <thread>

namespace flexrt::test {
namespace {

struct StorageCase {
    std::string name;    // test name
    std::string plugin;  // name or path
    toml::table options;
};

std::ostream& operator<<(std::ostream& os, const StorageCase& c) { return os << c.name; }

std::vector<std::byte> random_bytes(size_t n, unsigned seed) {
    std::vector<std::byte> v(n);
    std::mt19937_64 rng(seed);
    for (size_t i = 0; i < n; i += 8) {
        const uint64_t x = rng();
        std::memcpy(v.data() + i, &x, std::min<size_t>(8, n - i));
    }
    return v;
}

class StorageConformance : public ::testing::TestWithParam<StorageCase> {
protected:
    void SetUp() override {
        storage_ = make_storage(GetParam().plugin, {{FLEXRT_TEST_PLUGIN_DIR, "test"}}, GetParam().options);
        disk_.emplace(*storage_, dir_ / "offload");
    }
    // Writes `data` at `offset` of `file` through the core and reads it back at the same place.
    void round_trip(Buffer& file, uint64_t offset, const std::vector<std::byte>& data) {
        ASSERT_TRUE(disk_write(static_cast<DiskBuffer&>(file), offset, data.data(), data.size()).is_ok());
        std::vector<std::byte> back(data.size());
        Status s = disk_read(static_cast<DiskBuffer&>(file), offset, back.data(), back.size());
        ASSERT_TRUE(s.is_ok()) << s.message();
        ASSERT_EQ(back, data) << "offset " << offset << ", " << data.size() << " bytes";
    }
    TempDir dir_;
    PluginPtr<IStorage> storage_;
    std::optional<DiskDevice> disk_;
};

TEST_P(StorageConformance, RoundTripAlignedAndUnaligned) {
    auto file = disk_->allocate(3 << 20, "rt");
    const uint64_t align = std::max<uint64_t>(1, storage_->required_alignment());
    unsigned seed = 1;
    for (uint64_t offset : {uint64_t{0}, align, uint64_t{1}, uint64_t{4095}, uint64_t{4097}, uint64_t{1} << 20})
        for (uint64_t size : {uint64_t{1}, uint64_t{511}, align, uint64_t{4096} * 3, uint64_t{100001}, uint64_t{1} << 20})
            round_trip(*file, offset, random_bytes(size, seed++));
    // Neighbours of an unaligned write keep their bytes (read-modify-write does not clobber them).
    auto a = random_bytes(1000, 90), b = random_bytes(1000, 91);
    round_trip(*file, 10000, a);
    round_trip(*file, 11000, b);
    std::vector<std::byte> both(2000);
    ASSERT_TRUE(disk_read(static_cast<DiskBuffer&>(*file), 10000, both.data(), 2000).is_ok());
    EXPECT_TRUE(std::equal(a.begin(), a.end(), both.begin()));
    EXPECT_TRUE(std::equal(b.begin(), b.end(), both.begin() + 1000));
}

// Compressed tensors (the group4 plugin's blocks: codes, then fp16 scale/min pairs) go to disk and back as
// bytes, at aligned and unaligned offsets, and decompress to exactly what they decompressed to before.
TEST_P(StorageConformance, CompressedTensorsRoundTrip) {
    auto group4 = make_compressor("group4");
    auto file = disk_->allocate(4 << 20, "compressed");
    uint64_t offset = 0;
    unsigned seed = 40;
    for (const std::vector<uint64_t>& shape : {std::vector<uint64_t>{300, 96}, std::vector<uint64_t>{7, 7168}, std::vector<uint64_t>{1000}}) {
        flexrt_tensor_desc d{sizeof(flexrt_tensor_desc), FLEXRT_DTYPE_F16, static_cast<uint32_t>(shape.size()), {}};
        std::copy(shape.begin(), shape.end(), d.shape);
        uint64_t n = 1, bytes = 0;
        for (uint64_t e : shape) n *= e;
        ASSERT_EQ(group4->compressed_bytes(&d, &bytes), FLEXRT_STATUS_OK);
        std::vector<uint16_t> x(n);
        std::mt19937 rng(seed++);
        std::uniform_real_distribution<float> u(-1.0f, 1.0f);
        for (auto& v : x) v = ops::float_to_half(u(rng));
        std::vector<std::byte> packed(bytes);
        ASSERT_EQ(group4->compress(&d, x.data(), packed.data()), FLEXRT_STATUS_OK);
        std::vector<uint16_t> want(n), got(n);
        ASSERT_EQ(group4->decompress(&d, packed.data(), want.data()), FLEXRT_STATUS_OK);
        round_trip(*file, offset, packed);
        std::vector<std::byte> back(bytes);
        ASSERT_TRUE(disk_read(static_cast<DiskBuffer&>(*file), offset, back.data(), bytes).is_ok());
        ASSERT_EQ(group4->decompress(&d, back.data(), got.data()), FLEXRT_STATUS_OK);
        EXPECT_EQ(got, want) << shape.size() << "-d tensor at offset " << offset;
        offset += bytes + 13;  // the next one unaligned
    }
}

TEST_P(StorageConformance, FileNotAMultipleOfTheAlignment) {
    const uint64_t size = 10000 + 7;
    auto file = disk_->allocate(size, "odd");
    EXPECT_EQ(file->bytes(), size);
    uint64_t reported = 0;
    ASSERT_EQ(storage_->file_size(static_cast<DiskBuffer&>(*file).file(), &reported), FLEXRT_STATUS_OK);
    EXPECT_EQ(reported, size);  // the true length, whatever the padding on disk
    if (GetParam().plugin == "aio") {  // learned from the file system: a power of two of at least a sector
        const uint64_t align = storage_->required_alignment();
        EXPECT_GE(align, 512u);
        EXPECT_EQ(align & (align - 1), 0u);
    }
    round_trip(*file, 0, random_bytes(size, 5));
    round_trip(*file, size - 3, random_bytes(3, 6));  // the last bytes, inside a partial block
}

TEST_P(StorageConformance, ExistingFileReadToItsEnd) {
    const fs::path p = dir_ / "existing.bin";
    auto data = random_bytes(12345, 7);
    write_file(p, std::string(reinterpret_cast<const char*>(data.data()), data.size()));
    auto file = disk_->open_existing(p);
    ASSERT_EQ(file->bytes(), data.size());
    std::vector<std::byte> back(data.size());
    ASSERT_TRUE(disk_read(static_cast<DiskBuffer&>(*file), 0, back.data(), back.size()).is_ok());
    EXPECT_EQ(back, data);
    std::vector<std::byte> tail(45);
    ASSERT_TRUE(disk_read(static_cast<DiskBuffer&>(*file), 12300, tail.data(), 45).is_ok());
    EXPECT_TRUE(std::equal(tail.begin(), tail.end(), data.begin() + 12300));
    // A direct aligned read running past the end returns what exists.
    const uint64_t align = std::max<uint64_t>(4096, storage_->required_alignment());
    std::unique_ptr<std::byte, decltype(&std::free)> buf(static_cast<std::byte*>(std::aligned_alloc(align, 4 * align)), &std::free);
    flexrt_io_request r{};
    r.struct_size = sizeof r;
    r.op = FLEXRT_IO_OP_READ;
    r.file = static_cast<DiskBuffer&>(*file).file();
    r.offset = 8192;
    r.bytes = 8192;
    r.buffer = buf.get();
    flexrt_io_request* rp = &r;
    ASSERT_EQ(storage_->submit(&rp, 1), FLEXRT_STATUS_OK);
    ASSERT_EQ(storage_->wait(&rp, 1), FLEXRT_STATUS_OK);
    EXPECT_EQ(r.status, FLEXRT_STATUS_OK);
    EXPECT_EQ(r.bytes_done, 12345u - 8192u);
    EXPECT_EQ(std::memcmp(buf.get(), data.data() + 8192, 12345 - 8192), 0);
}

TEST_P(StorageConformance, ConcurrentRequests) {
    auto file = disk_->allocate(8 << 20, "concurrent");
    std::vector<std::thread> threads;
    std::atomic<int> failures{0};
    for (int t = 0; t < 8; ++t)
        threads.emplace_back([&, t] {
            for (int round = 0; round < 4; ++round) {
                auto data = random_bytes((1 << 20) - 3 * t, 100 * t + round);  // unaligned sizes too
                const uint64_t off = static_cast<uint64_t>(t) << 20;
                std::vector<std::byte> back(data.size());
                if (!disk_write(static_cast<DiskBuffer&>(*file), off, data.data(), data.size()).is_ok() ||
                    !disk_read(static_cast<DiskBuffer&>(*file), off, back.data(), back.size()).is_ok() || back != data)
                    ++failures;
            }
        });
    for (auto& th : threads) th.join();
    EXPECT_EQ(failures.load(), 0);
}

TEST_P(StorageConformance, ManySmallAndFewLargeRequests) {
    const uint64_t align = std::max<uint64_t>(4096, storage_->required_alignment());
    auto file = disk_->allocate(48 << 20, "sizes");
    auto small = random_bytes(1000 * align, 11);
    std::unique_ptr<std::byte, decltype(&std::free)> buf(static_cast<std::byte*>(std::aligned_alloc(align, 48 << 20)), &std::free);
    std::memcpy(buf.get(), small.data(), small.size());
    // 1000 aligned requests of one block each, submitted together.
    std::vector<flexrt_io_request> reqs(1000);
    std::vector<flexrt_io_request*> ptrs;
    for (size_t i = 0; i < reqs.size(); ++i) {
        reqs[i] = {};
        reqs[i].struct_size = sizeof(flexrt_io_request);
        reqs[i].op = FLEXRT_IO_OP_WRITE;
        reqs[i].file = static_cast<DiskBuffer&>(*file).file();
        reqs[i].offset = i * align;
        reqs[i].bytes = align;
        reqs[i].buffer = buf.get() + i * align;
        ptrs.push_back(&reqs[i]);
    }
    ASSERT_EQ(storage_->submit(ptrs.data(), 1000), FLEXRT_STATUS_OK);
    ASSERT_EQ(storage_->wait(ptrs.data(), 1000), FLEXRT_STATUS_OK);
    for (const auto& r : reqs) ASSERT_EQ(r.status, FLEXRT_STATUS_OK);
    std::vector<std::byte> back(small.size());
    ASSERT_TRUE(disk_read(static_cast<DiskBuffer&>(*file), 0, back.data(), back.size()).is_ok());
    EXPECT_EQ(back, small);
    // Three large ones.
    auto large = random_bytes(48 << 20, 12);
    for (int i = 0; i < 3; ++i) round_trip(*file, static_cast<uint64_t>(i) * (16 << 20), std::vector<std::byte>(large.begin() + i * (16 << 20), large.begin() + (i + 1) * (16 << 20)));
    // And a large ragged one, at an unaligned offset: a plugin that splits large requests (mmap's threads) must
    // cover the odd tail exactly.
    round_trip(*file, 4097, std::vector<std::byte>(large.begin(), large.begin() + (9 << 20) + 12345));
}

TEST_P(StorageConformance, RenameMakesTheFileVisibleUnderItsName) {
    const fs::path tmp = dir_ / "out.tmp", final_path = dir_ / "out.bin";
    uint64_t h = 0;
    ASSERT_EQ(storage_->open(tmp.c_str(), FLEXRT_OPEN_WRITE | FLEXRT_OPEN_CREATE, 5000, &h), FLEXRT_STATUS_OK);
    ASSERT_EQ(storage_->flush(h), FLEXRT_STATUS_OK);
    ASSERT_EQ(storage_->rename(tmp.c_str(), final_path.c_str()), FLEXRT_STATUS_OK);
    ASSERT_EQ(storage_->close(h), FLEXRT_STATUS_OK);
    EXPECT_FALSE(fs::exists(tmp));
    EXPECT_TRUE(fs::exists(final_path) || GetParam().plugin == "faulty");  // faulty keeps files in memory
}

TEST_P(StorageConformance, UnknownHandleIsAnErrorNotACrash) {
    uint64_t size = 0;
    EXPECT_NE(storage_->file_size(987654, &size), FLEXRT_STATUS_OK);
    take_last_plugin_error();
}

std::vector<StorageCase> cases() {
    std::vector<StorageCase> c = {
        {"mmap", "mmap", {}},
        {"aio_overlapped", "aio", toml::table{{"block_size", 65536}, {"queue_depth", 8}, {"threads", 2}}},
        {"aio_sequential", "aio", toml::table{{"block_size", 65536}, {"queue_depth", 4}, {"submission", "sequential"}}},
        {"aio_defaults", "aio", {}},
    };
    if (const char* extra = std::getenv("FLEXRT_TEST_PLUGIN")) c.push_back({"third_party", extra, {}});
    return c;
}

INSTANTIATE_TEST_SUITE_P(Plugins, StorageConformance, ::testing::ValuesIn(cases()),
                         [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace flexrt::test
