// A process-wide "stop soon" flag: set by SIGINT/SIGTERM in the app, polled by long loops (weight placement,
// every primitive), which then fail with FLEXRT_STATUS_CANCELLED so that unwinding removes the run's files.
#pragma once

namespace flexrt {

// Installs SIGINT and SIGTERM handlers that set the flag; the second signal kills as usual.
void install_interrupt_handlers() noexcept;
void request_interrupt() noexcept;
bool interrupted() noexcept;

}  // namespace flexrt
