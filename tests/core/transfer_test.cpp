// The transfer engine: copies between every pair of tiers, ordering by events, failures that propagate.
#include "test_util.hpp"

#include <atomic>
#include <csignal>
#include <numeric>
#include <thread>

namespace flexrt::test {
namespace {

std::vector<std::byte> pattern(size_t n, unsigned seed) {
    std::vector<std::byte> v(n);
    std::mt19937 rng(seed);
    for (auto& b : v) b = static_cast<std::byte>(rng());
    return v;
}

TEST(Transfer, RoundTripThroughEveryTier) {
    Tiers t;
    const size_t n = (3 << 20) + 123;  // not a multiple of anything
    auto src = t.host.allocate(n, "src");
    auto data = pattern(n, 1);
    std::memcpy(src->data(), data.data(), n);
    auto on_compute = t.compute.allocate(n, "c");
    auto on_disk = t.disk.allocate(n + 4096, "d");
    auto on_disk2 = t.disk.allocate(n, "d2");
    auto back = t.host.allocate(n, "back");
    Event a = t.transfers.copy({on_compute.get(), 0, n}, {src.get(), 0, n});
    Event b = t.transfers.copy({on_disk.get(), 4096 + 7, n - 7}, {on_compute.get(), 7, n - 7}, {a});
    Event c = t.transfers.copy({on_disk2.get(), 7, n - 7}, {on_disk.get(), 4096 + 7, n - 7}, {b});  // disk to disk
    Event d = t.transfers.copy({back.get(), 7, n - 7}, {on_disk2.get(), 7, n - 7}, {c});
    std::memcpy(back->data(), data.data(), 7);
    ASSERT_TRUE(d.wait().is_ok()) << d.wait().message();
    EXPECT_EQ(std::memcmp(back->data(), data.data(), n), 0);
    EXPECT_TRUE(t.transfers.wait_all().is_ok());
}

TEST(Transfer, DependenciesOrderCopies) {
    Tiers t;
    const size_t n = 1 << 20;
    auto a = t.host.allocate(n, "a"), b = t.host.allocate(n, "b"), c = t.host.allocate(n, "c");
    std::memset(a->data(), 1, n);
    std::memset(b->data(), 2, n);
    // c <- a, then c <- b: the result must be b's bytes, every time.
    for (int round = 0; round < 50; ++round) {
        Event first = t.transfers.copy({c.get(), 0, n}, {a.get(), 0, n});
        Event second = t.transfers.copy({c.get(), 0, n}, {b.get(), 0, n}, {first});
        ASSERT_TRUE(second.wait().is_ok());
        ASSERT_EQ(static_cast<int>(c->data()[n - 1]), 2);
    }
}

TEST(Transfer, ReadPastEndOfFileTransfersWhatExists) {
    Tiers t;
    const fs::path file = t.dir / "short.bin";
    write_file(file, std::string(1000, 'x'));
    auto f = t.disk.open_existing(file);
    EXPECT_EQ(f->bytes(), 1000u);
    auto mem = t.host.allocate(4096, "m");
    Status s = copy_now({mem.get(), 0, 1000}, {f.get(), 0, 1000});
    EXPECT_TRUE(s.is_ok());
    // A view past the end is a programmer error (asserted); a request that runs off the end (an aligned
    // tail) returns the bytes that exist.
    flexrt_io_request r{};
    r.struct_size = sizeof r;
    r.op = FLEXRT_IO_OP_READ;
    r.file = static_cast<DiskBuffer&>(*f).file();
    r.offset = 900;
    r.bytes = 200;
    r.buffer = mem->data();
    flexrt_io_request* p = &r;
    ASSERT_EQ(t.storage->submit(&p, 1), FLEXRT_STATUS_OK);
    ASSERT_EQ(t.storage->wait(&p, 1), FLEXRT_STATUS_OK);
    EXPECT_EQ(r.status, FLEXRT_STATUS_OK);  // IStorage: a read past the end transfers what exists
    EXPECT_EQ(r.bytes_done, 100u);
}

TEST(Transfer, FailurePropagatesToDependentsAndWaitAll) {
    Tiers t;
    auto a = t.host.allocate(16, "a");
    Event failed = t.transfers.run([] { return Status(FLEXRT_STATUS_IO_ERROR, "disk on fire"); });
    std::atomic<bool> ran{false};
    Event dependent = t.transfers.run(
        [&] {
            ran = true;
            return Status::ok();
        },
        {failed});
    Status s = dependent.wait();
    EXPECT_EQ(s.code(), FLEXRT_STATUS_IO_ERROR);
    EXPECT_EQ(s.message(), "disk on fire");
    EXPECT_FALSE(ran.load());
    Status all = t.transfers.wait_all();
    EXPECT_EQ(all.code(), FLEXRT_STATUS_IO_ERROR);
    EXPECT_TRUE(t.transfers.wait_all().is_ok());  // reported once
}

TEST(Transfer, WriteFailureCarriesErrno) {
    TempDir dir;
    auto storage = make_storage("faulty", {{FLEXRT_TEST_PLUGIN_DIR, "test"}}, toml::table{{"fail_write_after", 100}});
    DiskDevice disk(*storage, dir / "offload");
    MemoryDevice host(TierKind::host, "h");
    auto f = disk.allocate(4096, "x");
    auto m = host.allocate(4096, "m");
    Status s = copy_now({f.get(), 0, 4096}, {m.get(), 0, 4096});
    EXPECT_EQ(s.code(), FLEXRT_STATUS_IO_ERROR);
    EXPECT_NE(s.message().find("writing "), std::string::npos) << s.message();
    EXPECT_NE(s.message().find("offset 0, 4096 bytes"), std::string::npos) << s.message();
    EXPECT_NE(s.message().find("errno 5"), std::string::npos) << s.message();
}

TEST(DiskDevice, OffloadDirThatIsAFile) {
    TempDir dir;
    write_file(dir / "file", "x");
    auto storage = make_storage("mmap");
    try {
        DiskDevice d(*storage, dir / "file");
        FAIL() << "no error";
    } catch (const Error& e) { EXPECT_NE(std::string(e.what()).find("is not a directory"), std::string::npos) << e.what(); }
}

TEST(DiskDevice, FilesAreRemovedWithTheDevice) {
    TempDir dir;
    auto storage = make_storage("mmap");
    {
        DiskDevice d(*storage, dir / "off");
        auto a = d.allocate(1 << 16, "a");
        auto b = d.allocate(1 << 16, "b");
        EXPECT_EQ(count_files(dir / "off"), 2u);
        EXPECT_EQ(d.allocated_bytes(), 2u << 16);
    }
    EXPECT_EQ(count_files(dir / "off"), 0u);
    EXPECT_TRUE(fs::is_empty(dir / "off"));
}

TEST(DiskDevice, StaleRunDirectoriesOfDeadProcessesAreRemoved) {
    TempDir dir;
    int dead = 4000000;  // above the usual pid range; make sure
    while (::kill(dead, 0) == 0 || errno != ESRCH) ++dead;
    const fs::path stale = dir / "off" / ("flexrt-" + std::to_string(dead) + "-0");
    const fs::path alive = dir / "off" / ("flexrt-" + std::to_string(::getpid()) + "-77");
    fs::create_directories(stale);
    fs::create_directories(alive);
    write_file(stale / "3-weights.partial", "half a tensor");
    auto storage = make_storage("mmap");
    DiskDevice d(*storage, dir / "off");
    EXPECT_FALSE(fs::exists(stale));
    EXPECT_TRUE(fs::exists(alive));  // this process is alive: not touched
    ASSERT_EQ(d.removed_stale().size(), 1u);
    EXPECT_EQ(d.removed_stale()[0], stale);
}

TEST(DiskDevice, PartialFilesAreNamedCompleteOnlyAfterCommit) {
    TempDir dir;
    auto storage = make_storage("mmap");
    DiskDevice d(*storage, dir / "off");
    auto f = d.allocate_partial(5000, "weights-x");
    auto& file = static_cast<DiskBuffer&>(*f);
    EXPECT_EQ(file.path().extension(), ".partial");
    std::vector<std::byte> data(5000, std::byte{9});
    ASSERT_TRUE(disk_write(file, 0, data.data(), data.size()).is_ok());
    const fs::path before = file.path();
    file.commit();
    EXPECT_FALSE(fs::exists(before));
    EXPECT_TRUE(fs::exists(file.path()));
    EXPECT_NE(file.path().extension(), ".partial");
    EXPECT_EQ(read_file(file.path()), std::string(5000, '\x09'));
    EXPECT_EQ(static_cast<DiskBuffer&>(*d.allocate(10, "kv")).path().extension(), ".scratch");
}

TEST(DiskDevice, FootprintBeyondFreeSpaceIsRefusedUpFront) {
    TempDir dir;
    auto storage = make_storage("mmap");
    DiskDevice d(*storage, dir / "off");
    d.check_free_space(1 << 20, "a little");  // fits
    try {
        d.check_free_space(uint64_t{1} << 62, "weights 4 EiB");
        FAIL() << "no error";
    } catch (const Error& e) {
        EXPECT_EQ(e.status(), FLEXRT_STATUS_NO_SPACE);
        EXPECT_NE(std::string(e.what()).find("(weights 4 EiB)"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("free"), std::string::npos) << e.what();
    }
}

}  // namespace
}  // namespace flexrt::test

namespace flexrt::test {
namespace {

TEST(MemoryDevice, CapIsEnforcedWithAClearError) {
    MemoryDevice capped(TierKind::host, "pinned host", false, 3 << 20);
    auto a = capped.allocate(2 << 20, "a");
    try {
        capped.allocate(2 << 20, "weights of layer 3");
        FAIL() << "no error";
    } catch (const Error& e) {
        EXPECT_EQ(e.status(), FLEXRT_STATUS_OUT_OF_MEMORY);
        EXPECT_NE(std::string(e.what()).find("cap of"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("weights of layer 3"), std::string::npos) << e.what();
    }
    a.reset();
    EXPECT_NO_THROW(capped.allocate(3 << 20, "fits now"));
}

TEST(StagingPool, TryAcquireNeverWaits) {
    StagingPool pool(4096, 2);
    auto a = pool.acquire();
    auto b = pool.try_acquire();
    ASSERT_TRUE(b.has_value());
    EXPECT_FALSE(pool.try_acquire().has_value());  // empty: no wait
    b.reset();
    EXPECT_TRUE(pool.try_acquire().has_value());
}

}  // namespace
}  // namespace flexrt::test
