// storage.mmap: the disk tier through memory-mapped files (the simplest back-end; the page cache does the
// I/O). Space is reserved with posix_fallocate when a file is created, so a full disk is an error at
// allocation instead of a SIGBUS in the middle of a run. Page faults one page at a time are slow (measured:
// 0.38 GB/s for memcpy into a fresh mapping, 2.1 GB/s after MADV_POPULATE_WRITE; MADV_SEQUENTIAL on the
// mapping cut reads to 0.04 GB/s), so each request's range is prefaulted in bulk first.
//
// Requests are served by `threads` worker threads that live as long as the plugin: submit() queues them (a
// request of 8 MiB or more in parts of at least 4 MiB, one part a thread) and returns, wait() waits for them.
// The core keeps several 16 MiB requests of a disk -> GPU read in flight and copies each to the GPU as it
// completes, so copies out of the page cache run side by side and beside the GPU copies. Reading a warm page
// cache on the H100 machine (16 cores), memcpy out of a mapping moves ~5 GB/s a thread, 29 GB/s with 8; when
// submit() did the copies itself (3 threads started per request), W4 read ~9 GB/s.
#include <flexrt/sdk.hpp>
#include <flexrt/storage.hpp>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_set>
#include <vector>

namespace {

using flexrt::sdk::guard;

struct MappedFile {
    int fd = -1;
    std::byte* base = nullptr;  // nullptr for an empty file
    uint64_t size = 0;
    bool writable = false;
    std::string path;
};

class MmapStorage final : public flexrt::IStorage {
public:
    MmapStorage(const flexrt_host* host, bool prefault, uint64_t threads) : host_(host), prefault_(prefault), threads_(threads) {
        for (uint64_t t = 0; t < threads; ++t) workers_.emplace_back([this] { serve(); });
    }

    uint64_t required_alignment() const noexcept override { return 1; }

    flexrt_status open(const char* path, uint32_t flags, uint64_t size, uint64_t* file) noexcept override {
        return guard(host_, [&] {
            const bool write = flags & (FLEXRT_OPEN_WRITE | FLEXRT_OPEN_CREATE);
            int oflags = (write ? O_RDWR : O_RDONLY) | O_CLOEXEC;
            if (flags & FLEXRT_OPEN_CREATE) oflags |= O_CREAT | O_TRUNC;
            MappedFile f;
            f.path = path;
            f.writable = write;
            f.fd = ::open(path, oflags, 0644);
            FLEXRT_SYS_CHECK(f.fd, std::string("open ") + path);
            try {
                if (flags & FLEXRT_OPEN_CREATE) {
                    if (size > 0) {
                        int err = ::posix_fallocate(f.fd, 0, static_cast<off_t>(size));
                        if (err)
                            FLEXRT_THROW(flexrt::status_from_errno(err), std::string("reserving ") + std::to_string(size) + " bytes for " +
                                                                             path + ": " + flexrt::errno_text(err));
                    }
                    f.size = size;
                } else {
                    struct stat st {};
                    FLEXRT_SYS_CHECK(::fstat(f.fd, &st), std::string("stat ") + path);
                    f.size = static_cast<uint64_t>(st.st_size);
                }
                if (f.size > 0) {
                    void* p = ::mmap(nullptr, f.size, PROT_READ | (write ? PROT_WRITE : 0), MAP_SHARED, f.fd, 0);
                    if (p == MAP_FAILED) FLEXRT_SYS_CHECK(-1, std::string("mmap ") + path);
                    f.base = static_cast<std::byte*>(p);
                }
            } catch (...) {
                ::close(f.fd);
                if (flags & FLEXRT_OPEN_CREATE) ::unlink(path);  // leave nothing that looks complete
                throw;
            }
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
            MappedFile f = lookup(file);
            if (f.base && f.writable) FLEXRT_SYS_CHECK(::msync(f.base, f.size, MS_SYNC), "msync " + f.path);
            FLEXRT_SYS_CHECK(::fsync(f.fd), "fsync " + f.path);
            return FLEXRT_STATUS_OK;
        });
    }

    flexrt_status close(uint64_t file) noexcept override {
        return guard(host_, [&] {
            MappedFile f;
            {
                std::lock_guard lock(m_);
                auto it = files_.find(file);
                if (it == files_.end()) FLEXRT_THROW(FLEXRT_STATUS_INVALID_ARGUMENT, "close of an unknown file handle");
                f = std::move(it->second);
                files_.erase(it);
            }
            if (f.base) ::munmap(f.base, f.size);
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
        return guard(host_, [&] {
            std::unique_lock lock(m_);
            for (uint32_t i = 0; i < n; ++i) done_.wait(lock, [&] { return !pending_.count(reqs[i]); });
            return FLEXRT_STATUS_OK;
        });
    }

    void release() noexcept override {
        {
            std::lock_guard lock(m_);
            stopping_ = true;
        }
        work_.notify_all();
        workers_.clear();  // joins them: no request is in flight (IStorage's contract)
        for (auto& [h, f] : files_) {
            if (f.base) ::munmap(f.base, f.size);
            ::close(f.fd);
        }
        delete this;
    }

private:
    MappedFile lookup(uint64_t file) {
        std::lock_guard lock(m_);
        auto it = files_.find(file);
        if (it == files_.end()) FLEXRT_THROW(FLEXRT_STATUS_INVALID_ARGUMENT, "unknown file handle " + std::to_string(file));
        return it->second;
    }

    // One request in flight: its parts not yet copied.
    struct Job {
        flexrt_io_request* req;
        MappedFile file;
        uint64_t bytes;  // what it transfers: a read reaching past the end of the file stops there
        uint32_t parts_left;
    };
    struct Part {
        std::shared_ptr<Job> job;
        uint64_t at, len;  // [at, at + len) of the request
    };

    // Checks a request and queues its parts; one that cannot run completes here, with its status.
    // A read that reaches past the end of the file transfers what exists (IStorage's contract); a write
    // there fails: touching the mapping beyond the file would raise SIGBUS.
    void start(flexrt_io_request& r) {
        r.sys_errno = 0;
        r.bytes_done = 0;
        r.status = FLEXRT_STATUS_OK;
        MappedFile f;
        try {
            f = lookup(r.file);
        } catch (const flexrt::Error& e) {
            r.status = e.status();
            return;
        }
        const uint64_t avail = r.offset < f.size ? f.size - r.offset : 0, n = r.bytes < avail ? r.bytes : avail;
        if (r.op == FLEXRT_IO_OP_WRITE && (!f.writable || n < r.bytes)) {
            r.status = !f.writable ? FLEXRT_STATUS_INVALID_ARGUMENT : FLEXRT_STATUS_IO_ERROR;
            r.sys_errno = !f.writable ? EBADF : 0;
            return;
        }
        if (n == 0) return;  // nothing to copy: complete
        const uint64_t parts = n >= 2 * kPartBytes ? std::min<uint64_t>(threads_, n / kPartBytes) : 1;
        const uint64_t piece = (n / parts + 4095) / 4096 * 4096;
        auto job = std::make_shared<Job>(Job{&r, std::move(f), n, 0});
        std::vector<Part> mine;
        for (uint64_t at = 0; at < n; at += piece) mine.push_back({job, at, std::min(piece, n - at)});
        job->parts_left = static_cast<uint32_t>(mine.size());
        {
            std::lock_guard lock(m_);
            pending_.insert(&r);
            for (auto& p : mine) queue_.push_back(std::move(p));
        }
        work_.notify_all();
    }

    // A worker: copies parts until the plugin is released; the last part of a request completes it.
    void serve() {
        for (;;) {
            Part p;
            {
                std::unique_lock lock(m_);
                work_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
                if (queue_.empty()) return;
                p = std::move(queue_.front());
                queue_.pop_front();
            }
            copy(p);
            std::lock_guard lock(m_);
            if (--p.job->parts_left == 0) {
                flexrt_io_request& r = *p.job->req;
                r.bytes_done = p.job->bytes;
                pending_.erase(&r);
                done_.notify_all();
            }
        }
    }

    void copy(const Part& p) const {
        const flexrt_io_request& r = *p.job->req;
        const MappedFile& f = p.job->file;
        const bool read = r.op == FLEXRT_IO_OP_READ;
        if (prefault_) {  // whole pages around the range; failure (an old kernel) only costs speed
            const uint64_t page = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE)), lo = (r.offset + p.at) / page * page;
            if (::madvise(f.base + lo, r.offset + p.at + p.len - lo, read ? kPopulateRead : kPopulateWrite) != 0 && read)
                ::madvise(f.base + lo, r.offset + p.at + p.len - lo, MADV_WILLNEED);
        }
        if (read)
            std::memcpy(static_cast<std::byte*>(r.buffer) + p.at, f.base + r.offset + p.at, p.len);
        else
            std::memcpy(f.base + r.offset + p.at, static_cast<const std::byte*>(r.buffer) + p.at, p.len);
    }

    static constexpr int kPopulateRead = 22, kPopulateWrite = 23;  // MADV_POPULATE_* (Linux 5.14), absent from older headers
    static constexpr uint64_t kPartBytes = 4ull << 20;  // a part of a request at the least: smaller ones cost more than they save
    const flexrt_host* host_;
    bool prefault_;
    uint64_t threads_;
    std::mutex m_;  // files_, next_, and the work: queue_, pending_, stopping_
    std::map<uint64_t, MappedFile> files_;
    uint64_t next_ = 1;
    std::deque<Part> queue_;
    std::unordered_set<const flexrt_io_request*> pending_;  // submitted, not complete
    bool stopping_ = false;
    std::condition_variable work_, done_;
    std::vector<std::jthread> workers_;  // last: they stop (release()) before anything above goes
};

const flexrt_option_desc kOptions[] = {
    {"prefault", FLEXRT_FIELD_TYPE_BOOL, "true",
     "fault each request's pages in bulk first (MADV_POPULATE_READ, else MADV_WILLNEED, for reads; MADV_POPULATE_WRITE for writes)", 1, 0},
    {"threads", FLEXRT_FIELD_TYPE_INT, "8",
     "worker threads that copy between the mappings and memory (a request of 8 MiB or more in parts of at least 4 MiB, one a thread)", 1,
     64},
};

flexrt_status create(const flexrt_host* host, const flexrt_field* fields, uint32_t n, void** out) {
    return guard(host, [&] {
        auto* s = new MmapStorage(host, flexrt::sdk::get<bool>(fields, n, "prefault"),
                                  static_cast<uint64_t>(flexrt::sdk::get<int64_t>(fields, n, "threads")));
        *out = static_cast<flexrt::IStorage*>(s);
        return FLEXRT_STATUS_OK;
    });
}

}  // namespace

FLEXRT_PLUGINS(flexrt::sdk::describe(FLEXRT_PLUGIN_KIND_STORAGE, "mmap", "0.1.0", "memory-mapped files through the page cache", kOptions, 2,
                                     &create))
