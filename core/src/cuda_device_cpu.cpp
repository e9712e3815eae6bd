// Builds without CUDA: there is no GPU tier.
#include "cuda_device.hpp"

#include <flexrt/status.hpp>

namespace flexrt {

struct CudaDevice::Impl {};
CudaDevice::CudaDevice(uint64_t, int) { FLEXRT_THROW(FLEXRT_STATUS_UNSUPPORTED, "this build has no CUDA (FLEXRT_WITH_CUDA)"); }
CudaDevice::~CudaDevice() = default;
std::string CudaDevice::name() const { return "cuda (not built)"; }
std::unique_ptr<Buffer> CudaDevice::allocate(uint64_t, const std::string&) { return nullptr; }
uint64_t CudaDevice::pool_bytes() const noexcept { return 0; }

}  // namespace flexrt
