// Memory tiers: the compute device, host memory and the disk. Core-internal in ABI 1 (devices are built
// into the core, not plugins), so these classes may use the STL and throw.
#pragma once

#include <flexrt/storage.hpp>

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace flexrt {

enum class TierKind { compute, host, disk };

// Where a buffer's bytes are, which decides how they are copied: pageable host memory, pinned
// (page-locked) host memory, device memory (a GPU's), or a file on the disk tier.
enum class MemoryKind { host, pinned, device, file };

const char* tier_name(TierKind t) noexcept;

// "12.345 GiB": how sizes read in messages.
std::string gib_text(uint64_t bytes);

class IDevice;

// A block of memory (or a file) owned by its device; freed (or removed) when destroyed.
class Buffer {
public:
    Buffer(IDevice& device, uint64_t bytes) : device_(device), bytes_(bytes) {}
    virtual ~Buffer() = default;
    Buffer(const Buffer&) = delete;
    Buffer& operator=(const Buffer&) = delete;

    IDevice& device() const noexcept { return device_; }
    uint64_t bytes() const noexcept { return bytes_; }
    // The address of the bytes in the device's memory space (host memory, or device memory for a GPU), or
    // nullptr for a file.
    virtual std::byte* data() noexcept = 0;
    MemoryKind memory() const noexcept;

private:
    IDevice& device_;
    uint64_t bytes_;
};

// A memory tier. allocate() throws flexrt::Error (OUT_OF_MEMORY, NO_SPACE, IO_ERROR) naming `purpose`.
// May be called concurrently.
class IDevice {
public:
    virtual ~IDevice() = default;
    virtual TierKind kind() const noexcept = 0;
    virtual MemoryKind memory() const noexcept = 0;
    virtual std::string name() const = 0;
    virtual std::unique_ptr<Buffer> allocate(uint64_t bytes, const std::string& purpose) = 0;

    uint64_t allocated_bytes() const noexcept { return allocated_.load(); }
    uint64_t peak_bytes() const noexcept { return peak_.load(); }

protected:
    void account(int64_t delta) noexcept;

private:
    std::atomic<uint64_t> allocated_{0};
    std::atomic<uint64_t> peak_{0};
};

// Host memory used either as the host tier or, without a GPU, as the compute device's memory. Pinned
// (page-locked, CUDA builds) when asked: what the GPU's copy engines read at full speed.
class MemoryDevice final : public IDevice {
public:
    // cap_bytes > 0 limits what the tier may hold: an allocation beyond it is refused with OUT_OF_MEMORY
    // naming the cap (pinned memory is scarce, and pinning too much starves the rest of the host).
    MemoryDevice(TierKind kind, std::string name, bool pinned = false, uint64_t cap_bytes = 0)
        : kind_(kind), name_(std::move(name)), pinned_(pinned), cap_(cap_bytes) {}
    TierKind kind() const noexcept override { return kind_; }
    MemoryKind memory() const noexcept override { return pinned_ ? MemoryKind::pinned : MemoryKind::host; }
    bool pinned() const noexcept { return pinned_; }
    std::string name() const override { return name_; }
    std::unique_ptr<Buffer> allocate(uint64_t bytes, const std::string& purpose) override;

private:
    friend class MemoryBuffer;
    TierKind kind_;
    std::string name_;
    bool pinned_;
    uint64_t cap_;
    std::mutex cap_mutex_;
};

// The disk tier: one file per buffer in a private run directory under the offload dir, through a
// storage plugin. The run directory and every file in it are removed when the device is destroyed; run
// directories left by processes that no longer exist (a crash, a kill -9) are removed at start.
// A file's name says whether its content is whole: "<n>-<purpose>.partial" while being written,
// renamed by commit() once complete; scratch files (KV cache, hidden states) end in ".scratch".
class DiskDevice final : public IDevice {
public:
    // Throws naming `offload_dir` when it is not a directory or not writable.
    DiskDevice(IStorage& storage, const std::filesystem::path& offload_dir);
    ~DiskDevice() override;

    // Throws NO_SPACE when `bytes` (what the run will write, `what` says of what) exceeds the free space
    // of the offload dir's file system (statvfs), before anything is allocated.
    void check_free_space(uint64_t bytes, const std::string& what) const;
    // Stale run directories removed at start.
    const std::vector<std::filesystem::path>& removed_stale() const noexcept { return removed_stale_; }

    TierKind kind() const noexcept override { return TierKind::disk; }
    MemoryKind memory() const noexcept override { return MemoryKind::file; }
    std::string name() const override { return "disk (" + run_dir_.string() + ")"; }
    // A scratch file ("<n>-<purpose>.scratch"): content that only this run reads (KV cache, hidden states).
    std::unique_ptr<Buffer> allocate(uint64_t bytes, const std::string& purpose) override;
    // A file written once and then committed (DiskBuffer::commit): "<n>-<purpose>.partial" until then.
    std::unique_ptr<Buffer> allocate_partial(uint64_t bytes, const std::string& purpose);

    // Opens an existing file for reading (a weight file); it is not removed when the buffer goes.
    std::unique_ptr<Buffer> open_existing(const std::filesystem::path& path);

    IStorage& storage() noexcept { return storage_; }
    const std::filesystem::path& run_dir() const noexcept { return run_dir_; }

private:
    friend class DiskBuffer;
    std::unique_ptr<Buffer> create_file(uint64_t bytes, const std::string& purpose, const char* suffix);
    IStorage& storage_;
    std::filesystem::path run_dir_;
    std::atomic<uint64_t> next_id_{0};
    std::vector<std::filesystem::path> removed_stale_;
};

// A file on the disk tier.
class DiskBuffer final : public Buffer {
public:
    DiskBuffer(DiskDevice& device, std::filesystem::path path, uint64_t file, uint64_t bytes, bool owned);
    ~DiskBuffer() override;
    std::byte* data() noexcept override { return nullptr; }
    // Flushes the file and renames it from "<name>.partial" to "<name>": its content is complete.
    void commit();
    uint64_t file() const noexcept { return file_; }
    const std::filesystem::path& path() const noexcept { return path_; }
    IStorage& storage() const noexcept { return disk_.storage(); }
    // Held by read-modify-write of misaligned writes: two of them may share a block.
    std::mutex& rmw_mutex() noexcept { return rmw_mutex_; }

private:
    std::mutex rmw_mutex_;
    DiskDevice& disk_;
    std::filesystem::path path_;
    uint64_t file_;
    bool owned_;
};

}  // namespace flexrt
