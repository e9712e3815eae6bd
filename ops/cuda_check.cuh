// Launch and call checks for the CUDA ops: a failure throws flexrt::Error naming the call and its place.
#pragma once

#include "core/src/cuda/cuda_check.hpp"

#include <cublasLt.h>

#define FLEXRT_CUDA_LAUNCH_CHECK() FLEXRT_CUDA_CHECK(cudaGetLastError())

#define FLEXRT_CUBLAS_CHECK(expr)                                                                                                          \
    do {                                                                                                                                   \
        const cublasStatus_t flexrt_cublas_st_ = (expr);                                                                                   \
        if (flexrt_cublas_st_ != CUBLAS_STATUS_SUCCESS)                                                                                    \
            throw ::flexrt::Error(FLEXRT_STATUS_INTERNAL, std::string(#expr) + " failed at " + __FILE__ + ":" + std::to_string(__LINE__) + \
                                                              ": cuBLAS status " + std::to_string(static_cast<int>(flexrt_cublas_st_)));   \
    } while (0)
