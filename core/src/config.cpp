#include "config.hpp"

#include "text/whole_file.hpp"

#include <flexrt/status.hpp>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <set>
#include <sstream>
#include <variant>

namespace flexrt {
namespace {

// --- the schema ------------------------------------------------------------------------------------

enum class Kind { boolean, integer, number, string, int_list, string_list };

const char* kind_text(Kind k) {
    switch (k) {
    case Kind::boolean: return "a boolean";
    case Kind::integer: return "an integer";
    case Kind::number: return "a number";
    case Kind::string: return "a string";
    case Kind::int_list: return "an array of integers";
    case Kind::string_list: return "an array of strings";
    }
    return "?";
}

using Default = std::variant<bool, int64_t, double, std::string, std::vector<std::string>>;

struct KeySpec {
    std::string key;
    Kind kind;
    Default def;
    std::string doc;
    double min = 1, max = 0;  // range for integer/number; unused when min > max
    std::vector<std::string> choices = {};
    size_t list_len = 0;  // exact length of an int_list
};

const std::vector<std::string>& model_names() {
    static const std::vector<std::string> names = {"opt-125m", "opt-350m", "opt-1.3b", "opt-2.7b", "opt-6.7b",
                                                   "opt-13b",  "opt-30b",  "opt-66b",  "opt-175b", "custom"};
    return names;
}

constexpr double kMaxInt = 9.0e15;

const std::vector<KeySpec>& schema() {
    // clang-format off: one key per row reads as a table
    static const std::vector<KeySpec> specs = {
        {"model.name", Kind::string, std::string("opt-125m"), "OPT size, or \"custom\" with the shape keys below", 1, 0, model_names()},
        {"model.weights", Kind::string, std::string("dummy"),
         "\"dummy\" (random, seeded by run.seed), a Hugging Face checkpoint directory (model.safetensors, or its sharded "
         "index), or a FlexLLMGen numpy weight directory"},
        {"model.num_layers", Kind::integer, int64_t{0}, "custom shape: decoder layers (0: from model.name)", 0, 10000},
        {"model.hidden_size", Kind::integer, int64_t{0}, "custom shape: hidden size", 0, 1 << 20},
        {"model.num_heads", Kind::integer, int64_t{0}, "custom shape: attention heads", 0, 1 << 16},
        {"model.ffn_size", Kind::integer, int64_t{0}, "custom shape: MLP inner size", 0, 1 << 22},
        {"model.vocab_size", Kind::integer, int64_t{0}, "custom shape: vocabulary", 0, 1 << 24},
        {"model.max_seq_len", Kind::integer, int64_t{0}, "custom shape: learned positions", 0, 1 << 20},
        {"model.word_embed_proj_dim", Kind::integer, int64_t{0},
         "custom shape: token embedding width, projected to hidden_size (0: hidden_size)", 0, 1 << 20},
        {"model.pre_layer_norm", Kind::boolean, true, "custom shape: pre-LN layers (false: post-LN, as opt-350m)"},
        {"model.tokenizer", Kind::string, std::string(""),
         "directory with the checkpoint's vocab.json and merges.txt, for text prompts (\"\": model.weights when it holds them)"},
        {"run.prompt_len", Kind::integer, int64_t{128}, "tokens per prompt (dummy prompts; text prompts: the longest's)", 1, 1 << 20},
        {"run.prompts", Kind::string, std::string(""),
         "text prompts: a .jsonl file (an object a line with a \"prompt\" string) or text (a prompt a line, blank lines "
         "skipped); with --prompt, both (\"\": dummy prompts, the benchmark shape)"},
        {"run.stop_strings", Kind::string_list, std::vector<std::string>{},
         "text prompts: a completion ends where one of these strings first appears (left out of its text); its sequence "
         "stops there, and the run ends when every sequence has stopped"},
        {"run.output", Kind::string, std::string(""),
         "JSONL file of the results (prompt, text, token ids, finish reason, timings), written whole; with dummy prompts "
         "their token ids (\"\": text prompts' results readable on stdout)"},
        {"run.gen_len", Kind::integer, int64_t{32}, "new tokens per prompt", 1, 1 << 20},
        {"run.do_sample", Kind::boolean, false, "sample with run.temperature instead of greedy argmax"},
        {"run.temperature", Kind::number, 1.0, "sampling temperature", 1e-6, 1e6},
        {"run.top_k", Kind::integer, int64_t{0}, "sample among the k most likely tokens (0: all)", 0, 1 << 24},
        {"run.top_p", Kind::number, 1.0, "sample among the most likely tokens covering this probability (1: all)", 1e-9, 1},
        {"run.seed", Kind::integer, int64_t{42}, "seed of sampling, dummy weights and dummy prompts", 0, kMaxInt},
        {"run.warmup", Kind::boolean, true,
         "before the first block, one untimed generation of 2 tokens on BOS-only prompts, as FlexLLMGen warms up before it "
         "measures: one-time costs (library handles, kernels loaded on first use, the GEMM algorithm each shape keeps) count "
         "in start-up, not in the first block's figures"},
        {"run.max_block", Kind::integer, int64_t{0},
         "policy = \"auto\" with dummy prompts: the most sequences a block may hold (0: as many as fit)", 0, 1 << 24},
        {"run.stop_token", Kind::integer, int64_t{-1}, "token id that ends a sequence (-1: none; text prompts: the tokenizer's </s>)", -1,
         1 << 24},
        {"policy.gpu_batch_size", Kind::integer, int64_t{4}, "sequences per GPU batch", 1, 1 << 20},
        {"policy.num_gpu_batches", Kind::integer, int64_t{1}, "GPU batches per block", 1, 1 << 20},
        {"policy.percent",
         Kind::int_list,
         std::vector<std::string>{},
         "FlexLLMGen's --percent shorthand [w_gpu, w_cpu, c_gpu, c_cpu, a_gpu, a_cpu]; sets the three tables below",
         0,
         100,
         {},
         6},
        {"policy.weights.gpu", Kind::number, 100.0, "percent of each layer's weight bytes on the compute device", 0, 100},
        {"policy.weights.cpu", Kind::number, 0.0, "percent in host memory (the rest on disk)", 0, 100},
        {"policy.cache.gpu", Kind::number, 100.0, "percent of the KV cache (by sequence) on the compute device", 0, 100},
        {"policy.cache.cpu", Kind::number, 0.0, "percent in host memory (the rest on disk)", 0, 100},
        {"policy.activations.gpu", Kind::number, 100.0, "percent of hidden states (by sequence) on the compute device", 0, 100},
        {"policy.activations.cpu", Kind::number, 0.0, "percent in host memory (the rest on disk)", 0, 100},
        {"policy.pin_weights", Kind::boolean, true, "host-resident weights in pinned memory (GPU builds)"},
        {"policy.cpu_cache_compute", Kind::boolean, false,
         "decode attention on the CPU where the KV cache lives (GPU builds; the CPU path always computes there)"},
        {"policy.separate_attention_mlp", Kind::boolean, true, "attention and MLP as separate layers (sep_layer)"},
        {"policy.compress_weights", Kind::boolean, false, "4-bit group-wise weights, through compress.plugin"},
        {"policy.compress_cache", Kind::boolean, false,
         "4-bit group-wise KV cache (the compress plugin's format, groups along each token's row)"},
        {"compress.plugin", Kind::string, std::string("group4"), "compress plugin name or library path (loaded when compressing)"},
        {"compress.store_dir", Kind::string, std::string(""),
         "keep compressed weights here between runs: quantized once, read back by later runs (empty: off)"},
        {"storage.plugin", Kind::string, std::string("mmap"), "storage plugin name or library path"},
        {"storage.offload_dir", Kind::string, std::string("/var/tmp/flexrt-offload"),
         "directory for disk-tier files (a private subdirectory per run, removed at exit)"},
        {"schedule.plugin", Kind::string, std::string("normal"), "schedule plugin name or library path"},
        {"runtime.plugin_path", Kind::string_list, std::vector<std::string>{}, "extra directories searched for plugins"},
        {"runtime.compute",
         Kind::string,
         std::string("auto"),
         "compute device: \"cuda\", \"cpu\", or \"auto\" (cuda when a GPU is present)",
         1,
         0,
         {"auto", "cpu", "cuda"}},
        {"runtime.gpu_memory_gib", Kind::number, 0.0, "the GPU pool, GiB (0: 90% of the GPU's free memory)", 0, 1 << 20},
        {"runtime.pinned_gib", Kind::number, 0.0, "cap of the pinned host tier, GiB (0: no cap)", 0, 1 << 20},
        {"runtime.io_threads", Kind::integer, int64_t{2}, "transfer worker threads", 1, 256},
        {"runtime.staging_mib", Kind::integer, int64_t{128},
         "staging pool for bounced and disk -> GPU transfers, MiB, allocated (pinned) once at start: 16 MiB chunks, one "
         "disk request each",
         32, 1 << 20},
        {"runtime.progress", Kind::boolean, true, "progress lines on stderr (when it is a terminal, or with --progress)"},
        {"pipeline.micro_batches", Kind::integer, int64_t{0},
         "pipeline parallelism (--world > 1): blocks of gpu_batch_size * num_gpu_batches in flight across the stages (0: one per stage)", 0,
         1 << 16},
        {"pipeline.transport",
         Kind::string,
         std::string("auto"),
         "hidden states between stages: \"nccl\" (GPU to GPU), \"tcp\" (through host memory), \"auto\" (nccl on GPUs)",
         1,
         0,
         {"auto", "nccl", "tcp"}},
        {"pipeline.rendezvous", Kind::string, std::string("127.0.0.1:29500"), "rank 0's host:port, where the ranks meet (--rendezvous)"},
        {"pipeline.timeout_s", Kind::number, 300.0,
         "how long the ranks wait for each other at the rendezvous, seconds (afterwards a rank that ends fails the others at once, "
         "and a live one is waited for)",
         1, 1 << 20},
    };
    // clang-format on
    return specs;
}

const std::set<std::string>& known_tables() {
    static const std::set<std::string> t = {"model",   "run",      "policy",   "policy.weights", "policy.cache", "policy.activations",
                                            "storage", "schedule", "compress", "runtime",        "pipeline"};
    return t;
}
const std::set<std::string>& plugin_option_tables() {
    static const std::set<std::string> t = {"storage.options", "schedule.options", "compress.options"};
    return t;
}

const KeySpec* find_spec(const std::string& key) {
    for (const auto& s : schema())
        if (s.key == key) return &s;
    return nullptr;
}

std::string parent_of(const std::string& key) {
    auto dot = key.rfind('.');
    return dot == std::string::npos ? "" : key.substr(0, dot);
}

std::string valid_keys_in(const std::string& table) {
    std::vector<std::string> keys;
    auto add = [&](const std::string& full) {
        if (parent_of(full) == table) keys.push_back(full.substr(table.empty() ? 0 : table.size() + 1));
    };
    for (const auto& s : schema()) add(s.key);
    for (const auto& t : known_tables()) add(t);
    for (const auto& t : plugin_option_tables()) add(t);
    std::string out;
    for (const auto& k : keys) out += (out.empty() ? "" : ", ") + k;
    return out;
}

std::string format_double(double v) {
    std::ostringstream os;
    os << v;
    return os.str();
}

// --- validation -----------------------------------------------------------------------------------

class Validator {
public:
    explicit Validator(Config& cfg) : cfg_(cfg) {}

    void check_table(const toml::table& t, const std::string& prefix) {
        for (const auto& [k, node] : t) {
            std::string key = prefix.empty() ? std::string(k.str()) : prefix + "." + std::string(k.str());
            remember(key, node);
            if (plugin_option_tables().count(key) || known_tables().count(key)) {
                if (!node.is_table()) fail(key, node, "expected a table");
                if (known_tables().count(key))
                    check_table(*node.as_table(), key);
                else  // checked once the plugin is loaded: keep where each option came from
                    for (const auto& [ok, on] : *node.as_table()) remember(key + "." + std::string(ok.str()), on);
                continue;
            }
            const KeySpec* spec = find_spec(key);
            if (!spec) {
                std::string table = prefix.empty() ? "the top level" : "[" + prefix + "]";
                fail(key, node, "unknown key; valid keys in " + table + ": " + valid_keys_in(prefix));
            }
            check_value(*spec, node);
        }
    }

    [[noreturn]] void fail(const std::string& key, const toml::node& node, const std::string& what) const {
        FLEXRT_THROW(FLEXRT_STATUS_INVALID_ARGUMENT, cfg_.where(key, node) + ": " + key + ": " + what);
    }

private:
    // Copies of the table lose their source positions; the positions are kept by key instead.
    void remember(const std::string& key, const toml::node& node) {
        if (!cfg_.origin.count(key)) cfg_.origin[key] = cfg_.where(key, node);
    }

    void check_range(const KeySpec& s, const toml::node& node, double v) const {
        if (s.min <= s.max && (v < s.min || v > s.max))
            fail(s.key, node,
                 "value " + format_double(v) + " is out of range; expected " + format_double(s.min) + " to " + format_double(s.max));
    }

    void check_value(const KeySpec& s, const toml::node& node) const {
        auto expected = [&]() { fail(s.key, node, std::string("expected ") + kind_text(s.kind) + ", got " + type_text(node)); };
        switch (s.kind) {
        case Kind::boolean:
            if (!node.is_boolean()) expected();
            break;
        case Kind::integer:
            if (!node.is_integer()) expected();
            check_range(s, node, static_cast<double>(node.as_integer()->get()));
            break;
        case Kind::number:
            if (!node.is_number()) expected();
            check_range(s, node, node.is_integer() ? static_cast<double>(node.as_integer()->get()) : node.as_floating_point()->get());
            if (node.is_floating_point() && !std::isfinite(node.as_floating_point()->get())) fail(s.key, node, "expected a finite number");
            break;
        case Kind::string:
            if (!node.is_string()) expected();
            if (!s.choices.empty()) {
                const std::string& v = node.as_string()->get();
                if (std::find(s.choices.begin(), s.choices.end(), v) == s.choices.end()) {
                    std::string list;
                    for (const auto& c : s.choices) list += (list.empty() ? "" : ", ") + c;
                    fail(s.key, node, "unknown value \"" + v + "\"; expected one of: " + list);
                }
            }
            break;
        case Kind::int_list:
        case Kind::string_list: {
            const toml::array* a = node.as_array();
            if (!a) expected();
            for (const auto& e : *a) {
                if (s.kind == Kind::int_list ? !e.is_integer() : !e.is_string()) expected();
                if (s.kind == Kind::int_list) check_range(s, node, static_cast<double>(e.as_integer()->get()));
            }
            if (s.list_len && a->size() != s.list_len)
                fail(s.key, node, "expected " + std::to_string(s.list_len) + " elements, got " + std::to_string(a->size()));
            break;
        }
        }
    }

    static std::string type_text(const toml::node& n) {
        switch (n.type()) {
        case toml::node_type::table: return "a table";
        case toml::node_type::array: return "an array";
        case toml::node_type::string: return "a string";
        case toml::node_type::integer: return "an integer";
        case toml::node_type::floating_point: return "a float";
        case toml::node_type::boolean: return "a boolean";
        default: return "a date/time";
        }
    }

    Config& cfg_;
};

// --- merging --------------------------------------------------------------------------------------

toml::table* table_at(toml::table& root, const std::string& path, bool create) {
    toml::table* t = &root;
    std::stringstream ss(path);
    for (std::string part; std::getline(ss, part, '.');) {
        toml::node* n = t->get(part);
        if (!n) {
            if (!create) return nullptr;
            t->insert(part, toml::table{});
            n = t->get(part);
        }
        if (!n->is_table()) return nullptr;
        t = n->as_table();
    }
    return t;
}

// Replaces policy.percent by the three share tables, so later sources can override either spelling.
void expand_percent(toml::table& root, Config& cfg) {
    toml::table* policy = table_at(root, "policy", false);
    if (!policy) return;
    toml::node* p = policy->get("percent");
    if (!p) return;
    Validator(cfg).check_table(*policy, "policy");  // type and length of percent
    const toml::array& a = *p->as_array();
    const char* tables[] = {"weights", "cache", "activations"};
    for (int t = 0; t < 3; ++t) {
        if (policy->get(tables[t]) && cfg.override_origin.count("policy.percent") == 0)
            Validator(cfg).fail("policy.percent", *p,
                                std::string("conflicts with [policy.") + tables[t] + "]: set the shares one way only");
        toml::table share;
        share.insert("gpu", a[2 * t].as_integer()->get());
        share.insert("cpu", a[2 * t + 1].as_integer()->get());
        policy->insert_or_assign(tables[t], std::move(share));
        std::string origin = cfg.override_origin.count("policy.percent") ? cfg.override_origin["policy.percent"] : "";
        for (const char* side : {"gpu", "cpu"}) {
            std::string key = std::string("policy.") + tables[t] + "." + side;
            if (!origin.empty())
                cfg.override_origin[key] = origin;
            else
                cfg.override_origin[key] = cfg.where("policy.percent", *p);
        }
    }
    policy->erase("percent");
}

void apply_override(toml::table& root, Config& cfg, const std::string& arg) {
    auto eq = arg.find('=');
    if (eq == std::string::npos || eq == 0) FLEXRT_THROW(FLEXRT_STATUS_INVALID_ARGUMENT, "--set " + arg + ": expected KEY=VALUE");
    std::string key = arg.substr(0, eq), value = arg.substr(eq + 1);
    std::string last = key.substr(key.rfind('.') + 1);
    toml::table parsed;
    try {
        parsed = toml::parse("v = " + value, "--set " + arg);
    } catch (const toml::parse_error&) {
        parsed = toml::table{};
        parsed.insert("v", value);  // a bare word: a string (paths, plugin names)
    }
    toml::table* parent = table_at(root, parent_of(key), true);
    if (!parent) FLEXRT_THROW(FLEXRT_STATUS_INVALID_ARGUMENT, "--set " + arg + ": " + parent_of(key) + " is not a table");
    parsed.get("v")->visit([&](const auto& v) { parent->insert_or_assign(last, v); });
    cfg.override_origin[key] = "--set " + arg;
    if (key == "policy.percent") expand_percent(root, cfg);
}

// --- typed extraction -----------------------------------------------------------------------------

class Reader {
public:
    explicit Reader(const toml::table& root) : root_(root) {}
    const toml::node* node(const std::string& key) const { return root_.at_path(key).node(); }

    bool boolean(const std::string& key) const {
        return get(key, [](const toml::node& n) { return n.as_boolean()->get(); });
    }
    int64_t integer(const std::string& key) const {
        return get(key, [](const toml::node& n) { return n.as_integer()->get(); });
    }
    double number(const std::string& key) const {
        return get(key, [](const toml::node& n) {
            return n.is_integer() ? static_cast<double>(n.as_integer()->get()) : n.as_floating_point()->get();
        });
    }
    std::string string(const std::string& key) const {
        return get(key, [](const toml::node& n) { return n.as_string()->get(); });
    }
    std::vector<std::string> strings(const std::string& key) const {
        std::vector<std::string> out;
        if (const toml::node* n = node(key))
            for (const auto& e : *n->as_array()) out.push_back(e.as_string()->get());
        else
            out = std::get<std::vector<std::string>>(find_spec(key)->def);
        return out;
    }

private:
    template <typename F>
    auto get(const std::string& key, F f) const -> decltype(f(std::declval<const toml::node&>())) {
        using T = decltype(f(std::declval<const toml::node&>()));
        if (const toml::node* n = node(key)) return f(*n);
        const Default& d = find_spec(key)->def;
        if constexpr (std::is_same_v<T, double>) {
            if (auto* i = std::get_if<int64_t>(&d)) return static_cast<double>(*i);
        }
        return std::get<T>(d);
    }
    const toml::table& root_;
};

void insert_path(toml::table& root, const std::string& key, auto value) {
    table_at(root, parent_of(key), true)->insert_or_assign(key.substr(key.rfind('.') + 1), value);
}

void fill(Config& cfg, const toml::table& root) {
    Reader r(root);
    cfg.model.name = r.string("model.name");
    cfg.model.weights = r.string("model.weights");
    cfg.model.num_layers = r.integer("model.num_layers");
    cfg.model.hidden_size = r.integer("model.hidden_size");
    cfg.model.num_heads = r.integer("model.num_heads");
    cfg.model.ffn_size = r.integer("model.ffn_size");
    cfg.model.vocab_size = r.integer("model.vocab_size");
    cfg.model.max_seq_len = r.integer("model.max_seq_len");
    cfg.model.word_embed_proj_dim = r.integer("model.word_embed_proj_dim");
    cfg.model.pre_layer_norm = r.boolean("model.pre_layer_norm");
    cfg.model.tokenizer = r.string("model.tokenizer");

    cfg.run.prompt_len = r.integer("run.prompt_len");
    cfg.run.gen_len = r.integer("run.gen_len");
    cfg.run.do_sample = r.boolean("run.do_sample");
    cfg.run.temperature = r.number("run.temperature");
    cfg.run.top_k = r.integer("run.top_k");
    cfg.run.top_p = r.number("run.top_p");
    cfg.run.seed = static_cast<uint64_t>(r.integer("run.seed"));
    cfg.run.stop_token = r.integer("run.stop_token");
    cfg.run.max_block = r.integer("run.max_block");
    cfg.run.warmup = r.boolean("run.warmup");
    cfg.run.prompts = r.string("run.prompts");
    cfg.run.output = r.string("run.output");
    cfg.run.stop_strings = r.strings("run.stop_strings");

    Policy& p = cfg.policy;
    p.gpu_batch_size = r.integer("policy.gpu_batch_size");
    p.num_gpu_batches = r.integer("policy.num_gpu_batches");
    p.weights = {r.number("policy.weights.gpu"), r.number("policy.weights.cpu")};
    p.cache = {r.number("policy.cache.gpu"), r.number("policy.cache.cpu")};
    p.activations = {r.number("policy.activations.gpu"), r.number("policy.activations.cpu")};
    p.pin_weights = r.boolean("policy.pin_weights");
    p.cpu_cache_compute = r.boolean("policy.cpu_cache_compute");
    p.separate_attention_mlp = r.boolean("policy.separate_attention_mlp");
    p.compress_weights = r.boolean("policy.compress_weights");
    p.compress_cache = r.boolean("policy.compress_cache");

    cfg.storage.table = "storage";
    cfg.storage.plugin = r.string("storage.plugin");
    cfg.offload_dir = r.string("storage.offload_dir");
    cfg.schedule.table = "schedule";
    cfg.schedule.plugin = r.string("schedule.plugin");
    cfg.compress.table = "compress";
    cfg.compress.plugin = r.string("compress.plugin");
    cfg.compress_store_dir = r.string("compress.store_dir");
    for (PluginSlot* slot : {&cfg.storage, &cfg.schedule, &cfg.compress})
        if (const toml::node* n = r.node(slot->table + ".options")) slot->options = *n->as_table();

    cfg.runtime.plugin_path = r.strings("runtime.plugin_path");
    cfg.runtime.compute = r.string("runtime.compute");
    cfg.runtime.gpu_memory_gib = r.number("runtime.gpu_memory_gib");
    cfg.runtime.pinned_gib = r.number("runtime.pinned_gib");
    cfg.runtime.io_threads = r.integer("runtime.io_threads");
    cfg.runtime.staging_mib = r.integer("runtime.staging_mib");
    cfg.runtime.progress = r.boolean("runtime.progress");
    cfg.pipeline.micro_batches = r.integer("pipeline.micro_batches");
    cfg.pipeline.transport = r.string("pipeline.transport");
    cfg.pipeline.rendezvous = r.string("pipeline.rendezvous");
    cfg.pipeline.timeout_s = r.number("pipeline.timeout_s");

    // Cross-key rules.
    for (const char* cls : {"weights", "cache", "activations"}) {
        std::string key = std::string("policy.") + cls;
        double gpu = r.number(key + ".gpu"), cpu = r.number(key + ".cpu");
        if (gpu + cpu > 100.0 + 1e-9) {
            const std::string side = r.node(key + ".gpu") ? key + ".gpu" : key + ".cpu";
            FLEXRT_THROW(FLEXRT_STATUS_INVALID_ARGUMENT, cfg.where(side, *r.node(side)) + ": " + key +
                                                             ": gpu + cpu = " + format_double(gpu + cpu) +
                                                             " percent is more than 100 (the rest goes to disk)");
        }
    }
    if (cfg.model.name == "custom") {
        for (const char* k : {"num_layers", "hidden_size", "num_heads", "ffn_size", "vocab_size", "max_seq_len"})
            if (r.integer(std::string("model.") + k) <= 0)
                FLEXRT_THROW(FLEXRT_STATUS_INVALID_ARGUMENT, cfg.source + ": model.name = \"custom\" needs model." + k + " > 0");
    }

    // The effective configuration: every key, defaults included.
    toml::table eff;
    for (const auto& s : schema()) {
        if (s.key == "policy.percent") continue;  // expanded into the share tables
        const toml::node* n = r.node(s.key);
        if (n) {
            n->visit([&](const auto& v) { insert_path(eff, s.key, v); });
            continue;
        }
        std::visit(
            [&](const auto& v) {
                using T = std::decay_t<decltype(v)>;
                if constexpr (std::is_same_v<T, std::vector<std::string>>) {
                    toml::array a;
                    for (const auto& e : v) a.push_back(e);
                    insert_path(eff, s.key, a);
                } else {
                    insert_path(eff, s.key, v);
                }
            },
            s.def);
    }
    cfg.effective = std::move(eff);
}

// `policy = "auto"`: the planner chooses the policy (flexrt plan) before the run; the [policy] table then
// holds no keys.
void take_auto_policy(toml::table& root, Config& cfg) {
    const toml::node* p = root.get("policy");
    if (!p || !p->is_string()) return;
    if (p->value<std::string>() != "auto") Validator(cfg).fail("policy", *p, "expected a table, or \"auto\" (the planner chooses)");
    cfg.policy_auto = true;
    root.erase("policy");
}

Config load_from_table(toml::table root, const std::string& source, const std::vector<std::string>& overrides) {
    Config cfg;
    cfg.source = source;
    take_auto_policy(root, cfg);
    expand_percent(root, cfg);
    for (const auto& o : overrides) apply_override(root, cfg, o);
    take_auto_policy(root, cfg);
    Validator(cfg).check_table(root, "");
    fill(cfg, root);
    return cfg;
}

}  // namespace

std::string Config::where(const std::string& key, const toml::node& node) const {
    if (auto it = override_origin.find(key); it != override_origin.end()) return it->second;
    if (auto it = origin.find(key); it != origin.end()) return it->second;
    const auto& src = node.source();
    if (src.path && src.begin.line) return *src.path + ":" + std::to_string(src.begin.line);
    return source;
}

Config load_config(const std::string& text, const std::string& source_name, const std::vector<std::string>& overrides) {
    toml::table root;
    try {
        root = toml::parse(text, source_name);
    } catch (const toml::parse_error& e) {
        FLEXRT_THROW(FLEXRT_STATUS_INVALID_ARGUMENT,
                     source_name + ":" + std::to_string(e.source().begin.line) + ": not valid TOML: " + std::string(e.description()));
    }
    return load_from_table(std::move(root), source_name, overrides);
}

Config load_config_file(const std::string& path, const std::vector<std::string>& overrides) {
    return load_config(text::read_whole_file(path, "config file"), path, overrides);
}

PluginOptions resolve_plugin_options(const Config& cfg, const PluginSlot& slot, const flexrt_plugin_desc& desc) {
    PluginOptions out;
    const std::string table = slot.table + ".options";
    auto declared = [&](const std::string& k) -> const flexrt_option_desc* {
        for (uint32_t i = 0; i < desc.n_options; ++i)
            if (k == desc.options[i].name) return &desc.options[i];
        return nullptr;
    };
    std::string valid;
    for (uint32_t i = 0; i < desc.n_options; ++i) valid += (valid.empty() ? "" : ", ") + std::string(desc.options[i].name);
    const std::string plugin_id = slot.table + "." + desc.name;

    for (const auto& [k, node] : slot.options) {
        std::string key = table + "." + std::string(k.str());
        if (!declared(std::string(k.str())))
            FLEXRT_THROW(FLEXRT_STATUS_INVALID_ARGUMENT, cfg.where(key, node) + ": " + key + ": plugin " + plugin_id + " has no option '" +
                                                             std::string(k.str()) +
                                                             "'; its options are: " + (valid.empty() ? "(none)" : valid));
    }
    for (uint32_t i = 0; i < desc.n_options; ++i) {
        const flexrt_option_desc& o = desc.options[i];
        const std::string key = table + "." + o.name;
        const toml::node* given = slot.options.get(o.name);
        toml::table parsed_default;
        if (!given) {
            parsed_default = toml::parse(std::string("v = ") + o.default_value, "default of " + key);
            given = parsed_default.get("v");
        }
        auto fail = [&](const std::string& what) {
            FLEXRT_THROW(FLEXRT_STATUS_INVALID_ARGUMENT, cfg.where(key, *given) + ": " + key + ": " + what);
        };
        flexrt_field f{};
        f.key = o.name;
        f.type = o.type;
        auto range = [&](double v) {
            if (o.min_value <= o.max_value && (v < o.min_value || v > o.max_value))
                fail("value " + format_double(v) + " is out of range; expected " + format_double(o.min_value) + " to " +
                     format_double(o.max_value));
        };
        switch (o.type) {
        case FLEXRT_FIELD_TYPE_BOOL:
            if (!given->is_boolean()) fail("expected a boolean");
            f.value.b = given->as_boolean()->get() ? 1 : 0;
            out.effective.insert(o.name, given->as_boolean()->get());
            break;
        case FLEXRT_FIELD_TYPE_INT:
            if (!given->is_integer()) fail("expected an integer");
            f.value.i = given->as_integer()->get();
            range(static_cast<double>(f.value.i));
            out.effective.insert(o.name, f.value.i);
            break;
        case FLEXRT_FIELD_TYPE_FLOAT:
            if (!given->is_number()) fail("expected a number");
            f.value.f = given->is_integer() ? static_cast<double>(given->as_integer()->get()) : given->as_floating_point()->get();
            range(f.value.f);
            out.effective.insert(o.name, f.value.f);
            break;
        case FLEXRT_FIELD_TYPE_STRING:
            if (!given->is_string()) fail("expected a string");
            out.strings.push_back(given->as_string()->get());
            f.value.s = out.strings.back().c_str();
            out.effective.insert(o.name, out.strings.back());
            break;
        default: fail("the plugin declares an option of unknown type " + std::to_string(o.type));
        }
        out.fields.push_back(f);
    }
    return out;
}

std::string config_reference() {
    std::ostringstream os;
    auto def_text = [](const Default& d) {
        return std::visit(
            [](const auto& v) -> std::string {
                using T = std::decay_t<decltype(v)>;
                if constexpr (std::is_same_v<T, bool>)
                    return v ? "true" : "false";
                else if constexpr (std::is_same_v<T, int64_t>)
                    return std::to_string(v);
                else if constexpr (std::is_same_v<T, double>)
                    return format_double(v);
                else if constexpr (std::is_same_v<T, std::string>)
                    return "\"" + v + "\"";
                else
                    return "[]";
            },
            d);
    };
    for (const auto& s : schema()) {
        os << "  " << s.key;
        for (size_t i = s.key.size(); i < 30; ++i) os << ' ';
        os << def_text(s.def);
        for (size_t i = def_text(s.def).size(); i < 28; ++i) os << ' ';
        os << s.doc << "\n";
    }
    os << "  storage.options / schedule.options / compress.options: the options the chosen plugin declares (see --list-plugins)\n";
    return os.str();
}

}  // namespace flexrt
