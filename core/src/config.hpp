// The run's configuration: a TOML file plus command-line overrides, validated key by key into typed
// structs. Every error names where the value came from (file:line or the --set argument), the key, and
// what was expected.
#pragma once

#include <flexrt/abi.h>

#include <toml++/toml.h>

#include <deque>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace flexrt {

struct ModelSection {
    std::string name;     // "opt-125m" ... "opt-175b", or "custom" with the shape keys below
    std::string weights;  // "dummy" or a FlexLLMGen numpy weight directory
    // Shape of a "custom" model (0 = take it from `name`).
    int64_t num_layers = 0, hidden_size = 0, num_heads = 0, ffn_size = 0, vocab_size = 0, max_seq_len = 0;
    int64_t word_embed_proj_dim = 0;  // 0: hidden_size
    bool pre_layer_norm = true;
    std::string tokenizer;  // a directory with vocab.json and merges.txt ("": model.weights' when it has them)
};

struct RunSection {
    int64_t prompt_len = 0;
    int64_t gen_len = 0;
    bool do_sample = false;
    double temperature = 1.0;
    int64_t top_k = 0;   // 0: off
    double top_p = 1.0;  // 1: off
    uint64_t seed = 0;
    int64_t stop_token = -1;                // -1: none
    std::string prompts;                    // a file of text prompts ("": dummy prompts)
    std::string output;                     // JSONL results of text prompts ("": readable text on stdout)
    std::vector<std::string> stop_strings;  // text prompts: a completion ends where one appears
    int64_t max_block = 0;                  // policy = "auto" with dummy prompts: the most sequences a block holds (0: any)
    bool warmup = true;                     // an untimed 2-token generation before the first block
};

// Percent of one class of tensors on the compute device ("gpu") and in host memory ("cpu"); the rest is
// on disk.
struct TierShare {
    double gpu = 100, cpu = 0;
    double disk() const noexcept { return 100.0 - gpu - cpu; }
};

// FlexLLMGen's Policy under names that say what they do.
struct Policy {
    int64_t gpu_batch_size = 4;
    int64_t num_gpu_batches = 1;
    TierShare weights, cache, activations;
    bool pin_weights = true;
    bool cpu_cache_compute = false;
    bool separate_attention_mlp = true;  // FlexLLMGen's sep_layer
    bool compress_weights = false;
    bool compress_cache = false;
    int64_t block_size() const noexcept { return gpu_batch_size * num_gpu_batches; }
};

// A plugin slot ([storage], [schedule]): the plugin's name or path and its raw options table, checked
// against the options the plugin declares once it is loaded (resolve_plugin_options).
struct PluginSlot {
    std::string table;   // "storage"
    std::string plugin;  // name or path
    toml::table options;
};

struct RuntimeSection {
    std::vector<std::string> plugin_path;
    std::string compute = "auto";  // "auto", "cpu", "cuda"
    double gpu_memory_gib = 0;     // 0: 90% of the GPU's free memory
    double pinned_gib = 0;         // cap of the pinned host tier; 0: none
    int64_t io_threads = 2;
    int64_t staging_mib = 128;
    bool progress = true;
};

// Pipeline parallelism over several processes (one GPU or host each): `flexrt --rank R --world N`, or mpirun.
struct PipelineSection {
    int64_t micro_batches = 0;                   // blocks in flight across the stages (0: one per stage)
    std::string transport = "auto";              // hidden states between stages: "nccl", "tcp", "auto" (nccl on GPUs)
    std::string rendezvous = "127.0.0.1:29500";  // rank 0's host:port, where the ranks meet
    double timeout_s = 300;                      // how long the ranks wait for each other at the rendezvous
};

struct Config {
    ModelSection model;
    RunSection run;
    Policy policy;
    bool policy_auto = false;  // `policy = "auto"`: the planner picks `policy` from the hardware profile
    PluginSlot storage;
    std::string offload_dir;
    PluginSlot schedule;
    PluginSlot compress;             // loaded only when policy.compress_weights or compress_cache
    std::string compress_store_dir;  // compress.store_dir: compressed weights kept between runs ("": off)
    RuntimeSection runtime;
    PipelineSection pipeline;

    std::string source;     // the file, or "embedded default"
    toml::table effective;  // every key with its effective value, for --print-config
    // Where each key set on the command line came from: "policy.gpu_batch_size" -> "--set policy...=8".
    std::map<std::string, std::string> override_origin;
    // "file:line" of every key read from the file (the typed sections and option tables are copies).
    std::map<std::string, std::string> origin;

    // "file:line" or "--set k=v" for a node of the merged table.
    std::string where(const std::string& key, const toml::node& node) const;
};

// Parses `text` (named `source_name` in errors), applies `overrides` ("key=value", value in TOML syntax
// or a bare string), validates every key and fills the typed sections. Throws flexrt::Error.
Config load_config(const std::string& text, const std::string& source_name, const std::vector<std::string>& overrides);
Config load_config_file(const std::string& path, const std::vector<std::string>& overrides);

// A plugin's options, validated against its declared list, with every default filled in. The fields
// point into `strings`, so the object must outlive the create() call.
struct PluginOptions {
    std::vector<flexrt_field> fields;
    std::deque<std::string> strings;
    toml::table effective;
};
PluginOptions resolve_plugin_options(const Config& cfg, const PluginSlot& slot, const flexrt_plugin_desc& desc);

// Documentation of every core key: "key  type  default  doc" lines, for --help and the README.
std::string config_reference();

}  // namespace flexrt
