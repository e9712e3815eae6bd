#include "opt_config.hpp"

#include "core/src/config.hpp"

#include <flexrt/status.hpp>

#include <vector>

namespace flexrt::opt {

namespace {
struct Row {
    const char* name;
    int64_t layers, heads, hidden;
};
// ffn = 4 * hidden for every published size; head_dim = hidden / heads.
const std::vector<Row> kSizes = {
    {"opt-125m", 12, 12, 768},  {"opt-350m", 24, 16, 1024}, {"opt-1.3b", 24, 32, 2048},
    {"opt-2.7b", 32, 32, 2560}, {"opt-6.7b", 32, 32, 4096}, {"opt-13b", 40, 40, 5120},
    {"opt-30b", 48, 56, 7168},  {"opt-66b", 64, 72, 9216},  {"opt-175b", 96, 96, 12288},
};
}  // namespace

uint64_t OptConfig::model_bytes() const {
    const uint64_t h = hidden_size, L = num_layers, V = vocab_size, f = ffn_size;
    // attention: q,k,v,out (h*h + h each) + LN (2h); MLP: fc1 (f*h + f) + fc2 (h*f + h) + LN (2h)
    const uint64_t per_layer = 4 * (h * h + h) + 2 * h + (f * h + f) + (h * f + h) + 2 * h;
    const uint64_t e = embed_dim(), projections = projects() ? 2 * h * e : 0, final_ln = pre_layer_norm ? 2 * h : 0;
    return 2 * (L * per_layer + V * e + projections + (max_seq_len + 2) * h + final_ln);
}

OptConfig opt_config(const std::string& name) {
    std::string valid;
    for (const auto& r : kSizes) {
        if (name == r.name) {
            OptConfig c;
            c.name = r.name;
            c.num_layers = r.layers;
            c.num_heads = r.heads;
            c.hidden_size = r.hidden;
            c.ffn_size = 4 * r.hidden;
            if (c.name == "opt-350m") {  // the odd one: 512-wide embeddings projected to 1024, post-LN
                c.word_embed_proj_dim = 512;
                c.pre_layer_norm = false;
            }
            return c;
        }
        valid += (valid.empty() ? "" : ", ") + std::string(r.name);
    }
    FLEXRT_THROW(FLEXRT_STATUS_INVALID_ARGUMENT, "unknown model '" + name + "'; expected one of: " + valid);
}

void validate(const OptConfig& c) {
    auto need = [&](bool ok, const std::string& what) {
        if (!ok) FLEXRT_THROW(FLEXRT_STATUS_INVALID_ARGUMENT, "model " + c.name + ": " + what);
    };
    need(c.num_layers > 0 && c.hidden_size > 0 && c.num_heads > 0 && c.ffn_size > 0 && c.vocab_size > 0 && c.max_seq_len > 0,
         "every dimension must be positive");
    need(c.hidden_size % c.num_heads == 0,
         "model.num_heads (" + std::to_string(c.num_heads) + ") must divide model.hidden_size (" + std::to_string(c.hidden_size) + ")");
    need(c.pad_token_id < c.vocab_size, "the pad token must be in the vocabulary");
}

OptConfig from_section(const ModelSection& s) {
    OptConfig m;
    if (s.name == "custom") {
        m.name = "custom";
        m.num_layers = s.num_layers;
        m.hidden_size = s.hidden_size;
        m.num_heads = s.num_heads;
        m.ffn_size = s.ffn_size;
        m.vocab_size = s.vocab_size;
        m.max_seq_len = s.max_seq_len;
        m.word_embed_proj_dim = s.word_embed_proj_dim;
        m.pre_layer_norm = s.pre_layer_norm;
    } else {
        m = opt_config(s.name);
    }
    validate(m);
    return m;
}

}  // namespace flexrt::opt
