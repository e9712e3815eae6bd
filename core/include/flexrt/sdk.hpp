// Header-only helpers for plugin authors: the entry-point macro, the exception firewall, POSIX file names
// (remove, rename), option access.
// A plugin includes only this header (and the interface it implements); it links nothing of flexrt's.
#pragma once

#include <flexrt/abi.h>
#include <flexrt/status.hpp>

#include <unistd.h>
#include <cstdio>
#include <cstring>
#include <new>
#include <string>

namespace flexrt::sdk {

// Sends `message` to the host's log. Safe with a null host (tests that create objects directly).
inline void log(const flexrt_host* host, flexrt_log_level level, const std::string& message) noexcept {
    if (host && host->log) host->log(host->user, level, message.c_str());
}

// Runs `body` and maps any exception to a status, reporting its message to the host first.
// Every plugin method wraps its body in this (TensorRT's try/catch firewall): nothing may unwind across
// the C boundary.
template <typename F>
flexrt_status guard(const flexrt_host* host, F&& body) noexcept {
    try {
        return body();
    } catch (const flexrt::Error& e) {
        log(host, FLEXRT_LOG_LEVEL_ERROR, e.what());
        return e.status();
    } catch (const std::bad_alloc&) {
        log(host, FLEXRT_LOG_LEVEL_ERROR, "out of memory");
        return FLEXRT_STATUS_OUT_OF_MEMORY;
    } catch (const std::exception& e) {
        log(host, FLEXRT_LOG_LEVEL_ERROR, e.what());
        return FLEXRT_STATUS_INTERNAL;
    } catch (...) {
        log(host, FLEXRT_LOG_LEVEL_ERROR, "unknown exception");
        return FLEXRT_STATUS_INTERNAL;
    }
}

// IStorage::remove and IStorage::rename for a storage plugin whose files are POSIX files (every in-tree one):
// the errno as a status, the call and path as the host's message.
inline flexrt_status posix_remove(const flexrt_host* host, const char* path) noexcept {
    return guard(host, [&] {
        FLEXRT_SYS_CHECK(::unlink(path), std::string("unlink ") + path);
        return FLEXRT_STATUS_OK;
    });
}
inline flexrt_status posix_rename(const flexrt_host* host, const char* from, const char* to) noexcept {
    return guard(host, [&] {
        FLEXRT_SYS_CHECK(::rename(from, to), std::string("rename ") + from + " to " + to);
        return FLEXRT_STATUS_OK;
    });
}

// Finds option `key` among the fields create() received; nullptr if absent.
inline const flexrt_field* find(const flexrt_field* fields, uint32_t n, const char* key) noexcept {
    for (uint32_t i = 0; i < n; ++i)
        if (std::strcmp(fields[i].key, key) == 0) return &fields[i];
    return nullptr;
}

// Typed option access. The host has already validated types, so a mismatch is a host bug.
template <typename T>
T get(const flexrt_field* fields, uint32_t n, const char* key);

namespace detail {
inline const flexrt_field& require(const flexrt_field* fields, uint32_t n, const char* key, flexrt_field_type t) {
    const flexrt_field* f = find(fields, n, key);
    if (!f) FLEXRT_THROW(FLEXRT_STATUS_INVALID_ARGUMENT, std::string("option '") + key + "' is missing");
    if (f->type != t) FLEXRT_THROW(FLEXRT_STATUS_INVALID_ARGUMENT, std::string("option '") + key + "' has the wrong type");
    return *f;
}
}  // namespace detail

template <>
inline bool get<bool>(const flexrt_field* f, uint32_t n, const char* key) {
    return detail::require(f, n, key, FLEXRT_FIELD_TYPE_BOOL).value.b != 0;
}
template <>
inline int64_t get<int64_t>(const flexrt_field* f, uint32_t n, const char* key) {
    return detail::require(f, n, key, FLEXRT_FIELD_TYPE_INT).value.i;
}
template <>
inline double get<double>(const flexrt_field* f, uint32_t n, const char* key) {
    return detail::require(f, n, key, FLEXRT_FIELD_TYPE_FLOAT).value.f;
}
template <>
inline std::string get<std::string>(const flexrt_field* f, uint32_t n, const char* key) {
    return detail::require(f, n, key, FLEXRT_FIELD_TYPE_STRING).value.s;
}

// Fills in a descriptor with this build's ABI version stamped in.
constexpr flexrt_plugin_desc describe(flexrt_plugin_kind kind, const char* name, const char* version, const char* description,
                                      const flexrt_option_desc* options, uint32_t n_options, flexrt_create_fn create) {
    return flexrt_plugin_desc{
        sizeof(flexrt_plugin_desc), FLEXRT_ABI_MAJOR, FLEXRT_ABI_MINOR, kind, name, version, description, options, n_options, create};
}

}  // namespace flexrt::sdk

// Defines the library's one exported entry point over a list of descriptors:
//   FLEXRT_PLUGINS(flexrt::sdk::describe(FLEXRT_PLUGIN_KIND_STORAGE, "mmap", ...), ...)
#define FLEXRT_PLUGINS(...)                                                                                           \
    extern "C" __attribute__((visibility("default"))) const flexrt_plugin_desc* flexrt_plugin_list(uint32_t* count) { \
        static const flexrt_plugin_desc descs[] = {__VA_ARGS__};                                                      \
        *count = static_cast<uint32_t>(sizeof(descs) / sizeof(descs[0]));                                             \
        return descs;                                                                                                 \
    }
