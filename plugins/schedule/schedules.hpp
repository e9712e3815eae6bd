// The in-tree schedules: each is one function over the executor's primitives.
#pragma once

#include <flexrt/scheduler.hpp>

// Returns the status of `expr` from the enclosing function unless it is OK.
#define FLEXRT_TRY(expr)                             \
    do {                                             \
        flexrt_status flexrt_s_ = (expr);            \
        if (flexrt_s_ != FLEXRT_STATUS_OK) return flexrt_s_; \
    } while (0)

namespace flexrt::schedule {

flexrt_status run_normal(IExecutor& ex);

}  // namespace flexrt::schedule
