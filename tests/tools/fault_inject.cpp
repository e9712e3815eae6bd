// An LD_PRELOAD fault injector for the fault matrix (tests/app/fault_matrix_test.cpp): makes the writes of a
// real flexrt process to files whose path contains FLEXRT_FAULT_PATH fail once FLEXRT_FAULT_AFTER bytes have
// gone to them. FLEXRT_FAULT says how:
//   eio     write/pwrite fail with EIO; aio write completions carry -EIO; fsync fails with EIO
//   enospc  write/pwrite fail with ENOSPC; aio write completions carry -ENOSPC; space reservation
//           (posix_fallocate, fallocate) fails with ENOSPC
//   short   every write moves only half of what it was asked (at least a byte; aio: whole 4 KiB blocks, as
//           O_DIRECT does): correct code loops and loses nothing
// It wraps the C library's write, pwrite, writev, fsync, fdatasync, posix_fallocate, fallocate and libaio's
// io_getevents. Writes the process makes through memory maps (storage.mmap's stores) are not system calls
// and cannot be failed here; their space reservation can.
#include <dlfcn.h>
#include <fcntl.h>
#include <libaio.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>

namespace {

enum class Mode { off, eio, enospc, shortio };

struct Config {
    Mode mode = Mode::off;
    std::string path;
    long long after = 0;
};

const Config& config() {
    static const Config c = [] {
        Config k;
        const char* mode = std::getenv("FLEXRT_FAULT");
        const char* path = std::getenv("FLEXRT_FAULT_PATH");
        const char* after = std::getenv("FLEXRT_FAULT_AFTER");
        if (!mode || !path || !*path) return k;
        k.mode = std::strcmp(mode, "eio") == 0      ? Mode::eio
                 : std::strcmp(mode, "enospc") == 0 ? Mode::enospc
                 : std::strcmp(mode, "short") == 0  ? Mode::shortio
                                                    : Mode::off;
        k.path = path;
        k.after = after ? std::atoll(after) : 0;
        return k;
    }();
    return c;
}

std::atomic<long long> written{0};  // bytes asked of matching files so far

bool matches(int fd) {
    const Config& c = config();
    if (c.mode == Mode::off || fd < 0) return false;
    char link[64], target[4096];
    std::snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    const int saved = errno;
    const ssize_t n = ::readlink(link, target, sizeof target - 1);
    errno = saved;
    if (n <= 0) return false;
    target[n] = '\0';
    return std::strstr(target, c.path.c_str()) != nullptr;
}

// Past the budget? Counts `n` bytes against it.
bool over_budget(long long n) { return written.fetch_add(n) + n > config().after; }

int errno_of(Mode m) { return m == Mode::enospc ? ENOSPC : EIO; }

template <typename F>
F real(const char* name) {
    return reinterpret_cast<F>(::dlsym(RTLD_NEXT, name));
}

// What a write of n bytes to fd becomes: -1 (errno set) to fail it, or how many bytes to pass on.
ssize_t gate(int fd, size_t n) {
    if (n == 0 || !matches(fd) || !over_budget(static_cast<long long>(n))) return static_cast<ssize_t>(n);
    if (config().mode == Mode::shortio) return static_cast<ssize_t>(n > 1 ? n / 2 : n);
    errno = errno_of(config().mode);
    return -1;
}

// fsync and fdatasync: EIO once the budget is spent, else the real call.
int sync_gate(int fd, const char* name) {
    if (config().mode == Mode::eio && matches(fd) && written.load() > config().after) {
        errno = EIO;
        return -1;
    }
    return real<int (*)(int)>(name)(fd);
}

}  // namespace

extern "C" {

ssize_t write(int fd, const void* buf, size_t n) {
    const ssize_t g = gate(fd, n);
    return g < 0 ? -1 : real<ssize_t (*)(int, const void*, size_t)>("write")(fd, buf, static_cast<size_t>(g));
}

ssize_t pwrite(int fd, const void* buf, size_t n, off_t off) {
    const ssize_t g = gate(fd, n);
    return g < 0 ? -1 : real<ssize_t (*)(int, const void*, size_t, off_t)>("pwrite")(fd, buf, static_cast<size_t>(g), off);
}

ssize_t pwrite64(int fd, const void* buf, size_t n, off64_t off) {
    const ssize_t g = gate(fd, n);
    return g < 0 ? -1 : real<ssize_t (*)(int, const void*, size_t, off64_t)>("pwrite64")(fd, buf, static_cast<size_t>(g), off);
}

// libstdc++'s file streams write their buffer and the caller's data together with writev.
ssize_t writev(int fd, const struct iovec* iov, int count) {
    size_t n = 0;
    for (int i = 0; i < count; ++i) n += iov[i].iov_len;
    const ssize_t g = gate(fd, n);
    if (g < 0) return -1;
    auto real_writev = real<ssize_t (*)(int, const struct iovec*, int)>("writev");
    if (static_cast<size_t>(g) == n) return real_writev(fd, iov, count);
    // A short write: the first g bytes of the vector.
    struct iovec part[64];
    int m = 0;
    for (size_t left = static_cast<size_t>(g); m < count && m < 64 && left > 0; ++m) {
        part[m] = iov[m];
        part[m].iov_len = std::min(left, iov[m].iov_len);
        left -= part[m].iov_len;
    }
    return real_writev(fd, part, m);
}

int fsync(int fd) { return sync_gate(fd, "fsync"); }
int fdatasync(int fd) { return sync_gate(fd, "fdatasync"); }

int posix_fallocate(int fd, off_t off, off_t len) {
    if (config().mode == Mode::enospc && matches(fd) && over_budget(len)) return ENOSPC;
    return real<int (*)(int, off_t, off_t)>("posix_fallocate")(fd, off, len);
}

int posix_fallocate64(int fd, off64_t off, off64_t len) {
    if (config().mode == Mode::enospc && matches(fd) && over_budget(len)) return ENOSPC;
    return real<int (*)(int, off64_t, off64_t)>("posix_fallocate64")(fd, off, len);
}

int fallocate(int fd, int mode, off_t off, off_t len) {
    if (config().mode == Mode::enospc && matches(fd) && over_budget(len)) {
        errno = ENOSPC;
        return -1;
    }
    return real<int (*)(int, int, off_t, off_t)>("fallocate")(fd, mode, off, len);
}

// The kernel did the write; the completion the process sees says it failed, or moved only part (it must
// then resubmit the rest).
int io_getevents(io_context_t ctx, long min_nr, long nr, struct io_event* events, struct timespec* timeout) {
    // libaio is loaded by the storage.aio plugin, RTLD_LOCAL: not in the global scope that RTLD_NEXT searches.
    static const auto real_getevents = [] {
        void* aio = ::dlopen("libaio.so.1", RTLD_NOW | RTLD_NOLOAD);
        return reinterpret_cast<int (*)(io_context_t, long, long, io_event*, timespec*)>(aio ? ::dlsym(aio, "io_getevents") : nullptr);
    }();
    if (!real_getevents) std::abort();  // called by a process that has not loaded libaio: cannot be
    const int n = real_getevents(ctx, min_nr, nr, events, timeout);
    for (int i = 0; i < n; ++i) {
        const iocb* cb = events[i].obj;
        const long long res = static_cast<long long>(events[i].res);
        if (!cb || cb->aio_lio_opcode != IO_CMD_PWRITE || res <= 0 || !matches(cb->aio_fildes) || !over_budget(res)) continue;
        if (config().mode == Mode::shortio) {
            if (res >= 8192) events[i].res = static_cast<unsigned long>(res / 2 / 4096 * 4096);  // whole blocks, at least one
        } else {
            events[i].res = static_cast<unsigned long>(-static_cast<long>(errno_of(config().mode)));
        }
    }
    return n;
}

}  // extern "C"
