// Every CUDA runtime call goes through FLEXRT_CUDA_CHECK: a failure becomes flexrt::Error naming the call,
// its place and CUDA's own text.
#pragma once

#include <flexrt/status.hpp>

#include <cuda_runtime.h>

#include <string>

#define FLEXRT_CUDA_CHECK(expr)                                                                                                         \
    do {                                                                                                                                \
        const cudaError_t flexrt_cuda_err_ = (expr);                                                                                    \
        if (flexrt_cuda_err_ != cudaSuccess)                                                                                            \
            throw ::flexrt::Error(flexrt_cuda_err_ == cudaErrorMemoryAllocation ? FLEXRT_STATUS_OUT_OF_MEMORY : FLEXRT_STATUS_INTERNAL, \
                                  std::string(#expr) + " failed at " + __FILE__ + ":" + std::to_string(__LINE__) + ": " +               \
                                      cudaGetErrorString(flexrt_cuda_err_));                                                            \
    } while (0)
