// The safetensors format of Hugging Face checkpoints: an 8-byte little-endian header length, a JSON header
// {"name": {"dtype": "F16", "shape": [...], "data_offsets": [begin, end]}, "__metadata__": {...}}, then the
// tensors' bytes. Only the header is read here; every range is checked against the file so that a truncated
// or corrupt file is an error that names it, never a read past its end.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace flexrt {

struct SafetensorsTensor {
    std::string dtype;  // "F16", "BF16", "F32", ... as written
    std::vector<int64_t> shape;
    uint64_t offset = 0, bytes = 0;  // in the file (the header's offsets plus the data's start)
};

struct SafetensorsFile {
    std::filesystem::path path;
    uint64_t file_bytes = 0;
    std::map<std::string, SafetensorsTensor> tensors;
};

// Bytes per element of a safetensors dtype, 0 for one flexrt does not know.
uint64_t safetensors_dtype_bytes(const std::string& dtype);

// Reads and checks the header of `path`. Throws NOT_FOUND when it cannot be opened, BAD_DATA naming the file
// (and the tensor) when the header is not one: a length beyond the file, not JSON, an unknown dtype, offsets
// outside the data or that do not match shape x dtype.
SafetensorsFile read_safetensors_header(const std::filesystem::path& path);

}  // namespace flexrt
