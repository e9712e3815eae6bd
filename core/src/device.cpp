#include "device.hpp"

#include "host_log.hpp"
#include "pinned_memory.hpp"

#include <flexrt/status.hpp>

#include <sys/statvfs.h>
#include <cctype>
#include <csignal>
#include <cstdio>

#include <unistd.h>
#include <cstdlib>
#include <cstring>
#include <system_error>

namespace flexrt {

const char* tier_name(TierKind t) noexcept {
    switch (t) {
    case TierKind::compute: return "gpu";
    case TierKind::host: return "cpu";
    case TierKind::disk: return "disk";
    }
    return "?";
}

MemoryKind Buffer::memory() const noexcept { return device_.memory(); }

std::string gib_text(uint64_t bytes) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.3f GiB", static_cast<double>(bytes) / (1ull << 30));
    return buf;
}

void IDevice::account(int64_t delta) noexcept {
    uint64_t now = allocated_.fetch_add(static_cast<uint64_t>(delta)) + static_cast<uint64_t>(delta);
    uint64_t peak = peak_.load();
    while (now > peak && !peak_.compare_exchange_weak(peak, now)) {}
}

// --- host memory -----------------------------------------------------------------------------------

class MemoryBuffer final : public Buffer {
public:
    // 4096-byte alignment: O_DIRECT-capable storage can then read into any buffer without a bounce.
    static constexpr uint64_t kAlignment = 4096;

    MemoryBuffer(MemoryDevice& device, uint64_t bytes, const std::string& purpose) : Buffer(device, bytes), dev_(device) {
        uint64_t rounded = (bytes + kAlignment - 1) / kAlignment * kAlignment;
        if (rounded == 0) rounded = kAlignment;
        if (device.pinned()) {
            try {
                data_ = static_cast<std::byte*>(pinned_alloc(rounded));  // page-aligned
            } catch (const Error& e) { FLEXRT_THROW(e.status(), std::string(e.what()) + " for " + purpose); }
        } else {
            data_ = static_cast<std::byte*>(std::aligned_alloc(kAlignment, rounded));
        }
        if (!data_)
            FLEXRT_THROW(FLEXRT_STATUS_OUT_OF_MEMORY,
                         "cannot allocate " + std::to_string(bytes) + " bytes of " + device.name() + " memory for " + purpose);
        dev_.account(static_cast<int64_t>(bytes));
    }
    ~MemoryBuffer() override {
        dev_.pinned() ? pinned_free(data_) : std::free(data_);
        dev_.account(-static_cast<int64_t>(bytes()));
    }
    std::byte* data() noexcept override { return data_; }

private:
    MemoryDevice& dev_;
    std::byte* data_ = nullptr;
};

std::unique_ptr<Buffer> MemoryDevice::allocate(uint64_t bytes, const std::string& purpose) {
    std::unique_lock<std::mutex> lock;  // with a cap, check and allocate together: concurrent callers cannot both pass
    if (cap_) {
        lock = std::unique_lock<std::mutex>(cap_mutex_);
        if (allocated_bytes() + bytes > cap_)
            FLEXRT_THROW(FLEXRT_STATUS_OUT_OF_MEMORY, "the " + name_ + " tier's cap of " + gib_text(cap_) +
                                                          " is reached: " + std::to_string(bytes) + " bytes for " + purpose + ", " +
                                                          gib_text(allocated_bytes()) + " already in use (runtime.pinned_gib)");
    }
    return std::make_unique<MemoryBuffer>(*this, bytes, purpose);
}

// --- disk ------------------------------------------------------------------------------------------

namespace {
void check_storage(flexrt_status s, const std::string& what) {
    if (s != FLEXRT_STATUS_OK) {
        std::string detail = take_last_plugin_error();
        FLEXRT_THROW(s, what + " failed: " + (detail.empty() ? flexrt_status_name(s) : detail));
    }
}
}  // namespace

DiskDevice::DiskDevice(IStorage& storage, const std::filesystem::path& offload_dir) : storage_(storage) {
    namespace fs = std::filesystem;
    std::error_code ec;
    if (fs::exists(offload_dir, ec) && !fs::is_directory(offload_dir, ec))
        FLEXRT_THROW(FLEXRT_STATUS_INVALID_ARGUMENT, "storage.offload_dir '" + offload_dir.string() + "' exists and is not a directory");
    fs::create_directories(offload_dir, ec);
    if (ec) FLEXRT_THROW(FLEXRT_STATUS_IO_ERROR, "storage.offload_dir '" + offload_dir.string() + "' cannot be created: " + ec.message());
    if (::access(offload_dir.c_str(), W_OK | X_OK) != 0)
        FLEXRT_THROW(FLEXRT_STATUS_IO_ERROR, "storage.offload_dir '" + offload_dir.string() + "' is not writable: " + errno_text(errno));
    // Run directories of processes that are gone: a crash or kill -9 left them; nobody will read them.
    for (const auto& e : fs::directory_iterator(offload_dir, ec)) {
        const std::string n = e.path().filename().string();
        int pid = 0;
        if (std::sscanf(n.c_str(), "flexrt-%d-", &pid) != 1 || pid <= 0) continue;
        if (::kill(pid, 0) == 0 || errno != ESRCH) continue;
        std::error_code rm;
        fs::remove_all(e.path(), rm);
        if (!rm) removed_stale_.push_back(e.path());
    }
    // A private directory per run: concurrent runs never collide and cleanup is one remove_all.
    for (int attempt = 0;; ++attempt) {
        run_dir_ = offload_dir / ("flexrt-" + std::to_string(::getpid()) + "-" + std::to_string(attempt));
        if (fs::create_directory(run_dir_, ec)) break;
        if (ec || attempt > 1000)
            FLEXRT_THROW(FLEXRT_STATUS_IO_ERROR,
                         "storage.offload_dir '" + offload_dir.string() + "' is not writable: " + (ec ? ec.message() : "name clash"));
    }
}

DiskDevice::~DiskDevice() {
    std::error_code ec;
    std::filesystem::remove_all(run_dir_, ec);  // files were removed by their buffers; this catches leftovers
}

void DiskDevice::check_free_space(uint64_t bytes, const std::string& what) const {
    struct statvfs s {};
    if (::statvfs(run_dir_.c_str(), &s) != 0) return;  // unknown: the allocations will tell
    const uint64_t free_bytes = static_cast<uint64_t>(s.f_bavail) * s.f_frsize;
    if (bytes > free_bytes)
        FLEXRT_THROW(FLEXRT_STATUS_NO_SPACE, "the run needs " + gib_text(bytes) + " on disk under " + run_dir_.parent_path().string() +
                                                 " (" + what + "), and its file system has " + gib_text(free_bytes) +
                                                 " free; move storage.offload_dir or keep more on the gpu/cpu tiers");
}

std::unique_ptr<Buffer> DiskDevice::allocate(uint64_t bytes, const std::string& purpose) { return create_file(bytes, purpose, ".scratch"); }

std::unique_ptr<Buffer> DiskDevice::allocate_partial(uint64_t bytes, const std::string& purpose) {
    return create_file(bytes, purpose, ".partial");
}

std::unique_ptr<Buffer> DiskDevice::create_file(uint64_t bytes, const std::string& purpose, const char* suffix) {
    std::string safe;
    for (char c : purpose) safe += (std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-') ? c : '_';
    auto path = run_dir_ / (std::to_string(next_id_++) + "-" + safe + suffix);
    uint64_t file = 0;
    check_storage(storage_.open(path.c_str(), FLEXRT_OPEN_READ | FLEXRT_OPEN_WRITE | FLEXRT_OPEN_CREATE, bytes, &file),
                  "creating offload file " + path.string() + " (" + std::to_string(bytes) + " bytes) for " + purpose);
    account(static_cast<int64_t>(bytes));
    return std::make_unique<DiskBuffer>(*this, path, file, bytes, true);
}

std::unique_ptr<Buffer> DiskDevice::open_existing(const std::filesystem::path& path) {
    uint64_t file = 0;
    check_storage(storage_.open(path.c_str(), FLEXRT_OPEN_READ, 0, &file), "opening " + path.string());
    uint64_t size = 0;
    flexrt_status s = storage_.file_size(file, &size);
    if (s != FLEXRT_STATUS_OK) {
        storage_.close(file);
        check_storage(s, "reading the size of " + path.string());
    }
    return std::make_unique<DiskBuffer>(*this, path, file, size, false);
}

DiskBuffer::DiskBuffer(DiskDevice& device, std::filesystem::path path, uint64_t file, uint64_t bytes, bool owned)
    : Buffer(device, bytes), disk_(device), path_(std::move(path)), file_(file), owned_(owned) {}

void DiskBuffer::commit() {
    const std::string p = path_.string();
    if (p.size() < 8 || p.substr(p.size() - 8) != ".partial") return;
    auto check = [&](flexrt_status s, const std::string& what) {
        if (s != FLEXRT_STATUS_OK) FLEXRT_THROW(s, what + " failed: " + take_last_plugin_error());
    };
    check(disk_.storage().flush(file_), "flushing " + p);
    const std::string done = p.substr(0, p.size() - 8);
    check(disk_.storage().rename(p.c_str(), done.c_str()), "renaming " + p);
    path_ = done;
}

DiskBuffer::~DiskBuffer() {
    // Errors are not actionable here: the file is scratch and the run directory is removed anyway.
    (void)disk_.storage().close(file_);
    if (owned_) {
        (void)disk_.storage().remove(path_.c_str());
        disk_.account(-static_cast<int64_t>(bytes()));
    }
}

}  // namespace flexrt
