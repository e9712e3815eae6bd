// OPT model shapes (FlexLLMGen's opt_config), and the derived sizes the engine plans with.
#pragma once

#include <cstdint>
#include <string>

namespace flexrt {
struct ModelSection;
}

namespace flexrt::opt {

struct OptConfig {
    std::string name;
    int64_t num_layers = 0;
    int64_t hidden_size = 0;
    int64_t num_heads = 0;
    int64_t ffn_size = 0;
    int64_t vocab_size = 50272;
    int64_t max_seq_len = 2048;       // learned positions: max_seq_len + 2 rows (OPT's offset of 2)
    int64_t word_embed_proj_dim = 0;  // width of the token embeddings; 0 = hidden_size (all but opt-350m)
    bool pre_layer_norm = true;       // false: post-LN layers and no final layer norm (opt-350m)
    int64_t pad_token_id = 1;
    double layer_norm_eps = 1e-5;

    int64_t head_dim() const { return hidden_size / num_heads; }
    int64_t embed_dim() const { return word_embed_proj_dim ? word_embed_proj_dim : hidden_size; }
    bool projects() const { return embed_dim() != hidden_size; }
    // Parameters in fp16 bytes (one token embedding, as FlexLLMGen's model_bytes counts them).
    uint64_t model_bytes() const;
    // K and V for `batch` sequences of `seq` tokens, fp16.
    uint64_t cache_bytes(int64_t batch, int64_t seq) const { return 2ull * batch * seq * num_layers * hidden_size * 2; }
    uint64_t hidden_bytes(int64_t batch, int64_t seq) const { return 1ull * batch * seq * hidden_size * 2; }
};

// The published sizes: opt-125m, opt-350m, opt-1.3b, opt-2.7b, opt-6.7b, opt-13b, opt-30b, opt-66b, opt-175b.
// Throws flexrt::Error naming the valid names for anything else.
OptConfig opt_config(const std::string& name);

// Checks a custom shape (heads divide hidden, ...); throws naming the key.
void validate(const OptConfig& c);

// The model a config's [model] table names: an OPT size, or "custom" with its shape keys. Validated.
OptConfig from_section(const ModelSection& s);

}  // namespace flexrt::opt
