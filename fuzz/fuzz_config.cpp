// libFuzzer: the TOML config loader on arbitrary text. Any input either loads or throws flexrt::Error;
// a crash, a sanitizer report, another exception type or a hang is a bug.
#include "core/src/config.hpp"

#include <flexrt/status.hpp>

#include <cstddef>
#include <cstdint>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    try {
        flexrt::load_config(std::string(reinterpret_cast<const char*>(data), size), "fuzz.toml", {});
    } catch (const flexrt::Error&) {}
    return 0;
}
