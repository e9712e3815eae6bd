// Compressed weights kept on disk between runs (compress.store_dir): a model is quantized once, and later
// runs read 4-bit blocks instead of reading fp16 and quantizing again. One file per tensor,
// <dir>/<tensor name>.group4: a header saying what the bytes are - the group4 layout and the identity of the
// fp16 source they were made from (WeightSource::identity) - then the compressed bytes. A file that does not
// match in every field, or is shorter than its header says, is ignored and written anew; a file is written
// under a temporary name and renamed once complete, so an interrupted run never leaves one that looks whole.
#pragma once

#include "ops/group4.hpp"

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>

namespace flexrt {

class PackedWeightStore {
public:
    // Creates `dir` if needed; throws flexrt::Error naming it when it cannot.
    explicit PackedWeightStore(std::filesystem::path dir);

    // Fills `out` (layout.bytes()) from the tensor's file and returns true when the file holds exactly this
    // layout made from `source_identity`; false otherwise (then `out` may hold part of a truncated file).
    bool load(const std::string& tensor, const ops::Group4Layout& layout, const std::string& source_identity, std::byte* out);
    // Writes the tensor's file (layout.bytes() of `data`); throws flexrt::Error naming the file on failure,
    // leaving no file of that name behind.
    void save(const std::string& tensor, const ops::Group4Layout& layout, const std::string& source_identity, const std::byte* data);

    const std::filesystem::path& dir() const { return dir_; }
    uint64_t loaded() const { return loaded_; }
    uint64_t saved() const { return saved_; }

private:
    std::filesystem::path file(const std::string& tensor) const { return dir_ / (tensor + ".group4"); }
    std::filesystem::path dir_;
    uint64_t loaded_ = 0, saved_ = 0;
};

}  // namespace flexrt
