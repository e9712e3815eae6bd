// storage.aio: the disk tier through libaio with O_DIRECT (the page cache is bypassed: reads come from the
// disk, and offloaded tensors do not evict the host's memory). Glue between IStorage and aio::Engine.
#include "aio_engine.hpp"

#include <flexrt/sdk.hpp>
#include <flexrt/storage.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

namespace {

using flexrt::sdk::guard;

struct File {
    int fd = -1;
    std::string path;
    uint64_t size = 0;   // true length
    uint64_t align = 1;  // offset, length and buffer alignment for this file (1 when buffered)
    bool direct = false;
};

class AioStorage final : public flexrt::IStorage {
public:
    AioStorage(const flexrt_host* host, const flexrt::aio::Options& opt, bool fallback_buffered)
        : host_(host), fallback_buffered_(fallback_buffered), engine_(opt) {}

    uint64_t required_alignment() const noexcept override { return align_.load(); }

    flexrt_status open(const char* path, uint32_t flags, uint64_t size, uint64_t* file) noexcept override {
        return guard(host_, [&] {
            const bool create = flags & FLEXRT_OPEN_CREATE, write = flags & (FLEXRT_OPEN_WRITE | FLEXRT_OPEN_CREATE);
            int oflags = (write ? O_RDWR : O_RDONLY) | O_CLOEXEC | (create ? O_CREAT | O_TRUNC : 0);
            File f;
            f.path = path;
            std::string refusal;
            flexrt::aio::OpenedFile of;
            try {
                of = flexrt::aio::open_file(path, oflags, fallback_buffered_, &refusal);
            } catch (const std::system_error& e) {
                if (e.code().value() == EINVAL)
                    FLEXRT_THROW(FLEXRT_STATUS_UNSUPPORTED, std::string(e.what()) +
                                                                "; put storage.offload_dir on a file system "
                                                                "with direct I/O, or set storage.options.fallback = \"buffered\"");
                FLEXRT_THROW(flexrt::status_from_errno(e.code().value()), e.what());
            }
            if (!refusal.empty())
                flexrt::sdk::log(host_, FLEXRT_LOG_LEVEL_WARN,
                                 "storage.aio: " + refusal + ": using buffered I/O (fallback = \"buffered\")");
            f.fd = of.fd;
            f.direct = of.direct;
            const uint64_t align = of.align;
            f.align = align;
            try {
                if (create) {
                    f.size = size;
                    // Padded to the alignment so the last block can be written whole; the true length is kept.
                    const uint64_t padded = (size + align - 1) / align * align;
                    if (padded) {
                        int err = ::posix_fallocate(f.fd, 0, static_cast<off_t>(padded));
                        if (err)
                            FLEXRT_THROW(flexrt::status_from_errno(err),
                                         "reserving " + std::to_string(padded) + " bytes for " + f.path + ": " + flexrt::errno_text(err));
                    }
                } else {
                    struct stat st {};
                    FLEXRT_SYS_CHECK(::fstat(f.fd, &st), "stat " + f.path);
                    f.size = static_cast<uint64_t>(st.st_size);
                }
            } catch (...) {
                ::close(f.fd);
                if (create) ::unlink(path);  // nothing half-made stays behind
                throw;
            }
            uint64_t prev = align_.load();
            while (align > prev && !align_.compare_exchange_weak(prev, align)) {}
            std::lock_guard lock(m_);
            *file = next_++;
            files_[*file] = std::move(f);
            return FLEXRT_STATUS_OK;
        });
    }

    flexrt_status file_size(uint64_t file, uint64_t* bytes) noexcept override {
        return guard(host_, [&] {
            *bytes = lookup(file).size;
            return FLEXRT_STATUS_OK;
        });
    }

    flexrt_status flush(uint64_t file) noexcept override {
        return guard(host_, [&] {
            File f = lookup(file);
            FLEXRT_SYS_CHECK(::fdatasync(f.fd), "fdatasync " + f.path);
            return FLEXRT_STATUS_OK;
        });
    }

    flexrt_status close(uint64_t file) noexcept override {
        return guard(host_, [&] {
            File f;
            {
                std::lock_guard lock(m_);
                auto it = files_.find(file);
                if (it == files_.end()) FLEXRT_THROW(FLEXRT_STATUS_INVALID_ARGUMENT, "close of an unknown file handle");
                f = it->second;
                files_.erase(it);
            }
            FLEXRT_SYS_CHECK(::close(f.fd), "close " + f.path);
            return FLEXRT_STATUS_OK;
        });
    }

    flexrt_status remove(const char* path) noexcept override { return flexrt::sdk::posix_remove(host_, path); }
    flexrt_status rename(const char* from, const char* to) noexcept override { return flexrt::sdk::posix_rename(host_, from, to); }

    flexrt_status submit(flexrt_io_request* const* reqs, uint32_t n) noexcept override {
        return guard(host_, [&] {
            for (uint32_t i = 0; i < n; ++i) start(*reqs[i]);
            return FLEXRT_STATUS_OK;
        });
    }

    flexrt_status wait(flexrt_io_request* const* reqs, uint32_t n) noexcept override {
        std::unique_lock lock(m_);
        for (uint32_t i = 0; i < n; ++i) done_cv_.wait(lock, [&] { return !pending_.count(reqs[i]); });
        return FLEXRT_STATUS_OK;
    }

    void release() noexcept override {
        {
            std::unique_lock lock(m_);  // the host calls release() with nothing in flight; make sure
            done_cv_.wait(lock, [&] { return pending_.empty(); });
            for (auto& [h, f] : files_) ::close(f.fd);
        }
        delete this;
    }

private:
    File lookup(uint64_t file) {
        std::lock_guard lock(m_);
        auto it = files_.find(file);
        if (it == files_.end()) FLEXRT_THROW(FLEXRT_STATUS_INVALID_ARGUMENT, "unknown file handle " + std::to_string(file));
        return it->second;
    }

    static void complete(flexrt_io_request& r, flexrt_status status, int err, uint64_t done) {
        r.status = status;
        r.sys_errno = err;
        r.bytes_done = done;
    }

    void start(flexrt_io_request& r) {
        File f;
        try {
            f = lookup(r.file);
        } catch (const flexrt::Error& e) {
            flexrt::sdk::log(host_, FLEXRT_LOG_LEVEL_ERROR, e.what());
            return complete(r, e.status(), EBADF, 0);
        }
        if (r.offset % f.align || r.bytes % f.align || reinterpret_cast<uintptr_t>(r.buffer) % f.align)
            return complete(r, FLEXRT_STATUS_INVALID_ARGUMENT, EINVAL, 0);  // the core aligns; this is a caller bug
        auto op = std::make_unique<flexrt::aio::Operation>();
        op->fd = f.fd;
        op->write = r.op == FLEXRT_IO_OP_WRITE;
        op->offset = r.offset;
        op->bytes = r.bytes;
        op->buffer = static_cast<std::byte*>(r.buffer);
        op->file_end = op->write ? UINT64_MAX : f.size;
        op->align = f.align;
        op->ctx = this;
        op->on_done = [](flexrt::aio::Operation& o, void* self) { static_cast<AioStorage*>(self)->finished(o); };
        flexrt::aio::Operation& ref = *op;
        {
            std::lock_guard lock(m_);
            pending_[&r] = std::move(op);
            by_op_[&ref] = &r;
        }
        engine_.submit(ref);
    }

    // On a worker thread: the request's results, then wake its waiters.
    void finished(flexrt::aio::Operation& o) {
        std::lock_guard lock(m_);
        flexrt_io_request& r = *by_op_.at(&o);
        const uint64_t done = std::min(o.done(), r.bytes);
        if (o.error())
            complete(r, flexrt::status_from_errno(o.error()), o.error(), done);
        else
            complete(r, FLEXRT_STATUS_OK, 0, done);
        by_op_.erase(&o);
        pending_.erase(&r);  // destroys o: nothing touches it after on_done
        done_cv_.notify_all();
    }

    const flexrt_host* host_;
    const bool fallback_buffered_;
    std::atomic<uint64_t> align_{1};
    std::mutex m_;
    std::condition_variable done_cv_;
    std::map<uint64_t, File> files_;
    uint64_t next_ = 1;
    std::unordered_map<flexrt_io_request*, std::unique_ptr<flexrt::aio::Operation>> pending_;
    std::unordered_map<flexrt::aio::Operation*, flexrt_io_request*> by_op_;
    flexrt::aio::Engine engine_;  // last: its workers stop before the maps above go
};

const flexrt_option_desc kOptions[] = {
    {"block_size", FLEXRT_FIELD_TYPE_INT, "1048576", "bytes per I/O request (iocb), rounded to the file's alignment", 4096, 1 << 30},
    {"queue_depth", FLEXRT_FIELD_TYPE_INT, "32", "requests in flight per thread", 1, 4096},
    {"threads", FLEXRT_FIELD_TYPE_INT, "1", "I/O threads, each with its own io_context", 1, 256},
    {"submission", FLEXRT_FIELD_TYPE_STRING, "\"overlapped\"",
     "\"overlapped\" (sliding window: submit as completions arrive) or \"sequential\" (waves)", 1, 0},
    {"fallback", FLEXRT_FIELD_TYPE_STRING, "\"none\"",
     "\"none\" (O_DIRECT refused is an error) or \"buffered\" (use the page cache, with a warning)", 1, 0},
};

flexrt_status create(const flexrt_host* host, const flexrt_field* f, uint32_t n, void** out) {
    return guard(host, [&] {
        using flexrt::sdk::get;
        flexrt::aio::Options o;
        o.block_size = static_cast<uint64_t>(get<int64_t>(f, n, "block_size"));
        o.queue_depth = static_cast<unsigned>(get<int64_t>(f, n, "queue_depth"));
        o.threads = static_cast<unsigned>(get<int64_t>(f, n, "threads"));
        const std::string mode = get<std::string>(f, n, "submission"), fallback = get<std::string>(f, n, "fallback");
        if (mode != "overlapped" && mode != "sequential")
            FLEXRT_THROW(FLEXRT_STATUS_INVALID_ARGUMENT,
                         "storage.options.submission = \"" + mode + "\": expected \"overlapped\" or \"sequential\"");
        if (fallback != "none" && fallback != "buffered")
            FLEXRT_THROW(FLEXRT_STATUS_INVALID_ARGUMENT,
                         "storage.options.fallback = \"" + fallback + "\": expected \"none\" or \"buffered\"");
        o.overlapped = mode == "overlapped";
        try {
            *out = static_cast<flexrt::IStorage*>(new AioStorage(host, o, fallback == "buffered"));
        } catch (const std::system_error& e) {
            FLEXRT_THROW(flexrt::status_from_errno(e.code().value()), std::string("storage.aio: ") + e.what());
        }
        return FLEXRT_STATUS_OK;
    });
}

}  // namespace

FLEXRT_PLUGINS(flexrt::sdk::describe(FLEXRT_PLUGIN_KIND_STORAGE, "aio", "0.1.0",
                                     "libaio with O_DIRECT: block_size x queue_depth x threads, checked completions", kOptions, 5, &create))
