// Hugging Face checkpoints that are not what they claim: a truncated file, a header longer than the file,
// a header that is not JSON, offsets that do not match shape x dtype, an index naming a tensor its shard
// lacks, a missing tensor, a wrong shape, an unsupported dtype. Each is an error that names the file and
// the tensor, raised before any tensor is read.
#include "test_util.hpp"

#include "core/src/safetensors.hpp"
#include "models/opt/hf_checkpoint.hpp"
#include "ops/f16.hpp"

#include <cstring>

namespace flexrt::test {
namespace {

#define EXPECT_ERROR(stmt, code, needle)                                              \
    try {                                                                             \
        stmt;                                                                         \
        ADD_FAILURE() << "no error from " #stmt;                                      \
    } catch (const Error& e) {                                                        \
        EXPECT_EQ(e.status(), code) << e.what();                                      \
        EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what(); \
    }

// A safetensors file from a header (JSON) and `data_bytes` bytes of data.
void write_safetensors(const fs::path& p, const std::string& header, size_t data_bytes) {
    std::string bytes(8, '\0');
    uint64_t n = header.size();
    for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>((n >> (8 * i)) & 0xff);
    bytes += header + std::string(data_bytes, '\0');
    write_file(p, bytes);
}

TEST(Safetensors, BrokenFilesAreNamedErrors) {
    TempDir dir;
    const fs::path good = fixture_dir("tiny_opt_hf") / "single" / "model.safetensors";
    const SafetensorsFile f = read_safetensors_header(good);
    EXPECT_EQ(f.tensors.size(), 53u);  // 52 and the tied lm_head
    EXPECT_EQ(f.tensors.at("model.decoder.embed_tokens.weight").dtype, "F32");

    const fs::path cut = dir.path() / "cut.safetensors";
    fs::copy_file(good, cut);
    fs::resize_file(cut, fs::file_size(good) - 100);
    EXPECT_ERROR(read_safetensors_header(cut), FLEXRT_STATUS_BAD_DATA, "(truncated?)");

    const fs::path p = dir.path() / "x.safetensors";
    write_file(p, "abc");
    EXPECT_ERROR(read_safetensors_header(p), FLEXRT_STATUS_BAD_DATA, "shorter than its 8-byte header length");
    write_safetensors(p, "{\"a\": {}}", 0);
    fs::resize_file(p, 12);  // the length says 9 bytes of header, 4 remain
    EXPECT_ERROR(read_safetensors_header(p), FLEXRT_STATUS_BAD_DATA, "a header of 9 bytes, more than the file's 4");
    write_safetensors(p, "{not json}", 0);
    EXPECT_ERROR(read_safetensors_header(p), FLEXRT_STATUS_BAD_DATA, "not valid JSON");
    write_safetensors(p, R"({"w": {"dtype": "F16", "shape": [2, 3], "data_offsets": [0, 10]}})", 10);
    EXPECT_ERROR(read_safetensors_header(p), FLEXRT_STATUS_BAD_DATA, "tensor w: 10 bytes for 6 F16 values (12 expected)");
    write_safetensors(p, R"({"w": {"dtype": "Q4", "shape": [2], "data_offsets": [0, 2]}})", 2);
    EXPECT_ERROR(read_safetensors_header(p), FLEXRT_STATUS_BAD_DATA, "unknown dtype Q4");
    write_safetensors(p, R"({"w": {"dtype": "F16", "shape": [-2], "data_offsets": [0, 4]}})", 4);
    EXPECT_ERROR(read_safetensors_header(p), FLEXRT_STATUS_BAD_DATA, "is not a non-negative integer");
    EXPECT_ERROR(read_safetensors_header(dir.path() / "none.safetensors"), FLEXRT_STATUS_NOT_FOUND, "cannot open");
}

TEST(HfCheckpoint, MissingTensorsWrongShapesAndBadIndexes) {
    TempDir dir;
    const opt::WeightSpec fc1{"decoder.layers.0.fc1.weight", {256, 64}};
    opt::HfCheckpointWeights hf(fixture_dir("tiny_opt_hf") / "single");
    hf.check(fc1);
    EXPECT_ERROR(hf.check(opt::WeightSpec{"decoder.layers.9.fc1.weight", {256, 64}}), FLEXRT_STATUS_NOT_FOUND,
                 "weight decoder.layers.9.fc1.weight: neither model.decoder.layers.9.fc1.weight nor");
    EXPECT_ERROR(hf.check(opt::WeightSpec{"decoder.layers.0.fc1.weight", {64, 256}}), FLEXRT_STATUS_BAD_DATA, "shape (256, 64) in");
    EXPECT_ERROR(opt::HfCheckpointWeights(dir.path()), FLEXRT_STATUS_NOT_FOUND, "holds neither model.safetensors nor");

    // An index that puts a tensor in a shard whose header lacks it.
    const fs::path sharded = dir.path() / "sharded";
    fs::copy(fixture_dir("tiny_opt_hf") / "sharded", sharded);
    std::string index = read_file(sharded / "model.safetensors.index.json");
    const std::string moved = "\"model.decoder.embed_tokens.weight\": \"model-00001-of-00002.safetensors\"";
    const bool in_first = index.find(moved) != std::string::npos;
    const std::string from = in_first ? "00001-of" : "00002-of", to = in_first ? "00002-of" : "00001-of";
    const size_t at = index.find("\"model.decoder.embed_tokens.weight\"");
    index.replace(index.find(from, at), from.size(), to);
    write_file(sharded / "model.safetensors.index.json", index);
    EXPECT_ERROR(opt::HfCheckpointWeights{sharded}, FLEXRT_STATUS_BAD_DATA, "puts model.decoder.embed_tokens.weight in");

    // A dtype flexrt does not read as weights.
    write_safetensors(dir.path() / "model.safetensors",
                      R"({"model.decoder.layers.0.fc1.weight": {"dtype": "I32", "shape": [256, 64], "data_offsets": [0, 65536]}})", 65536);
    opt::HfCheckpointWeights ints(dir.path());
    EXPECT_ERROR(ints.check(fc1), FLEXRT_STATUS_BAD_DATA, "dtype I32");
}

// BF16 and F32 tensors are read as fp16 (each value rounded to nearest even once); F16 as it is.
TEST(HfCheckpoint, Bf16AndF32ReadAsFp16) {
    TempDir dir;
    const uint16_t bf16[6] = {0x3f80, 0xc020, 0x3e20, 0x4049, 0x0000, 0x3a83};  // 1, -2.5, 0.15625, 3.140625, 0, ~0.001
    std::string data(reinterpret_cast<const char*>(bf16), sizeof bf16);
    const float f32[6] = {1.0f, -2.5f, 0.1f, 65504.0f, 1e-8f, 3.14159265f};
    data.append(reinterpret_cast<const char*>(f32), sizeof f32);
    std::string bytes(8, '\0');
    const std::string header = R"({"model.decoder.layers.0.fc1.weight": {"dtype": "BF16", "shape": [2, 3], "data_offsets": [0, 12]},)"
                               R"( "model.decoder.layers.0.fc2.weight": {"dtype": "F32", "shape": [3, 2], "data_offsets": [12, 36]}})";
    for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>((header.size() >> (8 * i)) & 0xff);
    write_file(dir.path() / "model.safetensors", bytes + header + data);
    opt::HfCheckpointWeights hf(dir.path());
    uint16_t got[6];
    hf.read(opt::WeightSpec{"decoder.layers.0.fc1.weight", {2, 3}}, reinterpret_cast<std::byte*>(got));
    for (int i = 0; i < 6; ++i) {
        const uint32_t bits = static_cast<uint32_t>(bf16[i]) << 16;
        float v;
        std::memcpy(&v, &bits, 4);
        EXPECT_EQ(got[i], ops::float_to_half(v)) << "BF16 value " << i;
    }
    hf.read(opt::WeightSpec{"decoder.layers.0.fc2.weight", {3, 2}}, reinterpret_cast<std::byte*>(got));
    for (int i = 0; i < 6; ++i) EXPECT_EQ(got[i], ops::float_to_half(f32[i])) << "F32 value " << i;
}

}  // namespace
}  // namespace flexrt::test
