// storage.aio's engine under injected faults: EIO on the Nth completion, short reads and writes, EAGAIN and
// EINTR, ENOSPC, O_DIRECT refused at open. Each: the right error (or the right data) reaches the caller,
// nothing hangs. And the plugin leaks no thread or file descriptor.
#include "test_util.hpp"

#include "aio_engine.hpp"

#include <fcntl.h>

#include <atomic>
#include <condition_variable>
#include <mutex>

namespace flexrt::test {
namespace {

// --- the fault layer ----------------------------------------------------------------------------------

struct Faults {
    std::atomic<int> completions{0};
    int eio_on = -1, short_on = -1, eagain_result_on = -1, enospc_on = -1;  // the Nth completion (0-based)
    std::atomic<int> submit_eagain{0}, submit_eintr{0}, getevents_eintr{0};
    bool refuse_direct = false;
};
Faults* g_faults = nullptr;

int fake_open(const char* path, int flags, mode_t mode) {
    if (g_faults->refuse_direct && (flags & O_DIRECT)) {
        errno = EINVAL;
        return -1;
    }
    return ::open(path, flags, mode);
}
int fake_submit(io_context_t ctx, long n, struct iocb** cbs) {
    if (g_faults->submit_eagain.fetch_sub(1) > 0) return -EAGAIN;
    if (g_faults->submit_eintr.fetch_sub(1) > 0) return -EINTR;
    return io_submit(ctx, n, cbs);
}
int fake_getevents(io_context_t ctx, long min_nr, long nr, struct io_event* ev, struct timespec* t) {
    if (g_faults->getevents_eintr.fetch_sub(1) > 0) return -EINTR;
    const int got = io_getevents(ctx, min_nr, nr, ev, t);
    for (int i = 0; i < got; ++i) {
        const int n = g_faults->completions++;
        auto* cb = static_cast<struct iocb*>(ev[i].obj);
        if (n == g_faults->eio_on) ev[i].res = static_cast<unsigned long>(-EIO);
        if (n == g_faults->eagain_result_on) ev[i].res = static_cast<unsigned long>(-EAGAIN);
        if (n == g_faults->enospc_on) ev[i].res = static_cast<unsigned long>(-ENOSPC);
        if (n == g_faults->short_on) ev[i].res = cb->u.c.nbytes / 2 / 4096 * 4096;  // half, still aligned
    }
    return got;
}
aio::Syscalls fake() {
    aio::Syscalls s = aio::Syscalls::real();
    s.open = &fake_open;
    s.submit = &fake_submit;
    s.getevents = &fake_getevents;
    return s;
}

// --- helpers ----------------------------------------------------------------------------------------

struct Waiter {
    std::mutex m;
    std::condition_variable cv;
    bool done = false;
    static void on_done(aio::Operation&, void* self) {
        auto* w = static_cast<Waiter*>(self);
        std::lock_guard lock(w->m);
        w->done = true;
        w->cv.notify_all();
    }
    void wait() {
        std::unique_lock lock(m);
        cv.wait(lock, [&] { return done; });
    }
};

class AioFaults : public ::testing::TestWithParam<bool> {  // overlapped or sequential
protected:
    void SetUp() override {
        g_faults = &faults_;
        path_ = (dir_ / "data.bin").string();
        data_.resize(kSize);
        std::mt19937 rng(3);
        for (auto& b : data_) b = static_cast<std::byte>(rng());
        write_file(path_, std::string(reinterpret_cast<const char*>(data_.data()), data_.size()));
        buf_.reset(static_cast<std::byte*>(std::aligned_alloc(4096, kSize)));
        std::memset(buf_.get(), 0, kSize);
    }
    void TearDown() override { g_faults = nullptr; }

    // Runs one operation over the whole file; returns its errno (0 if none).
    int run(bool write, uint64_t file_end = kSize) {
        aio::Options o;
        o.block_size = 64 << 10;
        o.queue_depth = 4;
        o.threads = 2;
        o.overlapped = GetParam();
        const aio::Syscalls sys = fake();
        aio::OpenedFile f = aio::open_file(path_, O_RDWR, false, nullptr, sys);
        int err = 0;
        {
            aio::Engine engine(o, sys);
            aio::Operation op;
            Waiter w;
            op.fd = f.fd;
            op.write = write;
            op.offset = 0;
            op.bytes = kSize;
            op.buffer = buf_.get();
            op.file_end = file_end;
            op.align = f.align;
            op.on_done = &Waiter::on_done;
            op.ctx = &w;
            engine.submit(op);
            w.wait();
            err = op.error();
            done_ = op.done();
        }
        ::close(f.fd);
        return err;
    }
    static constexpr uint64_t kSize = 1 << 20;
    TempDir dir_;
    Faults faults_;
    std::string path_;
    std::vector<std::byte> data_;
    std::unique_ptr<std::byte, decltype(&std::free)> buf_{nullptr, &std::free};
    uint64_t done_ = 0;
};

TEST_P(AioFaults, CleanRead) {
    EXPECT_EQ(run(false), 0);
    EXPECT_EQ(done_, kSize);
    EXPECT_EQ(std::memcmp(buf_.get(), data_.data(), kSize), 0);
}

TEST_P(AioFaults, ShortReadIsResubmittedForTheRemainder) {
    faults_.short_on = 3;
    EXPECT_EQ(run(false), 0);
    EXPECT_EQ(done_, kSize);
    EXPECT_EQ(std::memcmp(buf_.get(), data_.data(), kSize), 0);
    EXPECT_GT(faults_.completions.load(), static_cast<int>(kSize / (64 << 10)));  // one more completion
}

TEST_P(AioFaults, ShortWriteIsResubmittedForTheRemainder) {
    faults_.short_on = 5;
    std::memcpy(buf_.get(), data_.data(), kSize);
    std::reverse(buf_.get(), buf_.get() + kSize);
    std::vector<std::byte> expect(buf_.get(), buf_.get() + kSize);
    EXPECT_EQ(run(true), 0);
    EXPECT_EQ(read_file(path_), std::string(reinterpret_cast<const char*>(expect.data()), kSize));
}

TEST_P(AioFaults, EioOnTheNthCompletionFailsTheOperation) {
    faults_.eio_on = 6;
    EXPECT_EQ(run(false), EIO);
}

TEST_P(AioFaults, EnospcOnAWrite) {
    faults_.enospc_on = 2;
    EXPECT_EQ(run(true), ENOSPC);
}

TEST_P(AioFaults, EagainAndEintrAreRetried) {
    faults_.submit_eagain = 3;
    faults_.submit_eintr = 2;
    faults_.getevents_eintr = 2;
    faults_.eagain_result_on = 4;
    EXPECT_EQ(run(false), 0);
    EXPECT_EQ(std::memcmp(buf_.get(), data_.data(), kSize), 0);
}

TEST_P(AioFaults, ReadReachingTheEndOfTheFileReturnsWhatExists) {
    ::truncate(path_.c_str(), kSize - 8192);
    EXPECT_EQ(run(false, kSize - 8192), 0);
    EXPECT_EQ(done_, kSize - 8192);
    EXPECT_EQ(std::memcmp(buf_.get(), data_.data(), kSize - 8192), 0);
}

INSTANTIATE_TEST_SUITE_P(Modes, AioFaults, ::testing::Values(true, false),
                         [](const auto& info) { return info.param ? "overlapped" : "sequential"; });

TEST(AioOpen, DirectRefusedIsAClearErrorOrAnAnnouncedFallback) {
    Faults faults;
    faults.refuse_direct = true;
    g_faults = &faults;
    TempDir dir;
    const std::string path = (dir / "x.bin").string();
    try {
        aio::open_file(path, O_RDWR | O_CREAT, false, nullptr, fake());
        FAIL() << "no error";
    } catch (const std::system_error& e) {
        EXPECT_EQ(e.code().value(), EINVAL);
        EXPECT_NE(std::string(e.what()).find("O_DIRECT is refused by " + path), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("file system"), std::string::npos) << e.what();
    }
    EXPECT_FALSE(fs::exists(path)) << "a refused create left a file";
    std::string why;
    aio::OpenedFile f = aio::open_file(path, O_RDWR | O_CREAT, true, &why, fake());
    EXPECT_FALSE(f.direct);
    EXPECT_EQ(f.align, 1u);
    EXPECT_NE(why.find("O_DIRECT is refused"), std::string::npos);
    ::close(f.fd);
    g_faults = nullptr;
}

size_t count_entries(const char* dir) {
    size_t n = 0;
    for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir)) ++n;
    return n;
}

TEST(AioPlugin, NoThreadOrDescriptorOutlivesThePlugin) {
    const size_t fds = count_entries("/proc/self/fd"), tasks = count_entries("/proc/self/task");
    {
        TempDir dir;
        auto storage = make_storage("aio", {}, toml::table{{"threads", 4}});
        EXPECT_GE(count_entries("/proc/self/task"), tasks + 4);
        DiskDevice disk(*storage, dir / "off");
        auto a = disk.allocate(1 << 20, "a");
        std::vector<std::byte> data(1 << 20, std::byte{7});
        ASSERT_TRUE(disk_write(static_cast<DiskBuffer&>(*a), 0, data.data(), data.size()).is_ok());
    }
    EXPECT_EQ(count_entries("/proc/self/fd"), fds);
    EXPECT_EQ(count_entries("/proc/self/task"), tasks);
}

// A full file system: a small tmpfs (needs root to mount; skipped otherwise). Creating a file larger than it
// fails with NO_SPACE at allocation, for every plugin, and leaves no file behind.
TEST(FullDisk, AllocationFailsCleanly) {
    TempDir dir;
    const fs::path mnt = dir / "small";
    fs::create_directories(mnt);
    if (std::system(("mount -t tmpfs -o size=1m tmpfs " + mnt.string() + " 2>/dev/null").c_str()) != 0)
        GTEST_SKIP() << "cannot mount a tmpfs here (not root?)";
    for (const char* plugin : {"mmap", "aio"}) {
        auto storage = make_storage(plugin, {}, std::string(plugin) == "aio" ? toml::table{{"fallback", "buffered"}} : toml::table{});
        {
            DiskDevice disk(*storage, mnt / "off");
            try {
                disk.allocate(4 << 20, "too-big");
                ADD_FAILURE() << plugin << ": no error";
            } catch (const Error& e) { EXPECT_EQ(e.status(), FLEXRT_STATUS_NO_SPACE) << plugin << ": " << e.what(); }
            EXPECT_EQ(count_files(mnt), 0u) << plugin;
        }
    }
    EXPECT_EQ(std::system(("umount " + mnt.string()).c_str()), 0);
}

}  // namespace
}  // namespace flexrt::test
