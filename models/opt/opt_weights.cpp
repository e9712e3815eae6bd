#include "opt_weights.hpp"

#include "core/src/device.hpp"
#include "core/src/npy.hpp"
#include "core/src/transfer.hpp"
#include "ops/f16.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <thread>
#include <vector>

namespace flexrt::opt {

// --- dummy ----------------------------------------------------------------------------------------

namespace {

// Elements [lo, hi) of a dummy tensor: base + scale * u, u uniform in [-1, 1) from splitmix64 of (key, index). Integer
// hashing and exact conversions (z >> 40 < 2^24 fits an int32, which widens to float in vector lanes), and no FMA
// contraction: the AVX2 copy writes the bytes the baseline one does.
[[gnu::always_inline]] inline void fill_dummy_body(uint64_t key, float base, float scale, int64_t lo, int64_t hi, uint16_t* out) {
    float block[256];  // hashed in a loop the compiler vectorises, narrowed 8 at a time (F16C)
    for (int64_t at = lo; at < hi; at += 256) {
        const int64_t len = std::min<int64_t>(256, hi - at);
        for (int64_t e = 0; e < len; ++e) {
            uint64_t z = key + static_cast<uint64_t>(at + e + 1) * 0x9e3779b97f4a7c15ull;  // splitmix64
            z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
            z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
            z ^= z >> 31;
            const float u = static_cast<float>(static_cast<int32_t>(z >> 40)) * (2.0f / 16777216.0f) - 1.0f;  // [-1, 1)
            block[e] = base + scale * u;
        }
        ops::float_to_half(block, out + at, len);
    }
}

// Compiled twice, chosen at run time (no ifunc: it would run before ThreadSanitizer's runtime in the TSan build).
__attribute__((target("avx2"))) void fill_dummy_avx2(uint64_t key, float base, float scale, int64_t lo, int64_t hi, uint16_t* out) {
    fill_dummy_body(key, base, scale, lo, hi, out);
}
void fill_dummy_baseline(uint64_t key, float base, float scale, int64_t lo, int64_t hi, uint16_t* out) {
    fill_dummy_body(key, base, scale, lo, hi, out);
}
const bool kHasAvx2 = __builtin_cpu_supports("avx2");
void fill_dummy(uint64_t key, float base, float scale, int64_t lo, int64_t hi, uint16_t* out) {
    kHasAvx2 ? fill_dummy_avx2(key, base, scale, lo, hi, out) : fill_dummy_baseline(key, base, scale, lo, hi, out);
}

}  // namespace

// Element i is a hash of (seed, name, i) - counter-based, so a large tensor is filled on all host cores
// (OPT-30B's 60 GB of dummy fp16 in seconds, not minutes) and every element is the same whatever the split.
void DummyWeights::read(const WeightSpec& spec, std::byte* dst) {
    uint64_t key = seed_ ^ 0xcbf29ce484222325ull;  // FNV-1a of the name, mixed with the seed
    for (char c : spec.name) key = (key ^ static_cast<unsigned char>(c)) * 0x100000001b3ull;
    const bool vector = spec.shape.size() == 1;
    const bool ln_weight = spec.name.find("layer_norm.weight") != std::string::npos;
    const float scale = vector ? (ln_weight ? 0.1f : 0.02f) : 1.0f / std::sqrt(static_cast<float>(spec.shape.back()));
    const float base = ln_weight ? 1.0f : 0.0f;
    auto* out = reinterpret_cast<uint16_t*>(dst);
    const int64_t n = numel(spec.shape);
    const int64_t threads = std::clamp<int64_t>(n >> 20, 1, std::max(1u, std::thread::hardware_concurrency()));
    std::vector<std::jthread> pool;
    for (int64_t t = 1; t < threads; ++t) pool.emplace_back(fill_dummy, key, base, scale, n * t / threads, n * (t + 1) / threads, out);
    fill_dummy(key, base, scale, 0, n / threads, out);
}

// --- numpy directory ------------------------------------------------------------------------------

NumpyDirWeights::NumpyDirWeights(std::filesystem::path dir, DiskDevice& disk) : dir_(std::move(dir)), disk_(disk) {
    if (!std::filesystem::is_directory(dir_))
        FLEXRT_THROW(FLEXRT_STATUS_NOT_FOUND, "model.weights: '" + dir_.string() +
                                                  "' is not a directory (expected a FlexLLMGen numpy weight directory or \"dummy\")");
}

NumpyDirWeights::~NumpyDirWeights() = default;

NumpyDirWeights::OpenTensor& NumpyDirWeights::open(const WeightSpec& spec) {
    if (auto it = open_.find(spec.name); it != open_.end()) return it->second;
    std::filesystem::path path = dir_ / spec.name;
    if (!std::filesystem::exists(path)) path += ".npy";
    if (!std::filesystem::exists(path))
        FLEXRT_THROW(FLEXRT_STATUS_NOT_FOUND,
                     "weight " + spec.name + ": no file " + (dir_ / spec.name).string() + " (nor with .npy) in " + dir_.string());
    auto file = disk_.open_existing(path);
    auto& disk_file = static_cast<DiskBuffer&>(*file);
    std::string head(std::min<uint64_t>(kNpyProbeBytes, file->bytes()), '\0');
    disk_read(disk_file, 0, reinterpret_cast<std::byte*>(head.data()), head.size()).throw_if_error();
    NpyHeader h;
    try {
        h = parse_npy_header(head.data(), head.size(), path.string());
    } catch (const Error& e) { FLEXRT_THROW(e.status(), "weight " + spec.name + ": " + e.what()); }
    if (h.dtype != DType::f16)
        FLEXRT_THROW(FLEXRT_STATUS_BAD_DATA,
                     "weight " + spec.name + ": dtype " + dtype_name(h.dtype) + " in " + path.string() + ", expected float16");
    if (h.shape != spec.shape)
        FLEXRT_THROW(FLEXRT_STATUS_BAD_DATA, "weight " + spec.name + ": shape " + shape_str(h.shape) + " in " + path.string() +
                                                 ", expected " + shape_str(spec.shape));
    if (file->bytes() < h.data_offset + h.data_bytes())
        FLEXRT_THROW(FLEXRT_STATUS_BAD_DATA, "weight " + spec.name + ": " + path.string() +
                                                 " is truncated: " + std::to_string(file->bytes()) + " bytes, the header needs " +
                                                 std::to_string(h.data_offset + h.data_bytes()));
    return open_.emplace(spec.name, OpenTensor{std::move(file), h.data_offset}).first->second;
}

void NumpyDirWeights::check(const WeightSpec& spec) { open(spec); }

void NumpyDirWeights::read(const WeightSpec& spec, std::byte* dst) {
    OpenTensor& t = open(spec);
    Status s = disk_read(static_cast<DiskBuffer&>(*t.file), t.data_offset, dst, numel(spec.shape) * 2);
    if (!s.is_ok()) FLEXRT_THROW(s.code(), "weight " + spec.name + ": " + s.message());
}

std::string NumpyDirWeights::identity(const WeightSpec& spec) {
    std::filesystem::path path = dir_ / spec.name;
    if (!std::filesystem::exists(path)) path += ".npy";
    std::error_code ec;
    const auto size = std::filesystem::file_size(path, ec);
    const auto mtime = std::filesystem::last_write_time(path, ec).time_since_epoch().count();
    return std::filesystem::absolute(path).string() + " " + std::to_string(size) + " bytes, modified " + std::to_string(mtime);
}

std::optional<FileLocation> NumpyDirWeights::locate(const WeightSpec& spec) {
    OpenTensor& t = open(spec);
    return FileLocation{t.file.get(), t.data_offset};
}

}  // namespace flexrt::opt
