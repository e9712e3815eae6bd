// Builds without CUDA: no GPU compute device.
#include "compute.hpp"

#include <flexrt/status.hpp>

namespace flexrt::ops {

std::unique_ptr<Compute> make_cuda_compute() {
    FLEXRT_THROW(FLEXRT_STATUS_UNSUPPORTED, "this build has no CUDA (FLEXRT_WITH_CUDA): the compute device must be the cpu");
}

}  // namespace flexrt::ops
