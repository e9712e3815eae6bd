// Where a model's fp16 weights come from: FlexLLMGen's numpy weight directory (one .npy per tensor, read
// through the storage plugin) or dummy weights (random, seeded, no files).
#pragma once

#include "opt_layers.hpp"

#include <cstddef>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>

namespace flexrt {
class Buffer;
class DiskDevice;
}  // namespace flexrt

namespace flexrt::opt {

// A tensor's fp16 data in a file: a disk-tier buffer (the open file) and the byte offset of element 0.
struct FileLocation {
    Buffer* file;
    uint64_t offset;
};

class WeightSource {
public:
    virtual ~WeightSource() = default;
    // Checks that the tensor exists with this shape and dtype fp16; throws flexrt::Error naming the tensor,
    // the file and both shapes or dtypes otherwise.
    virtual void check(const WeightSpec& spec) = 0;
    // Writes the tensor's numel * 2 bytes of fp16 into host memory `dst`.
    virtual void read(const WeightSpec& spec, std::byte* dst) = 0;
    // The tensor's place in a file that the disk tier can read directly, or nullopt when the values must be
    // materialised (dummy weights).
    virtual std::optional<FileLocation> locate(const WeightSpec& spec) = 0;
    virtual std::string describe() const = 0;
    // What a compressed copy of the tensor must have been made from to stand in for it (PackedWeightStore):
    // the seed for dummy weights, the file's path, size and modification time for files.
    virtual std::string identity(const WeightSpec& spec) { return describe() + " " + spec.name; }
};

// Deterministic pseudo-random values from (seed, tensor name): the same tensor gets the same values under
// every placement. Matrices ~ U(-1, 1)/sqrt(fan_in), layer-norm weights ~ 1, biases small.
class DummyWeights final : public WeightSource {
public:
    explicit DummyWeights(uint64_t seed) : seed_(seed) {}
    void check(const WeightSpec&) override {}
    void read(const WeightSpec& spec, std::byte* dst) override;
    std::optional<FileLocation> locate(const WeightSpec&) override { return std::nullopt; }
    std::string describe() const override { return "dummy weights (seed " + std::to_string(seed_) + ")"; }

private:
    uint64_t seed_;
};

// FlexLLMGen's numpy directory: <dir>/<tensor name> or <dir>/<tensor name>.npy, fp16, C order.
class NumpyDirWeights final : public WeightSource {
public:
    // Throws when `dir` is not a directory.
    NumpyDirWeights(std::filesystem::path dir, DiskDevice& disk);
    ~NumpyDirWeights() override;
    void check(const WeightSpec& spec) override;
    void read(const WeightSpec& spec, std::byte* dst) override;
    std::optional<FileLocation> locate(const WeightSpec& spec) override;
    std::string describe() const override { return "numpy weights in " + dir_.string(); }
    std::string identity(const WeightSpec& spec) override;

private:
    struct OpenTensor {
        std::unique_ptr<Buffer> file;
        uint64_t data_offset;
    };
    OpenTensor& open(const WeightSpec& spec);
    std::filesystem::path dir_;
    DiskDevice& disk_;
    std::map<std::string, OpenTensor> open_;
};

}  // namespace flexrt::opt
