// A Hugging Face OPT checkpoint as a weight source: model.safetensors, or model.safetensors.index.json and
// the shards it names. HF's tensor names ("model.decoder.layers.0.fc1.weight", or without "model." as
// OPTModel saves them) are found from FlexLLMGen's ("decoder.layers.0.fc1.weight"; its decoder.layer_norm is
// HF's decoder.final_layer_norm); F16, BF16 and F32 are
// read as fp16, a bounded chunk at a time. lm_head.weight, when present, is the tied input embedding and is
// not read.
#pragma once

#include "opt_weights.hpp"

#include "core/src/safetensors.hpp"

#include <filesystem>
#include <map>
#include <vector>

namespace flexrt::opt {

class HfCheckpointWeights final : public WeightSource {
public:
    // Whether `dir` holds model.safetensors or model.safetensors.index.json.
    static bool is_checkpoint(const std::filesystem::path& dir);
    // Reads every header (not the tensors); throws naming the file when a header, the index or a shard it
    // names is missing or malformed.
    explicit HfCheckpointWeights(std::filesystem::path dir);
    void check(const WeightSpec& spec) override;
    void read(const WeightSpec& spec, std::byte* dst) override;
    std::optional<FileLocation> locate(const WeightSpec&) override { return std::nullopt; }  // converted on read
    std::string describe() const override { return "Hugging Face checkpoint in " + dir_.string(); }
    std::string identity(const WeightSpec& spec) override;
    // HF's name of the tensor (throws as check() when it is missing), and every tensor the checkpoint holds.
    std::string name_of(const WeightSpec& spec) const { return find(spec).name; }
    std::vector<std::string> tensor_names() const;

private:
    struct Found {
        const SafetensorsFile* file;
        const SafetensorsTensor* tensor;
        std::string name;  // HF's
    };
    Found find(const WeightSpec& spec) const;
    std::filesystem::path dir_;
    std::vector<SafetensorsFile> files_;
    std::map<std::string, size_t> file_of_;  // HF tensor name -> files_ index
};

}  // namespace flexrt::opt
