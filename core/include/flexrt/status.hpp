// Errors inside flexrt's C++ code: exceptions on setup paths, [[nodiscard]] Status on hot paths.
// Header-only so that plugins, which link nothing of ours, can use it too.
#pragma once

#include <flexrt/abi.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <utility>

namespace flexrt {

// A failure with a status code and a message that already names what failed (file, key, tensor).
class Error : public std::runtime_error {
public:
    Error(flexrt_status status, const std::string& message) : std::runtime_error(message), status_(status) {}
    flexrt_status status() const noexcept { return status_; }

private:
    flexrt_status status_;
};

// The result of a hot-path call. Ignoring one is a compile error; write .ignore() to mean it.
class [[nodiscard]] Status {
public:
    Status() = default;
    Status(flexrt_status code, std::string message) : code_(code), message_(std::move(message)) {}
    static Status ok() { return {}; }

    bool is_ok() const noexcept { return code_ == FLEXRT_STATUS_OK; }
    flexrt_status code() const noexcept { return code_; }
    const std::string& message() const noexcept { return message_; }
    void ignore() const noexcept {}
    // Turns a failure into an Error, for setup paths.
    void throw_if_error() const {
        if (!is_ok()) throw Error(code_, message_);
    }

private:
    flexrt_status code_ = FLEXRT_STATUS_OK;
    std::string message_;
};

// Maps an errno value to the status a caller can act on.
inline flexrt_status status_from_errno(int err) noexcept {
    switch (err) {
    case ENOSPC:
    case EDQUOT: return FLEXRT_STATUS_NO_SPACE;
    case ENOMEM: return FLEXRT_STATUS_OUT_OF_MEMORY;
    case ENOENT: return FLEXRT_STATUS_NOT_FOUND;
    case EAGAIN: return FLEXRT_STATUS_RETRY;
    case EINVAL: return FLEXRT_STATUS_INVALID_ARGUMENT;
    default: return FLEXRT_STATUS_IO_ERROR;
    }
}

inline std::string errno_text(int err) { return std::string(std::strerror(err)) + " (errno " + std::to_string(err) + ")"; }

}  // namespace flexrt

// Programmer errors: always compiled in, never used for anything a user, a disk or a driver can cause.
#define FLEXRT_ASSERT(cond)                                                                           \
    do {                                                                                              \
        if (!(cond)) {                                                                                \
            std::fprintf(stderr, "flexrt: internal error at %s:%d: %s\n", __FILE__, __LINE__, #cond); \
            std::abort();                                                                             \
        }                                                                                             \
    } while (0)

// Throws flexrt::Error with the message built from the stream expression.
#define FLEXRT_THROW(status, message) throw ::flexrt::Error((status), (message))

// Checks a syscall that returns -1 and sets errno; `what` names the call and its object ("open /x/y").
#define FLEXRT_SYS_CHECK(expr, what)                                                                                                       \
    do {                                                                                                                                   \
        if ((expr) < 0) {                                                                                                                  \
            int flexrt_err_ = errno;                                                                                                       \
            throw ::flexrt::Error(::flexrt::status_from_errno(flexrt_err_), std::string(what) + ": " + ::flexrt::errno_text(flexrt_err_)); \
        }                                                                                                                                  \
    } while (0)
