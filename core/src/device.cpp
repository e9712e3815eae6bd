#include "device.hpp"

#include "host_log.hpp"

#include <flexrt/status.hpp>

#include <cctype>

#include <cstdlib>
#include <cstring>
#include <system_error>
#include <unistd.h>

namespace flexrt {

const char* tier_name(TierKind t) noexcept {
    switch (t) {
    case TierKind::compute: return "gpu";
    case TierKind::host: return "cpu";
    case TierKind::disk: return "disk";
    }
    return "?";
}

void IDevice::account(int64_t delta) noexcept {
    uint64_t now = allocated_.fetch_add(static_cast<uint64_t>(delta)) + static_cast<uint64_t>(delta);
    uint64_t peak = peak_.load();
    while (now > peak && !peak_.compare_exchange_weak(peak, now)) {
    }
}

// --- host memory -----------------------------------------------------------------------------------

class MemoryBuffer final : public Buffer {
public:
    // 4096-byte alignment: O_DIRECT-capable storage can then read into any buffer without a bounce.
    static constexpr uint64_t kAlignment = 4096;

    MemoryBuffer(MemoryDevice& device, uint64_t bytes, const std::string& purpose) : Buffer(device, bytes), dev_(device) {
        uint64_t rounded = (bytes + kAlignment - 1) / kAlignment * kAlignment;
        data_ = static_cast<std::byte*>(std::aligned_alloc(kAlignment, rounded ? rounded : kAlignment));
        if (!data_)
            FLEXRT_THROW(FLEXRT_STATUS_OUT_OF_MEMORY, "cannot allocate " + std::to_string(bytes) + " bytes of " +
                                                          device.name() + " memory for " + purpose);
        dev_.account(static_cast<int64_t>(bytes));
    }
    ~MemoryBuffer() override {
        std::free(data_);
        dev_.account(-static_cast<int64_t>(bytes()));
    }
    std::byte* data() noexcept override { return data_; }

private:
    MemoryDevice& dev_;
    std::byte* data_ = nullptr;
};

std::unique_ptr<Buffer> MemoryDevice::allocate(uint64_t bytes, const std::string& purpose) {
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
        FLEXRT_THROW(FLEXRT_STATUS_INVALID_ARGUMENT,
                     "storage.offload_dir '" + offload_dir.string() + "' exists and is not a directory");
    fs::create_directories(offload_dir, ec);
    if (ec)
        FLEXRT_THROW(FLEXRT_STATUS_IO_ERROR,
                     "storage.offload_dir '" + offload_dir.string() + "' cannot be created: " + ec.message());
    if (::access(offload_dir.c_str(), W_OK | X_OK) != 0)
        FLEXRT_THROW(FLEXRT_STATUS_IO_ERROR,
                     "storage.offload_dir '" + offload_dir.string() + "' is not writable: " + errno_text(errno));
    // A private directory per run: concurrent runs never collide and cleanup is one remove_all.
    for (int attempt = 0;; ++attempt) {
        run_dir_ = offload_dir / ("flexrt-" + std::to_string(::getpid()) + "-" + std::to_string(attempt));
        if (fs::create_directory(run_dir_, ec)) break;
        if (ec || attempt > 1000)
            FLEXRT_THROW(FLEXRT_STATUS_IO_ERROR, "storage.offload_dir '" + offload_dir.string() +
                                                     "' is not writable: " + (ec ? ec.message() : "name clash"));
    }
}

DiskDevice::~DiskDevice() {
    std::error_code ec;
    std::filesystem::remove_all(run_dir_, ec);  // files were removed by their buffers; this catches leftovers
}

std::unique_ptr<Buffer> DiskDevice::allocate(uint64_t bytes, const std::string& purpose) {
    std::string safe;
    for (char c : purpose) safe += (std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-') ? c : '_';
    auto path = run_dir_ / (std::to_string(next_id_++) + "-" + safe);
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

DiskBuffer::~DiskBuffer() {
    // Errors are not actionable here: the file is scratch and the run directory is removed anyway.
    (void)disk_.storage().close(file_);
    if (owned_) {
        (void)disk_.storage().remove(path_.c_str());
        disk_.account(-static_cast<int64_t>(bytes()));
    }
}

}  // namespace flexrt
