#include "core/src/cuda_device.hpp"

#include "cuda_check.hpp"

#include <map>
#include <mutex>

namespace flexrt {

namespace {
constexpr uint64_t kAlign = 256;  // cudaMalloc's own alignment: every buffer starts on a 256-byte boundary
}  // namespace

struct CudaDevice::Impl {
    int device = 0;
    std::byte* base = nullptr;
    uint64_t size = 0, used = 0;
    std::map<uint64_t, uint64_t> free;  // offset -> bytes
    std::mutex m;
    std::string name;
};

class CudaBuffer final : public Buffer {
public:
    CudaBuffer(CudaDevice& dev, std::byte* data, uint64_t offset, uint64_t bytes, uint64_t reserved)
        : Buffer(dev, bytes), dev_(dev), data_(data), offset_(offset), reserved_(reserved) {}
    ~CudaBuffer() override { dev_.give_back(offset_, reserved_, bytes()); }
    std::byte* data() noexcept override { return data_; }

private:
    CudaDevice& dev_;
    std::byte* data_;
    uint64_t offset_, reserved_;
};

void CudaDevice::give_back(uint64_t offset, uint64_t reserved, uint64_t bytes) noexcept {
    std::lock_guard lock(impl_->m);
    impl_->used -= reserved;
    account(-static_cast<int64_t>(bytes));
    auto it = impl_->free.emplace(offset, reserved).first;
    if (auto next = std::next(it); next != impl_->free.end() && it->first + it->second == next->first) {
        it->second += next->second;
        impl_->free.erase(next);
    }
    if (it != impl_->free.begin()) {
        auto prev = std::prev(it);
        if (prev->first + prev->second == it->first) {
            prev->second += it->second;
            impl_->free.erase(it);
        }
    }
}

CudaDevice::CudaDevice(uint64_t pool_bytes, int device) : impl_(std::make_unique<Impl>()) {
    impl_->device = device;
    FLEXRT_CUDA_CHECK(cudaSetDevice(device));
    cudaDeviceProp prop{};
    FLEXRT_CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
    impl_->name = "cuda:" + std::to_string(device) + " (" + prop.name + ")";
    impl_->size = (pool_bytes + kAlign - 1) / kAlign * kAlign;
    void* p = nullptr;
    const cudaError_t e = cudaMalloc(&p, impl_->size ? impl_->size : kAlign);
    if (e != cudaSuccess) {
        size_t free_b = 0, total_b = 0;
        cudaMemGetInfo(&free_b, &total_b);
        FLEXRT_THROW(FLEXRT_STATUS_OUT_OF_MEMORY, "cannot reserve a GPU pool of " + gib_text(impl_->size) + " on " + impl_->name + ": " +
                                                      gib_text(free_b) + " of " + gib_text(total_b) + " free (" + cudaGetErrorString(e) +
                                                      ")");
    }
    impl_->base = static_cast<std::byte*>(p);
    if (impl_->size) impl_->free.emplace(0, impl_->size);
}

CudaDevice::~CudaDevice() { cudaFree(impl_->base); }

std::string CudaDevice::name() const { return impl_->name; }
uint64_t CudaDevice::pool_bytes() const noexcept { return impl_->size; }

std::unique_ptr<Buffer> CudaDevice::allocate(uint64_t bytes, const std::string& purpose) {
    const uint64_t need = std::max<uint64_t>(kAlign, (bytes + kAlign - 1) / kAlign * kAlign);
    std::lock_guard lock(impl_->m);
    uint64_t largest = 0;
    for (auto it = impl_->free.begin(); it != impl_->free.end(); ++it) {
        largest = std::max(largest, it->second);
        if (it->second < need) continue;
        const uint64_t offset = it->first, left = it->second - need;
        impl_->free.erase(it);
        if (left) impl_->free.emplace(offset + need, left);
        impl_->used += need;
        account(static_cast<int64_t>(bytes));
        return std::make_unique<CudaBuffer>(*this, impl_->base + offset, offset, bytes, need);
    }
    FLEXRT_THROW(FLEXRT_STATUS_OUT_OF_MEMORY, "the GPU pool (" + gib_text(impl_->size) + ") cannot fit " + std::to_string(bytes) +
                                                  " bytes for " + purpose + ": " + gib_text(impl_->used) + " used, largest free block " +
                                                  gib_text(largest));
}

}  // namespace flexrt
