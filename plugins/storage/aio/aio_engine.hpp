// The libaio engine behind storage.aio: pure libaio and threads, no flexrt types, so it can be tested on
// its own with injected system calls.
//
// An operation (one read or write of a contiguous range) is cut into block_size chunks spread over the
// worker threads; each worker has its own io_context and keeps up to queue_depth chunks in flight, either
// as a sliding window (overlapped: submit as completions arrive) or in waves (sequential: submit a wave,
// reap all of it). Every completion's byte count is checked: a short transfer is resubmitted for the
// remainder, EAGAIN and EINTR are retried, a negative result fails the operation with its errno. A read
// that reaches the end of the file completes with the bytes that exist.
#pragma once

#include <libaio.h>

#include <sys/types.h>
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace flexrt::aio {

// The system calls the engine makes, replaceable for fault injection. libaio's convention: negative errno.
struct Syscalls {
    int (*open)(const char* path, int flags, mode_t mode);  // -1 and errno, as open(2)
    int (*setup)(int maxevents, io_context_t* ctx);
    int (*destroy)(io_context_t ctx);
    int (*submit)(io_context_t ctx, long n, struct iocb** iocbs);
    int (*getevents)(io_context_t ctx, long min_nr, long nr, struct io_event* events, struct timespec* timeout);
    static Syscalls real();
};

struct Options {
    uint64_t block_size = 1ull << 20;  // bytes per iocb (rounded to the operation's alignment)
    unsigned queue_depth = 32;         // iocbs in flight per thread
    unsigned threads = 1;              // workers, each with its own io_context
    bool overlapped = true;            // sliding window (true) or waves (false)
    unsigned max_retries = 100;        // EAGAIN/EINTR resubmissions per chunk (a short transfer, which progresses, is not counted)
};

// An open file and how it must be accessed.
struct OpenedFile {
    int fd = -1;
    uint64_t align = 1;  // offset, length and buffer alignment (1 when buffered)
    bool direct = false;
};

// Opens `path` with O_DIRECT and learns its alignment: statx's DIO alignment where the kernel reports it,
// else the device's logical block size, else the file system's block size. When the file system refuses
// O_DIRECT: with `allow_buffered`, opens it buffered and sets *refusal to the reason; without, throws
// std::system_error(EINVAL) whose text names the path and the file system. Other failures throw with errno.
OpenedFile open_file(const std::string& path, int flags, bool allow_buffered, std::string* refusal, const Syscalls& sys = Syscalls::real());

// A name for the file system under `path` ("ext4", "tmpfs", ...), for messages.
std::string file_system_name(const std::string& path);

class Operation;
using DoneFn = void (*)(Operation& op, void* ctx);

// One read or write. Owned by the caller until `on_done` has been called (from a worker thread).
class Operation {
public:
    int fd = -1;
    bool write = false;
    uint64_t offset = 0, bytes = 0;
    std::byte* buffer = nullptr;
    uint64_t file_end = UINT64_MAX;  // reads: end of the file; a chunk that reaches it may come back short
    uint64_t align = 1;              // chunks are cut at multiples of this
    DoneFn on_done = nullptr;
    void* ctx = nullptr;

    // Results, valid in on_done:
    int error() const { return error_.load(); }  // errno of the first failure, 0 if none
    uint64_t done() const { return done_.load(); }

private:
    friend class Engine;
    std::atomic<int> error_{0};
    std::atomic<uint64_t> done_{0};
    std::atomic<uint32_t> pending_{0};
};

class Engine {
public:
    // Starts the workers; throws std::system_error when an io_context cannot be set up.
    explicit Engine(const Options& options, const Syscalls& sys = Syscalls::real());
    ~Engine();  // finishes what is in flight, then joins the workers
    Engine(const Engine&) = delete;
    Engine& operator=(const Engine&) = delete;

    // Queues `op` (async; thread-safe). op.on_done runs once, on a worker, when every chunk has completed.
    void submit(Operation& op);

    const Options& options() const { return opt_; }

private:
    struct Chunk {
        Operation* op;
        uint64_t offset, bytes, done = 0;
        unsigned retries = 0;
        struct iocb cb {};
    };
    struct Worker {
        std::thread thread;
        std::mutex m;
        std::condition_variable cv;
        std::deque<Chunk*> queue;
        io_context_t ctx{};
    };
    void run(Worker& w);
    void finish(Chunk* c, int error);
    void requeue(Worker& w, Chunk* c);

    Options opt_;
    Syscalls sys_;
    std::vector<std::unique_ptr<Worker>> workers_;
    std::atomic<bool> stop_{false};
    std::atomic<unsigned> next_worker_{0};
};

}  // namespace flexrt::aio
