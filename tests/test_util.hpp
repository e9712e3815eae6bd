// Shared helpers for the test suites: temporary directories, the tiny OPT fixture, a full set of tiers.
#pragma once

#include "core/src/config.hpp"
#include "core/src/device.hpp"
#include "core/src/host_log.hpp"
#include "core/src/npy.hpp"
#include "core/src/plugin_loader.hpp"
#include "core/src/transfer.hpp"
#include "models/opt/opt_config.hpp"
#include "ops/compute.hpp"

#include <flexrt/compressor.hpp>
#include <flexrt/scheduler.hpp>
#include <flexrt/storage.hpp>

#include <gtest/gtest.h>

#include <unistd.h>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <random>
#include <string>

namespace flexrt::test {

namespace fs = std::filesystem;

// A fresh directory under the system temp dir, removed with everything in it.
class TempDir {
public:
    TempDir() {
        static int n = 0;
        path_ = fs::temp_directory_path() / ("flexrt-test-" + std::to_string(::getpid()) + "-" + std::to_string(n++));
        fs::remove_all(path_);
        fs::create_directories(path_);
    }
    ~TempDir() {
        std::error_code ec;
        fs::remove_all(path_, ec);
    }
    const fs::path& path() const { return path_; }
    fs::path operator/(const std::string& s) const { return path_ / s; }

private:
    fs::path path_;
};

// tiny_opt: the pre-LN architecture of every OPT but 350m; tiny_opt_post_ln: opt-350m's (post-LN, projected
// embeddings).
// An absolute path names a fixture made elsewhere (FLEXRT_GOLDEN_DIR on the GPU machine).
inline fs::path fixture_dir(const std::string& name = "tiny_opt") {
    return fs::path(name).is_absolute() ? fs::path(name) : fs::path(FLEXRT_TEST_DATA_DIR) / name;
}

inline void write_file(const fs::path& p, const std::string& text) {
    std::ofstream out(p, std::ios::binary);
    out << text;
}

inline std::string read_file(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Files left in a directory tree (regular files only).
inline size_t count_files(const fs::path& dir) {
    size_t n = 0;
    std::error_code ec;
    for (auto it = fs::recursive_directory_iterator(dir, ec); it != fs::recursive_directory_iterator(); ++it) n += it->is_regular_file();
    return n;
}

// The tiny OPT's shape, from the fixture's config.txt.
inline opt::OptConfig tiny_config(const std::string& fixture = "tiny_opt") {
    std::map<std::string, int64_t> kv;
    std::ifstream in(fixture_dir(fixture) / "config.txt");
    for (std::string key, eq; in >> key >> eq;) {
        std::string value;
        in >> value;
        try {
            kv[key] = std::stoll(value);
        } catch (...) {}
    }
    opt::OptConfig c;
    c.name = "tiny";
    c.num_layers = kv.at("num_layers");
    c.hidden_size = kv.at("hidden_size");
    c.num_heads = kv.at("num_heads");
    c.ffn_size = kv.at("ffn_size");
    c.vocab_size = kv.at("vocab_size");
    c.max_seq_len = kv.at("max_seq_len");
    if (kv.count("word_embed_proj_dim")) c.word_embed_proj_dim = kv.at("word_embed_proj_dim");
    if (kv.count("pre_layer_norm")) c.pre_layer_norm = kv.at("pre_layer_norm") != 0;
    return c;
}

// A storage plugin from the build tree, created with its default options.
inline PluginPtr<IStorage> make_storage(const std::string& name, const std::vector<SearchDir>& extra = {}, toml::table options = {}) {
    auto search = plugin_search_path({});
    search.insert(search.begin(), extra.begin(), extra.end());
    PluginRef ref = find_plugin(FLEXRT_PLUGIN_KIND_STORAGE, name, search);
    Config cfg;
    PluginSlot slot{"storage", name, std::move(options)};
    PluginOptions opts = resolve_plugin_options(cfg, slot, *ref.desc);
    return create_plugin<IStorage>(ref, opts.fields);
}

// A compress plugin from the build tree.
inline PluginPtr<ICompressor> make_compressor(const std::string& name, toml::table options = {}) {
    PluginRef ref = find_plugin(FLEXRT_PLUGIN_KIND_COMPRESS, name, plugin_search_path({}));
    Config cfg;
    PluginSlot slot{"compress", name, std::move(options)};
    PluginOptions opts = resolve_plugin_options(cfg, slot, *ref.desc);
    return create_plugin<ICompressor>(ref, opts.fields);
}

// The tiny model's golden data (tests/data/<name>, written by HF transformers in float64): prompts, greedy tokens, logits.
struct Fixture {
    std::vector<std::vector<int32_t>> prompts;
    std::vector<int64_t> tokens;  // (n, gen_len)
    std::vector<double> logits;   // (n, gen_len, vocab)
    int64_t n = 0, prompt_len = 0, gen_len = 0, vocab = 0;
};

inline const Fixture& fixture(const std::string& name = "tiny_opt") {
    static std::map<std::string, Fixture> cache;
    if (auto it = cache.find(name); it != cache.end()) return it->second;
    return cache[name] = [&] {
        Fixture f;
        Shape ps, ls, ts, gs;
        const fs::path dir = fixture_dir(name);
        std::string p = read_npy((dir / "prompts.npy").string(), DType::i64, &ps);
        std::string l = read_npy((dir / "prompt_lens.npy").string(), DType::i64, &ls);
        std::string t = read_npy((dir / "tokens.npy").string(), DType::i64, &ts);
        std::string g = read_npy((dir / "logits.npy").string(), DType::f64, &gs);
        f.n = ps[0], f.prompt_len = ps[1], f.gen_len = ts[1], f.vocab = gs[2];
        const auto* pv = reinterpret_cast<const int64_t*>(p.data());
        const auto* lv = reinterpret_cast<const int64_t*>(l.data());
        for (int64_t b = 0; b < f.n; ++b) {
            std::vector<int32_t> ids;
            for (int64_t c = f.prompt_len - lv[b]; c < f.prompt_len; ++c) ids.push_back(static_cast<int32_t>(pv[b * f.prompt_len + c]));
            f.prompts.push_back(ids);
        }
        f.tokens.assign(reinterpret_cast<const int64_t*>(t.data()), reinterpret_cast<const int64_t*>(t.data()) + numel(ts));
        f.logits.assign(reinterpret_cast<const double*>(g.data()), reinterpret_cast<const double*>(g.data()) + numel(gs));
        return f;
    }();
}

// A schedule plugin from the build tree, or one of the test plugins (tests/plugins).
inline PluginPtr<IScheduler> make_schedule(const std::string& name) {
    auto search = plugin_search_path({});
    search.push_back({FLEXRT_TEST_PLUGIN_DIR, "test plugins"});
    PluginRef ref = find_plugin(FLEXRT_PLUGIN_KIND_SCHEDULE, name, search);
    return create_plugin<IScheduler>(ref, {});
}

// Compute device, host memory and disk, with a transfer engine. `cuda`: false keeps the transfer engine's staging
// out of pinned memory, so that nothing calls CUDA (a forked child of a process that started it must not).
struct Tiers {
    explicit Tiers(const std::string& storage_name = "mmap", bool cuda = true)
        : storage(make_storage(storage_name)),
          disk(*storage, dir.path() / "offload"),
          transfers(2, 16ull << 20, cuda && pinned_memory_available()) {}
    TempDir dir;
    PluginPtr<IStorage> storage;
    std::unique_ptr<ops::Compute> ops = ops::make_cpu_compute();
    MemoryDevice compute{TierKind::compute, "cpu (compute)"};
    MemoryDevice host{TierKind::host, "host"};
    DiskDevice disk;
    TransferEngine transfers;
};

}  // namespace flexrt::test
