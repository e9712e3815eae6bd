// libFuzzer: a safetensors file's header checks on arbitrary bytes (written to a scratch file: the reader
// takes paths). Every tensor it accepts lies inside the file; anything else is flexrt::Error.
#include "core/src/safetensors.hpp"

#include <flexrt/status.hpp>

#include <unistd.h>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static const std::string path = "/tmp/flexrt-fuzz-" + std::to_string(::getpid()) + ".safetensors";
    {
        std::ofstream out(path, std::ios::binary | std::ios::trunc);
        out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
    }
    try {
        const flexrt::SafetensorsFile f = flexrt::read_safetensors_header(path);
        for (const auto& [name, t] : f.tensors)
            if (t.offset + t.bytes > f.file_bytes || t.offset < 8) std::abort();
    } catch (const flexrt::Error&) {}
    return 0;
}
