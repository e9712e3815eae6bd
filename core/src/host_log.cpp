#include "host_log.hpp"

#include <atomic>
#include <cstdio>
#include <mutex>

namespace flexrt {
namespace {

thread_local std::string t_last_error;
std::atomic<int> g_level{FLEXRT_LOG_LEVEL_WARN};
std::mutex g_print_mutex;

void host_log(void* /*user*/, flexrt_log_level level, const char* message) {
    if (level >= FLEXRT_LOG_LEVEL_ERROR) {
        // Errors are not printed here: the core attaches them to the exception it throws, so the user
        // sees one line with the whole story.
        t_last_error = message ? message : "";
        return;
    }
    if (level < g_level.load()) return;
    std::lock_guard lock(g_print_mutex);
    std::fprintf(stderr, "flexrt: plugin: %s\n", message ? message : "");
}

const flexrt_host kHost{sizeof(flexrt_host), FLEXRT_ABI_MAJOR, FLEXRT_ABI_MINOR, nullptr, &host_log};

}  // namespace

const flexrt_host* plugin_host() noexcept { return &kHost; }

std::string take_last_plugin_error() {
    std::string s;
    s.swap(t_last_error);
    return s;
}

void set_plugin_log_level(flexrt_log_level level) noexcept { g_level.store(level); }

}  // namespace flexrt
