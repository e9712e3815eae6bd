// libFuzzer: the .npy header parser on arbitrary bytes (what a weight directory's files may hold). Either a
// header whose data range is consistent, or flexrt::Error.
#include "core/src/npy.hpp"

#include <flexrt/status.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdlib>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    try {
        const flexrt::NpyHeader h = flexrt::parse_npy_header(data, size, "fuzz.npy");
        if (h.data_offset > size + (1u << 20)) std::abort();  // a header cannot claim to end beyond what it was read from
        (void)h.data_bytes();
    } catch (const flexrt::Error&) {}
    return 0;
}
