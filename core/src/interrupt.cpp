#include "interrupt.hpp"

#include <atomic>
#include <csignal>

namespace flexrt {
namespace {
std::atomic<bool> g_interrupted{false};  // lock-free: safe to set from a signal handler
void on_signal(int) { g_interrupted.store(true); }
}  // namespace

void install_interrupt_handlers() noexcept {
    struct sigaction sa {};
    sa.sa_handler = &on_signal;
    sa.sa_flags = SA_RESETHAND;  // a second signal takes the default action
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);
}

void request_interrupt() noexcept { g_interrupted.store(true); }
bool interrupted() noexcept { return g_interrupted.load(); }

}  // namespace flexrt
