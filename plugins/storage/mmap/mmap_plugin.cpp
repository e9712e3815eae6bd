// storage.mmap: the disk tier through memory-mapped files (the simplest back-end; the page cache does the
// I/O). Requests complete inside submit(). Space is reserved with posix_fallocate when a file is created,
// so a full disk is an error at allocation instead of a SIGBUS in the middle of a run. Page faults one page
// at a time are slow (measured: 0.38 GB/s for memcpy into a fresh mapping, 2.1 GB/s after
// MADV_POPULATE_WRITE; MADV_SEQUENTIAL on the mapping cut reads to 0.04 GB/s), so each request's range is
// prefaulted in bulk first; and one thread copying out of the page cache read 4.5 GB/s on the H100 machine
// (W4 with a warm cache) where FlexLLMGen's buffered reads reach 14.6, so large requests are split between
// `threads` threads, each faulting in and copying its own part.
#include <flexrt/sdk.hpp>
#include <flexrt/storage.hpp>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>
#include <thread>
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
    MmapStorage(const flexrt_host* host, bool prefault, uint64_t threads) : host_(host), prefault_(prefault), threads_(threads) {}

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
            for (uint32_t i = 0; i < n; ++i) execute(*reqs[i]);
            return FLEXRT_STATUS_OK;
        });
    }

    flexrt_status wait(flexrt_io_request* const*, uint32_t) noexcept override {
        return FLEXRT_STATUS_OK;  // submit() completed them
    }

    void release() noexcept override {
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

    // A read that reaches past the end of the file transfers what exists (IStorage's contract); a write
    // there fails: touching the mapping beyond the file would raise SIGBUS.
    void execute(flexrt_io_request& r) {
        r.sys_errno = 0;
        r.bytes_done = 0;
        MappedFile f;
        try {
            f = lookup(r.file);
        } catch (const flexrt::Error& e) {
            r.status = e.status();
            return;
        }
        uint64_t avail = r.offset < f.size ? f.size - r.offset : 0;
        uint64_t n = r.bytes < avail ? r.bytes : avail;
        if (r.op == FLEXRT_IO_OP_WRITE && !f.writable) {
            r.status = FLEXRT_STATUS_INVALID_ARGUMENT;
            r.sys_errno = EBADF;
            return;
        }
        const bool read = r.op == FLEXRT_IO_OP_READ;
        auto part = [&](uint64_t at, uint64_t len) {  // [at, at + len) of the request
            if (prefault_) {                          // whole pages around the range; failure (an old kernel) only costs speed
                const uint64_t page = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE)), lo = (r.offset + at) / page * page;
                if (::madvise(f.base + lo, r.offset + at + len - lo, read ? kPopulateRead : kPopulateWrite) != 0 && read)
                    ::madvise(f.base + lo, r.offset + at + len - lo, MADV_WILLNEED);
            }
            if (read)
                std::memcpy(static_cast<std::byte*>(r.buffer) + at, f.base + r.offset + at, len);
            else
                std::memcpy(f.base + r.offset + at, static_cast<const std::byte*>(r.buffer) + at, len);
        };
        const uint64_t parts = n >= kSplitBytes ? threads_ : 1, piece = (n / parts + 4095) / 4096 * 4096;
        {
            std::vector<std::jthread> helpers;
            for (uint64_t p = 1; p < parts && p * piece < n; ++p) helpers.emplace_back(part, p * piece, std::min(piece, n - p * piece));
            if (n) part(0, std::min(piece, n));
        }
        r.bytes_done = n;
        r.status = (n == r.bytes || r.op == FLEXRT_IO_OP_READ) ? FLEXRT_STATUS_OK : FLEXRT_STATUS_IO_ERROR;
    }

    static constexpr int kPopulateRead = 22, kPopulateWrite = 23;  // MADV_POPULATE_* (Linux 5.14), absent from older headers
    static constexpr uint64_t kSplitBytes = 4ull << 20;            // below this a thread costs more than it saves
    const flexrt_host* host_;
    bool prefault_;
    uint64_t threads_;
    std::mutex m_;
    std::map<uint64_t, MappedFile> files_;
    uint64_t next_ = 1;
};

const flexrt_option_desc kOptions[] = {
    {"prefault", FLEXRT_FIELD_TYPE_BOOL, "true",
     "fault each request's pages in bulk first (MADV_POPULATE_READ, else MADV_WILLNEED, for reads; MADV_POPULATE_WRITE for writes)", 1, 0},
    {"threads", FLEXRT_FIELD_TYPE_INT, "4", "threads that share one request of 4 MiB or more (each faults in and copies its part)", 1, 64},
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
