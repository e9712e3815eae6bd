/* flexrt plugin ABI: the C handshake between the host and a plugin library.
 *
 * A plugin library exports exactly one symbol, `flexrt_plugin_list`, returning an array of POD descriptors.
 * The host checks `struct_size` and `abi_major` of each descriptor before it calls anything else.
 *
 * Versioning: everything in this file is frozen for a given FLEXRT_ABI_MAJOR. A minor version may only
 * append fields to the end of a struct (callers check `struct_size`) and add new enum values or
 * extension interfaces. The host accepts a plugin whose major equals its own and whose minor is not
 * greater than its own.
 */
#ifndef FLEXRT_ABI_H
#define FLEXRT_ABI_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FLEXRT_ABI_MAJOR 1
#define FLEXRT_ABI_MINOR 0

/* Name of the one exported entry point. */
#define FLEXRT_PLUGIN_ENTRY "flexrt_plugin_list"

/* Result of every call across the plugin boundary. Details travel through flexrt_host.log. */
typedef enum flexrt_status {
    FLEXRT_STATUS_OK = 0,
    FLEXRT_STATUS_INVALID_ARGUMENT = 1, /* a bad option, shape, offset: the caller's fault */
    FLEXRT_STATUS_NOT_FOUND = 2,        /* a file, tensor or plugin that does not exist */
    FLEXRT_STATUS_IO_ERROR = 3,         /* the OS or the device failed an operation */
    FLEXRT_STATUS_OUT_OF_MEMORY = 4,    /* an allocation failed */
    FLEXRT_STATUS_NO_SPACE = 5,         /* the disk is full (ENOSPC, EDQUOT) */
    FLEXRT_STATUS_UNSUPPORTED = 6,      /* an optional method or a feature not implemented */
    FLEXRT_STATUS_RETRY = 7,            /* transient (EAGAIN): the same call may succeed later */
    FLEXRT_STATUS_ABI_MISMATCH = 8,     /* versions or struct sizes do not match */
    FLEXRT_STATUS_CANCELLED = 9,        /* the operation was cancelled before it completed */
    FLEXRT_STATUS_INTERNAL = 10,        /* a bug: an exception escaped, an invariant broke */
    FLEXRT_STATUS_BAD_DATA = 11         /* input that is malformed: truncated file, wrong dtype */
} flexrt_status;

typedef enum flexrt_plugin_kind {
    FLEXRT_PLUGIN_KIND_STORAGE = 1,  /* the disk tier's I/O: implements flexrt::IStorage */
    FLEXRT_PLUGIN_KIND_COMPRESS = 2, /* tensor compression: implements flexrt::ICompressor */
    FLEXRT_PLUGIN_KIND_SCHEDULE = 3  /* the order of the engine's primitives: implements flexrt::IScheduler */
} flexrt_plugin_kind;

typedef enum flexrt_field_type {
    FLEXRT_FIELD_TYPE_BOOL = 1,
    FLEXRT_FIELD_TYPE_INT = 2,
    FLEXRT_FIELD_TYPE_FLOAT = 3,
    FLEXRT_FIELD_TYPE_STRING = 4
} flexrt_field_type;

/* One option a plugin accepts. The host validates the config table against the plugin's list: an
 * unknown key, a wrong type or a value outside [min_value, max_value] is an error before create(). */
typedef struct flexrt_option_desc {
    const char* name; /* key in the plugin's `options` table, snake_case */
    flexrt_field_type type;
    const char* default_value; /* TOML literal: "4", "true", "0.5", "\"overlapped\"" */
    const char* doc;           /* one line for --list-plugins */
    double min_value;          /* INT and FLOAT only; ignored when min_value > max_value */
    double max_value;
} flexrt_option_desc;

/* One configured value handed to create(). Strings are owned by the host and live until create() returns:
 * a plugin keeps its own copy. Every declared option is present (defaults filled in by the host). */
typedef struct flexrt_field {
    const char* key;
    flexrt_field_type type;
    union {
        int32_t b;
        int64_t i;
        double f;
        const char* s;
    } value;
} flexrt_field;

typedef enum flexrt_log_level {
    FLEXRT_LOG_LEVEL_DEBUG = 0,
    FLEXRT_LOG_LEVEL_INFO = 1,
    FLEXRT_LOG_LEVEL_WARN = 2,
    FLEXRT_LOG_LEVEL_ERROR = 3
} flexrt_log_level;

/* What the host gives a plugin at create(). Valid until the created object is released. */
typedef struct flexrt_host {
    uint32_t struct_size;
    uint16_t abi_major;
    uint16_t abi_minor;
    void* user; /* first argument of log() */
    /* Thread-safe. A plugin reports the details of a failed call here (ERROR level) before it returns
     * the status: the host attaches the last ERROR message of the calling thread to its error. */
    void (*log)(void* user, flexrt_log_level level, const char* message);
} flexrt_host;

/* Creates one plugin object. `fields` is borrowed for the call. On success *out holds an object of the
 * interface named by the descriptor's kind (flexrt::IStorage*, ...), owned by the host until it calls
 * the object's release(). Called from one thread at a time per descriptor. */
typedef flexrt_status (*flexrt_create_fn)(const flexrt_host* host, const flexrt_field* fields, uint32_t n_fields, void** out);

typedef struct flexrt_plugin_desc {
    uint32_t struct_size; /* sizeof(flexrt_plugin_desc) of the plugin's build */
    uint16_t abi_major;
    uint16_t abi_minor;
    flexrt_plugin_kind kind;
    const char* name;        /* unique within its kind: "mmap", "normal" */
    const char* version;     /* the plugin's own version, "0.1.0" */
    const char* description; /* one line */
    const flexrt_option_desc* options;
    uint32_t n_options;
    flexrt_create_fn create;
} flexrt_plugin_desc;

/* The exported entry point: returns `*count` descriptors with static storage duration. */
typedef const flexrt_plugin_desc* (*flexrt_plugin_list_fn)(uint32_t* count);

/* Element types of tensors that cross the boundary. */
typedef enum flexrt_dtype {
    FLEXRT_DTYPE_F16 = 1,
    FLEXRT_DTYPE_F32 = 2,
    FLEXRT_DTYPE_F64 = 3,
    FLEXRT_DTYPE_I32 = 4,
    FLEXRT_DTYPE_I64 = 5,
    FLEXRT_DTYPE_U8 = 6
} flexrt_dtype;

#define FLEXRT_MAX_DIMS 8

typedef struct flexrt_tensor_desc {
    uint32_t struct_size;
    flexrt_dtype dtype;
    uint32_t ndim;
    int64_t shape[FLEXRT_MAX_DIMS]; /* row-major, contiguous */
} flexrt_tensor_desc;

static inline const char* flexrt_status_name(flexrt_status s) {
    switch (s) {
    case FLEXRT_STATUS_OK: return "OK";
    case FLEXRT_STATUS_INVALID_ARGUMENT: return "INVALID_ARGUMENT";
    case FLEXRT_STATUS_NOT_FOUND: return "NOT_FOUND";
    case FLEXRT_STATUS_IO_ERROR: return "IO_ERROR";
    case FLEXRT_STATUS_OUT_OF_MEMORY: return "OUT_OF_MEMORY";
    case FLEXRT_STATUS_NO_SPACE: return "NO_SPACE";
    case FLEXRT_STATUS_UNSUPPORTED: return "UNSUPPORTED";
    case FLEXRT_STATUS_RETRY: return "RETRY";
    case FLEXRT_STATUS_ABI_MISMATCH: return "ABI_MISMATCH";
    case FLEXRT_STATUS_CANCELLED: return "CANCELLED";
    case FLEXRT_STATUS_INTERNAL: return "INTERNAL";
    case FLEXRT_STATUS_BAD_DATA: return "BAD_DATA";
    }
    return "UNKNOWN";
}

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* FLEXRT_ABI_H */
