// storage.crc32c: POSIX files with a CRC32C per 4 KiB block, kept in a sidecar file "<file>.crc32c", checked on
// every read. A flipped bit on the disk (or a torn write) becomes a BAD_DATA error naming the file and the
// block, instead of wrong weights or a wrong KV cache. An example of a third party's storage plugin, built
// against the installed SDK only; kept simple on purpose: submit() does the I/O itself, synchronously (a
// fast back-end queues it, as storage.aio does).
//
// Files this plugin creates carry a sidecar: 16 bytes of header ("FLXCRC1\0", the true file size) and one
// little-endian CRC32C per block. A file without one (weights written by something else) is read unchecked.
// The data file is padded to whole blocks, so every block has a CRC and the host's requests (aligned to
// 4 KiB: required_alignment) cover whole blocks.
#include <flexrt/sdk.hpp>
#include <flexrt/storage.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace {

constexpr uint64_t kBlock = 4096;
constexpr char kMagic[8] = {'F', 'L', 'X', 'C', 'R', 'C', '1', '\0'};
constexpr uint64_t kHeader = 16;

// CRC32C (Castagnoli, reflected 0x82F63B78), one table lookup per byte.
uint32_t crc32c(const std::byte* p, size_t n) {
    static const std::array<uint32_t, 256> table = [] {
        std::array<uint32_t, 256> t{};
        for (uint32_t i = 0; i < 256; ++i) {
            uint32_t c = i;
            for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1u)));
            t[i] = c;
        }
        return t;
    }();
    uint32_t c = ~0u;
    for (size_t i = 0; i < n; ++i) c = table[(c ^ static_cast<uint8_t>(p[i])) & 0xFF] ^ (c >> 8);
    return ~c;
}

thread_local int last_errno = 0;  // the OS error behind the last failure on this thread, for sys_errno

[[noreturn]] void fail_errno(const std::string& what) {
    last_errno = errno;
    throw flexrt::Error(flexrt::status_from_errno(last_errno), what + ": " + flexrt::errno_text(last_errno));
}

// A file descriptor, closed when it goes.
class Fd {
public:
    explicit Fd(int fd = -1) : fd_(fd) {}
    Fd(Fd&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
    Fd& operator=(Fd&& o) noexcept {
        std::swap(fd_, o.fd_);
        return *this;
    }
    ~Fd() {
        if (fd_ >= 0) ::close(fd_);
    }
    int get() const { return fd_; }

private:
    int fd_;
};

// Whole-buffer pread/pwrite: short transfers retried, EINTR too. pread stops at the end of the file.
uint64_t read_at(int fd, std::byte* p, uint64_t n, uint64_t off, const std::string& what) {
    uint64_t done = 0;
    while (done < n) {
        const ssize_t r = ::pread(fd, p + done, n - done, static_cast<off_t>(off + done));
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) fail_errno("reading " + what);
        if (r == 0) break;
        done += static_cast<uint64_t>(r);
    }
    return done;
}
void write_at(int fd, const std::byte* p, uint64_t n, uint64_t off, const std::string& what) {
    for (uint64_t done = 0; done < n;) {
        const ssize_t r = ::pwrite(fd, p + done, n - done, static_cast<off_t>(off + done));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) fail_errno("writing " + what);
        done += static_cast<uint64_t>(r);
    }
}

struct File {
    std::string path;
    Fd data, sidecar;  // sidecar.get() < 0: a file written elsewhere, read unchecked
    uint64_t size = 0;
};

class Crc32cStorage final : public flexrt::IStorage {
public:
    explicit Crc32cStorage(const flexrt_host* host) : host_(host) {}

    uint64_t required_alignment() const noexcept override { return kBlock; }

    flexrt_status open(const char* path, uint32_t flags, uint64_t size, uint64_t* handle) noexcept override {
        return flexrt::sdk::guard(host_, [&] {
            auto f = std::make_shared<File>();
            f->path = path;
            const std::string side = f->path + ".crc32c";
            if (flags & FLEXRT_OPEN_CREATE) {
                f->data = Fd(::open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
                if (f->data.get() < 0) fail_errno("creating " + f->path);
                const uint64_t blocks = (size + kBlock - 1) / kBlock;
                // The space reserved now, so a full disk fails here and not mid-run.
                if (blocks)
                    if (const int e = ::posix_fallocate(f->data.get(), 0, static_cast<off_t>(blocks * kBlock)); e != 0) {
                        errno = e;  // posix_fallocate returns its error
                        fail_errno("reserving " + std::to_string(blocks * kBlock) + " bytes for " + f->path);
                    }
                f->sidecar = Fd(::open(side.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
                if (f->sidecar.get() < 0) fail_errno("creating " + side);
                // The header, and every block's CRC as the zeros it holds now.
                std::vector<std::byte> meta(kHeader + blocks * 4);
                std::memcpy(meta.data(), kMagic, 8);
                std::memcpy(meta.data() + 8, &size, 8);
                const std::vector<std::byte> zeros(kBlock);
                const uint32_t zero_crc = crc32c(zeros.data(), kBlock);
                for (uint64_t b = 0; b < blocks; ++b) std::memcpy(meta.data() + kHeader + b * 4, &zero_crc, 4);
                write_at(f->sidecar.get(), meta.data(), meta.size(), 0, side);
                f->size = size;
            } else {
                f->data = Fd(::open(path, (flags & FLEXRT_OPEN_WRITE ? O_RDWR : O_RDONLY) | O_CLOEXEC));
                if (f->data.get() < 0) fail_errno("opening " + f->path);
                f->sidecar = Fd(::open(side.c_str(), (flags & FLEXRT_OPEN_WRITE ? O_RDWR : O_RDONLY) | O_CLOEXEC));
                if (f->sidecar.get() >= 0) {
                    std::byte header[kHeader];
                    if (read_at(f->sidecar.get(), header, kHeader, 0, side) != kHeader || std::memcmp(header, kMagic, 8) != 0)
                        FLEXRT_THROW(FLEXRT_STATUS_BAD_DATA, side + " is not a CRC32C sidecar (no FLXCRC1 header)");
                    std::memcpy(&f->size, header + 8, 8);
                } else {
                    struct stat st {};
                    if (::fstat(f->data.get(), &st) != 0) fail_errno("stat " + f->path);
                    f->size = static_cast<uint64_t>(st.st_size);
                }
            }
            std::lock_guard lock(m_);
            *handle = next_++;
            files_[*handle] = std::move(f);
            return FLEXRT_STATUS_OK;
        });
    }

    flexrt_status file_size(uint64_t handle, uint64_t* bytes) noexcept override {
        return flexrt::sdk::guard(host_, [&] {
            *bytes = file(handle)->size;
            return FLEXRT_STATUS_OK;
        });
    }

    flexrt_status flush(uint64_t handle) noexcept override {
        return flexrt::sdk::guard(host_, [&] {
            auto f = file(handle);
            if (::fsync(f->data.get()) != 0) fail_errno("fsync " + f->path);
            if (f->sidecar.get() >= 0 && ::fsync(f->sidecar.get()) != 0) fail_errno("fsync " + f->path + ".crc32c");
            return FLEXRT_STATUS_OK;
        });
    }

    flexrt_status close(uint64_t handle) noexcept override {
        return flexrt::sdk::guard(host_, [&] {
            std::lock_guard lock(m_);
            if (files_.erase(handle) == 0)
                FLEXRT_THROW(FLEXRT_STATUS_INVALID_ARGUMENT, "close of unknown handle " + std::to_string(handle));
            return FLEXRT_STATUS_OK;
        });
    }

    // The sidecar goes with its file; a missing sidecar is no error (a file written elsewhere).
    flexrt_status remove(const char* path) noexcept override {
        if (flexrt_status s = flexrt::sdk::posix_remove(host_, path); s != FLEXRT_STATUS_OK) return s;
        ::unlink((std::string(path) + ".crc32c").c_str());
        return FLEXRT_STATUS_OK;
    }

    // The sidecar first, the data last: the data's rename is what makes the file complete under its name. A
    // crash in between leaves a sidecar that does not match the old file, and reads of it fail: loud, not wrong.
    flexrt_status rename(const char* from, const char* to) noexcept override {
        const std::string side_from = std::string(from) + ".crc32c", side_to = std::string(to) + ".crc32c";
        if (::access(side_from.c_str(), F_OK) == 0) {
            if (flexrt_status s = flexrt::sdk::posix_rename(host_, side_from.c_str(), side_to.c_str()); s != FLEXRT_STATUS_OK) return s;
        } else {
            ::unlink(side_to.c_str());  // an old sidecar must not describe the new file
        }
        return flexrt::sdk::posix_rename(host_, from, to);
    }

    flexrt_status submit(flexrt_io_request* const* reqs, uint32_t n) noexcept override {
        for (uint32_t i = 0; i < n; ++i) {
            flexrt_io_request& r = *reqs[i];
            r.sys_errno = last_errno = 0;
            r.bytes_done = 0;
            r.status = flexrt::sdk::guard(host_, [&] {
                auto f = file(r.file);
                if (r.offset % kBlock || r.bytes % kBlock)
                    FLEXRT_THROW(FLEXRT_STATUS_INVALID_ARGUMENT, f->path + ": a request not aligned to 4096 bytes");
                auto* p = static_cast<std::byte*>(r.buffer);
                if (r.op == FLEXRT_IO_OP_WRITE) {
                    write_at(f->data.get(), p, r.bytes, r.offset, f->path);
                    if (f->sidecar.get() >= 0) {
                        std::vector<uint32_t> crcs(r.bytes / kBlock);
                        for (size_t b = 0; b < crcs.size(); ++b) crcs[b] = crc32c(p + b * kBlock, kBlock);
                        write_at(f->sidecar.get(), reinterpret_cast<const std::byte*>(crcs.data()), crcs.size() * 4,
                                 kHeader + r.offset / kBlock * 4, f->path + ".crc32c");
                    }
                    r.bytes_done = r.bytes;
                } else {
                    const uint64_t got = read_at(f->data.get(), p, r.bytes, r.offset, f->path);
                    if (f->sidecar.get() >= 0) verify(*f, p, r.offset, got);
                    // Past the true end: what exists (the padding is not the file's).
                    r.bytes_done = r.offset >= f->size ? 0 : std::min(got, f->size - r.offset);
                }
                return FLEXRT_STATUS_OK;
            });
            r.sys_errno = last_errno;
        }
        return FLEXRT_STATUS_OK;
    }

    flexrt_status wait(flexrt_io_request* const*, uint32_t) noexcept override { return FLEXRT_STATUS_OK; }  // done in submit

    void release() noexcept override { delete this; }

private:
    std::shared_ptr<File> file(uint64_t handle) {
        std::lock_guard lock(m_);
        auto it = files_.find(handle);
        if (it == files_.end()) FLEXRT_THROW(FLEXRT_STATUS_INVALID_ARGUMENT, "unknown file handle " + std::to_string(handle));
        return it->second;
    }

    // The CRC of every whole block read against the sidecar's.
    void verify(const File& f, const std::byte* p, uint64_t offset, uint64_t got) {
        const uint64_t blocks = got / kBlock;
        std::vector<uint32_t> want(blocks);
        const uint64_t have = read_at(f.sidecar.get(), reinterpret_cast<std::byte*>(want.data()), blocks * 4, kHeader + offset / kBlock * 4,
                                      f.path + ".crc32c");
        if (have != blocks * 4) FLEXRT_THROW(FLEXRT_STATUS_BAD_DATA, f.path + ".crc32c is shorter than its file");
        for (uint64_t b = 0; b < blocks; ++b)
            if (crc32c(p + b * kBlock, kBlock) != want[b]) {
                const uint64_t block = offset / kBlock + b;
                FLEXRT_THROW(FLEXRT_STATUS_BAD_DATA, f.path + ": block " + std::to_string(block) + " (bytes " +
                                                         std::to_string(block * kBlock) + ".." + std::to_string((block + 1) * kBlock) +
                                                         ") fails its CRC32C check");
            }
    }

    const flexrt_host* host_;
    std::mutex m_;
    std::map<uint64_t, std::shared_ptr<File>> files_;
    uint64_t next_ = 1;
};

flexrt_status create(const flexrt_host* host, const flexrt_field*, uint32_t, void** out) {
    return flexrt::sdk::guard(host, [&] {
        *out = static_cast<flexrt::IStorage*>(new Crc32cStorage(host));
        return FLEXRT_STATUS_OK;
    });
}

}  // namespace

FLEXRT_PLUGINS(flexrt::sdk::describe(FLEXRT_PLUGIN_KIND_STORAGE, "crc32c", "0.1.0",
                                     "POSIX files with a CRC32C per 4 KiB block, checked on every read (an example plugin)", nullptr, 0,
                                     &create))
