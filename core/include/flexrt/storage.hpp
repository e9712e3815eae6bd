// IStorage: the disk tier's I/O, implemented by storage plugins (mmap, aio, a third party's).
// C-mappable: noexcept virtuals, POD arguments, flexrt_status returns; no STL crosses (see abi.h).
#pragma once

#include <flexrt/abi.h>

#include <cstdint>

extern "C" {

// Flags of IStorage::open.
enum : uint32_t {
    FLEXRT_OPEN_READ = 1u << 0,    // reads will be submitted
    FLEXRT_OPEN_WRITE = 1u << 1,   // writes will be submitted
    FLEXRT_OPEN_CREATE = 1u << 2,  // create (or truncate) the file and size it to `size` bytes
};

typedef enum flexrt_io_op { FLEXRT_IO_OP_READ = 0, FLEXRT_IO_OP_WRITE = 1 } flexrt_io_op;

// One asynchronous request. The caller owns it and its buffer until wait() has returned it complete.
typedef struct flexrt_io_request {
    uint32_t struct_size;
    flexrt_io_op op;
    uint64_t file;    // handle from open()
    uint64_t offset;  // bytes from the start of the file
    uint64_t bytes;   // length
    void* buffer;     // host memory, `bytes` long
    // Filled by the plugin when the request completes:
    flexrt_status status;  // OK only if all `bytes` were transferred
    int32_t sys_errno;     // the OS error behind a failure, 0 if none
    uint64_t bytes_done;
    void* user_data;  // the caller's, untouched
} flexrt_io_request;
static_assert(sizeof(flexrt_io_request) == 64, "flexrt_io_request is frozen in ABI 1");
}

namespace flexrt {

class IStorage {
public:
    // Alignment in bytes that offset, bytes and buffer of a request must have; 1 means any. It is learned
    // from the file systems of the files opened so far and may grow when a file on another file system is
    // opened, so callers ask after open(). Sync, any thread. The core bounces misaligned transfers through
    // aligned staging buffers (read-modify-write for writes), so a plugin never sees them.
    virtual uint64_t required_alignment() const noexcept = 0;

    // Opens `path` (borrowed for the call). With FLEXRT_OPEN_CREATE the file is created or truncated and
    // sized to `size` bytes (space reserved: a full disk fails here, with NO_SPACE), possibly padded on disk
    // to the alignment; otherwise `size` is ignored. Writes *file. Sync; may be called concurrently.
    virtual flexrt_status open(const char* path, uint32_t flags, uint64_t size, uint64_t* file) noexcept = 0;

    // True size of an open file in bytes (without alignment padding). Sync; may be called concurrently.
    virtual flexrt_status file_size(uint64_t file, uint64_t* bytes) noexcept = 0;

    // Makes completed writes to `file` durable (fsync semantics). Sync; may be called concurrently.
    virtual flexrt_status flush(uint64_t file) noexcept = 0;

    // Closes a file with no requests in flight. Sync; may be called concurrently for different files.
    virtual flexrt_status close(uint64_t file) noexcept = 0;

    // Deletes `path` (borrowed). Sync; may be called concurrently.
    virtual flexrt_status remove(const char* path) noexcept = 0;

    // Atomically renames `from` to `to` (both borrowed), replacing `to`: how a file written under a
    // temporary name becomes complete. Sync; may be called concurrently.
    virtual flexrt_status rename(const char* from, const char* to) noexcept = 0;

    // Starts `n` requests (the array is borrowed for the call; each request until it completes).
    // Async: returns once they are queued. May be called concurrently.
    // A request completes with status OK when all its bytes were transferred, except that a read reaching
    // past the end of the file transfers the bytes that exist and completes OK with bytes_done counting
    // them. Short transfers elsewhere are retried by the plugin; a failure sets status and sys_errno.
    virtual flexrt_status submit(flexrt_io_request* const* requests, uint32_t n) noexcept = 0;

    // Blocks until each of the `n` requests has completed and its status fields are filled. Returns OK
    // when it waited for all of them, whatever their own status. May be called concurrently for
    // disjoint request sets.
    virtual flexrt_status wait(flexrt_io_request* const* requests, uint32_t n) noexcept = 0;

    // Optional interfaces added in later minor versions; nullptr when not provided.
    virtual void* get_extension(const char* /*name*/, uint32_t /*version*/) noexcept { return nullptr; }

    // Destroys the object inside the plugin. Called once, with no file open and no request in flight.
    virtual void release() noexcept = 0;

protected:
    ~IStorage() = default;  // never deleted by the host: release() does it
};

}  // namespace flexrt
