#include "hf_checkpoint.hpp"

#include "ops/f16.hpp"
#include "text/json.hpp"
#include "text/whole_file.hpp"

#include <flexrt/status.hpp>

#include <algorithm>
#include <cstring>
#include <fstream>

namespace flexrt::opt {
namespace {

constexpr const char* kSingle = "model.safetensors";
constexpr const char* kIndex = "model.safetensors.index.json";
constexpr uint64_t kChunkElements = 4ull << 20;  // converted this many values at a time: host memory stays bounded

std::string shape_text(const std::vector<int64_t>& s) {
    std::string out = "(";
    for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
    return out + (s.size() == 1 ? ",)" : ")");
}

}  // namespace

bool HfCheckpointWeights::is_checkpoint(const std::filesystem::path& dir) {
    return std::filesystem::exists(dir / kSingle) || std::filesystem::exists(dir / kIndex);
}

HfCheckpointWeights::HfCheckpointWeights(std::filesystem::path dir) : dir_(std::move(dir)) {
    if (std::filesystem::exists(dir_ / kIndex)) {
        const auto index = dir_ / kIndex;
        const text::JsonValue doc = text::parse_json(text::read_whole_file(index, "checkpoint index"), index.string());
        const text::JsonValue* map = doc.find("weight_map");
        if (!map || map->type != text::JsonValue::Type::object)
            FLEXRT_THROW(FLEXRT_STATUS_BAD_DATA, index.string() + ": no \"weight_map\" object (not a sharded checkpoint's index)");
        std::map<std::string, size_t> shard_index;
        for (const auto& [name, file] : map->members) {
            if (file.type != text::JsonValue::Type::string || file.text.find('/') != std::string::npos)
                FLEXRT_THROW(FLEXRT_STATUS_BAD_DATA, index.string() + ": the shard of " + name + " is not a file name in " + dir_.string());
            auto [it, fresh] = shard_index.emplace(file.text, files_.size());
            if (fresh) files_.push_back(read_safetensors_header(dir_ / file.text));
            if (!files_[it->second].tensors.count(name))
                FLEXRT_THROW(FLEXRT_STATUS_BAD_DATA, index.string() + " puts " + name + " in " + file.text + ", whose header lacks it");
            file_of_[name] = it->second;
        }
    } else if (std::filesystem::exists(dir_ / kSingle)) {
        files_.push_back(read_safetensors_header(dir_ / kSingle));
        for (const auto& [name, t] : files_[0].tensors) file_of_[name] = 0;
    } else {
        FLEXRT_THROW(FLEXRT_STATUS_NOT_FOUND, "model.weights: " + dir_.string() + " holds neither " + kSingle + " nor " + kIndex);
    }
}

HfCheckpointWeights::Found HfCheckpointWeights::find(const WeightSpec& spec) const {
    // FlexLLMGen's decoder.layer_norm is HF's decoder.final_layer_norm (the one after the last layer).
    std::string hf = spec.name;
    if (hf.rfind("decoder.layer_norm.", 0) == 0) hf = "decoder.final_layer_norm." + hf.substr(std::strlen("decoder.layer_norm."));
    for (const std::string& name : {"model." + hf, hf}) {
        const auto it = file_of_.find(name);
        if (it == file_of_.end()) continue;
        const SafetensorsFile& f = files_[it->second];
        return {&f, &f.tensors.at(name), name};
    }
    FLEXRT_THROW(FLEXRT_STATUS_NOT_FOUND, "weight " + spec.name + ": neither model." + hf + " nor " + hf + " is in the checkpoint " +
                                              dir_.string() + " (" + std::to_string(file_of_.size()) + " tensors; not this model's?)");
}

void HfCheckpointWeights::check(const WeightSpec& spec) {
    const Found f = find(spec);
    if (f.tensor->shape != spec.shape)
        FLEXRT_THROW(FLEXRT_STATUS_BAD_DATA, "weight " + spec.name + ": shape " + shape_text(f.tensor->shape) + " in " +
                                                 f.file->path.string() + ", expected " + shape_text(spec.shape));
    const std::string& d = f.tensor->dtype;
    if (d != "F16" && d != "BF16" && d != "F32")
        FLEXRT_THROW(FLEXRT_STATUS_BAD_DATA,
                     "weight " + spec.name + ": dtype " + d + " in " + f.file->path.string() + ", expected F16, BF16 or F32");
}

void HfCheckpointWeights::read(const WeightSpec& spec, std::byte* dst) {
    check(spec);
    const Found f = find(spec);
    std::ifstream in(f.file->path, std::ios::binary);
    in.seekg(static_cast<std::streamoff>(f.tensor->offset));
    const uint64_t n = static_cast<uint64_t>(numel(spec.shape)), item = safetensors_dtype_bytes(f.tensor->dtype);
    auto* out = reinterpret_cast<uint16_t*>(dst);
    std::vector<char> raw;
    std::vector<float> wide;
    for (uint64_t at = 0; at < n; at += kChunkElements) {
        const uint64_t len = std::min(kChunkElements, n - at);
        if (f.tensor->dtype == "F16") {  // straight into place
            if (!in.read(reinterpret_cast<char*>(out + at), static_cast<std::streamsize>(len * 2))) break;
            continue;
        }
        raw.resize(len * item);
        if (!in.read(raw.data(), static_cast<std::streamsize>(raw.size()))) break;
        wide.resize(len);
        if (f.tensor->dtype == "F32") {
            std::memcpy(wide.data(), raw.data(), raw.size());
        } else {  // BF16: the high half of an fp32
            for (uint64_t i = 0; i < len; ++i) {
                uint16_t b;
                std::memcpy(&b, raw.data() + 2 * i, 2);
                const uint32_t bits = static_cast<uint32_t>(b) << 16;
                std::memcpy(&wide[i], &bits, 4);
            }
        }
        ops::float_to_half(wide.data(), out + at, static_cast<int64_t>(len));
    }
    if (!in)
        FLEXRT_THROW(FLEXRT_STATUS_IO_ERROR, "weight " + spec.name + ": reading " + f.name + " from " + f.file->path.string() +
                                                 " failed (the file changed or shrank since its header was read?)");
}

std::vector<std::string> HfCheckpointWeights::tensor_names() const {
    std::vector<std::string> names;
    for (const auto& [name, file] : file_of_) names.push_back(name);
    return names;
}

std::string HfCheckpointWeights::identity(const WeightSpec& spec) {
    const Found f = find(spec);
    std::error_code ec;
    const auto mtime = std::filesystem::last_write_time(f.file->path, ec).time_since_epoch().count();
    return std::filesystem::absolute(f.file->path).string() + " " + std::to_string(f.file->file_bytes) + " bytes, modified " +
           std::to_string(mtime) + ", tensor " + f.name;
}

}  // namespace flexrt::opt
