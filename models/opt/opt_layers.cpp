#include "opt_layers.hpp"

#include "ops/compute.hpp"

#include <cmath>

namespace flexrt::opt {
namespace {

std::string layer_prefix(int64_t l) { return "decoder.layers." + std::to_string(l) + "."; }

// y = x W^T + b (+ residual) with weight io.w[wi], as fp16 or as the compressed bytes the engine handed over.
void project(const LayerIO& io, size_t wi, const void* x, int64_t rows, int64_t in, const uint16_t* bias, int64_t out, void* y, bool relu,
             const void* residual = nullptr) {
    if (wi < io.packed.size() && io.packed[wi].bytes) {
        io.ops->linear_group4(x, rows, io.packed[wi].bytes, *io.packed[wi].layout, bias, y, relu);
        if (residual) io.ops->add(y, residual, rows * out);
    } else {
        io.ops->linear(x, rows, in, io.w[wi], bias, out, y, relu, residual);
    }
}

class InputEmbed final : public Layer {
public:
    explicit InputEmbed(const OptConfig& c) : c_(c) {}
    std::string name() const override { return "input_embed"; }
    bool is_input() const override { return true; }
    std::vector<WeightSpec> weights() const override {
        std::vector<WeightSpec> w = {{"decoder.embed_tokens.weight", {c_.vocab_size, c_.embed_dim()}},
                                     {"decoder.embed_positions.weight", {c_.max_seq_len + 2, c_.hidden_size}}};
        if (c_.projects()) w.push_back({"decoder.project_in.weight", {c_.hidden_size, c_.embed_dim()}});
        return w;
    }
    void forward(const LayerIO& io) const override {
        ops::Compute& o = *io.ops;
        const int64_t rows = io.batch * io.seq, h = c_.hidden_size;
        if (c_.projects()) {  // (rows, embed_dim) tokens, projected to (rows, h)
            o.embed_tokens(io.ids, rows, io.w[0], c_.vocab_size, c_.embed_dim(), io.ws.ln);
            project(io, 2, io.ws.ln, rows, c_.embed_dim(), nullptr, h, io.y, false);
        } else {
            o.embed_tokens(io.ids, rows, io.w[0], c_.vocab_size, h, io.y);
        }
        o.add_positions(io.y, io.batch, io.seq, io.mask, io.mask_stride, io.past + io.seq, io.w[1], c_.max_seq_len + 2, h);
    }

private:
    OptConfig c_;
};

// Self-attention with residual: y = x + out_proj(attn(LN(x))) (pre-LN), or y = LN(x + out_proj(attn(x)))
// (post-LN, opt-350m). Weight order is FlexLLMGen's.
class SelfAttention final : public Layer {
public:
    SelfAttention(const OptConfig& c, int64_t l) : c_(c), l_(l) {}
    std::string name() const override { return "attention." + std::to_string(l_); }
    bool has_cache() const override { return true; }
    std::vector<WeightSpec> weights() const override {
        const int64_t h = c_.hidden_size;
        const std::string p = layer_prefix(l_);
        std::vector<WeightSpec> w;
        for (const char* proj : {"q_proj", "k_proj", "v_proj", "out_proj"}) {
            w.push_back({p + "self_attn." + proj + ".weight", {h, h}});
            w.push_back({p + "self_attn." + proj + ".bias", {h}});
        }
        w.push_back({p + "self_attn_layer_norm.weight", {h}});
        w.push_back({p + "self_attn_layer_norm.bias", {h}});
        return w;
    }
    void forward(const LayerIO& io) const override { run(c_, io, 0); }

    // Shared with the fused Transformer layer: weights start at io.w[w0].
    static void run(const OptConfig& c, const LayerIO& io, size_t w0) {
        ops::Compute& o = *io.ops;
        const int64_t h = c.hidden_size, rows = io.batch * io.seq, hd = c.head_dim();
        const Workspace& ws = io.ws;
        const auto& w = io.w;
        const void* in = io.x;
        if (c.pre_layer_norm) {
            o.layer_norm(io.x, rows, h, w[w0 + 8], w[w0 + 9], c.layer_norm_eps, ws.ln);
            in = ws.ln;
        }
        project(io, w0 + 0, in, rows, h, w[w0 + 1], h, ws.q, false);
        project(io, w0 + 2, in, rows, h, w[w0 + 3], h, ws.k, false);
        project(io, w0 + 4, in, rows, h, w[w0 + 5], h, ws.v, false);
        o.scale(ws.q, rows * h, 1.0f / std::sqrt(static_cast<float>(hd)));
        // This step's K and V rows go to where the engine keeps them (the cache layout of each sequence).
        o.write_new_kv(io.kv, io.batch, io.seq, h, ws.k, ws.v);
        o.attention(ws.q, io.kv, io.batch, io.seq, io.past, c.num_heads, hd, io.mask, io.mask_stride, ws.attn);
        project(io, w0 + 6, ws.attn, rows, h, w[w0 + 7], h, io.y, false, /*residual=*/io.x);
        if (!c.pre_layer_norm) o.layer_norm(io.y, rows, h, w[w0 + 8], w[w0 + 9], c.layer_norm_eps, io.y);
    }

private:
    OptConfig c_;
    int64_t l_;
};

// MLP with residual: y = x + fc2(relu(fc1(LN(x)))) (pre-LN), or y = LN(x + fc2(relu(fc1(x)))) (post-LN).
class Mlp final : public Layer {
public:
    Mlp(const OptConfig& c, int64_t l) : c_(c), l_(l) {}
    std::string name() const override { return "mlp." + std::to_string(l_); }
    std::vector<WeightSpec> weights() const override {
        const int64_t h = c_.hidden_size, f = c_.ffn_size;
        const std::string p = layer_prefix(l_);
        return {{p + "fc1.weight", {f, h}},           {p + "fc1.bias", {f}},
                {p + "fc2.weight", {h, f}},           {p + "fc2.bias", {h}},
                {p + "final_layer_norm.weight", {h}}, {p + "final_layer_norm.bias", {h}}};
    }
    void forward(const LayerIO& io) const override { run(c_, io, 0); }

    static void run(const OptConfig& c, const LayerIO& io, size_t w0) {
        ops::Compute& o = *io.ops;
        const int64_t h = c.hidden_size, f = c.ffn_size, rows = io.batch * io.seq;
        const Workspace& ws = io.ws;
        const auto& w = io.w;
        const void* in = io.x;
        if (c.pre_layer_norm) {
            o.layer_norm(io.x, rows, h, w[w0 + 4], w[w0 + 5], c.layer_norm_eps, ws.ln);
            in = ws.ln;
        }
        project(io, w0 + 0, in, rows, h, w[w0 + 1], f, ws.ffn, /*relu=*/true);
        project(io, w0 + 2, ws.ffn, rows, f, w[w0 + 3], h, io.y, false, /*residual=*/io.x);
        if (!c.pre_layer_norm) o.layer_norm(io.y, rows, h, w[w0 + 4], w[w0 + 5], c.layer_norm_eps, io.y);
    }

private:
    OptConfig c_;
    int64_t l_;
};

// Attention and MLP as one layer (FlexLLMGen's sep_layer = False): one weight load per decoder layer.
class Transformer final : public Layer {
public:
    Transformer(const OptConfig& c, int64_t l) : c_(c), l_(l), attn_(c, l), mlp_(c, l) {}
    std::string name() const override { return "transformer." + std::to_string(l_); }
    bool has_cache() const override { return true; }
    std::vector<WeightSpec> weights() const override {
        auto w = attn_.weights();
        auto m = mlp_.weights();
        w.insert(w.end(), m.begin(), m.end());
        return w;
    }
    void forward(const LayerIO& io) const override {
        // The MLP reads the attention's output (y) for its residual after writing its own output, so it
        // writes into free scratch (attn, no longer needed) and the result is copied back to y.
        SelfAttention::run(c_, io, 0);
        LayerIO mlp_io = io;
        mlp_io.x = io.y;
        mlp_io.y = io.ws.attn;
        Mlp::run(c_, mlp_io, 10);
        const int64_t rows = io.batch * io.seq;
        io.ops->copy_rows(io.y, c_.hidden_size, io.ws.attn, c_.hidden_size, rows, c_.hidden_size);
    }

private:
    OptConfig c_;
    int64_t l_;
    SelfAttention attn_;
    Mlp mlp_;
};

// Final LN (pre-LN models), the output projection (opt-350m) and the tied head, for the last position of
// each sequence only.
class OutputEmbed final : public Layer {
public:
    explicit OutputEmbed(const OptConfig& c) : c_(c) {}
    std::string name() const override { return "output_embed"; }
    bool is_output() const override { return true; }
    // Order: embed_tokens, then [layer_norm.weight, layer_norm.bias] (pre-LN), then [project_out] (opt-350m).
    std::vector<WeightSpec> weights() const override {
        const int64_t h = c_.hidden_size;
        std::vector<WeightSpec> w = {{"decoder.embed_tokens.weight", {c_.vocab_size, c_.embed_dim()}}};
        if (c_.pre_layer_norm) {
            w.push_back({"decoder.layer_norm.weight", {h}});
            w.push_back({"decoder.layer_norm.bias", {h}});
        }
        if (c_.projects()) w.push_back({"decoder.project_out.weight", {c_.embed_dim(), h}});
        return w;
    }
    void forward(const LayerIO& io) const override {
        ops::Compute& o = *io.ops;
        const int64_t h = c_.hidden_size;
        void* last = io.ws.attn;  // (batch, h): the last position of each sequence
        o.copy_rows(last, h, o.at(io.x, (io.seq - 1) * h), io.seq * h, io.batch, h);
        size_t next = 1;
        if (c_.pre_layer_norm) {
            o.layer_norm(last, io.batch, h, io.w[1], io.w[2], c_.layer_norm_eps, io.ws.ln);
            last = io.ws.ln;
            next = 3;
        }
        if (c_.projects()) {  // (batch, h) -> (batch, embed_dim)
            project(io, next, last, io.batch, h, nullptr, c_.embed_dim(), io.ws.q, false);
            last = io.ws.q;
        }
        project(io, 0, last, io.batch, c_.embed_dim(), nullptr, c_.vocab_size, io.y, false);
    }

private:
    OptConfig c_;
};

}  // namespace

std::vector<std::unique_ptr<Layer>> build_layers(const OptConfig& cfg, bool separate_attention_mlp) {
    std::vector<std::unique_ptr<Layer>> layers;
    layers.push_back(std::make_unique<InputEmbed>(cfg));
    for (int64_t l = 0; l < cfg.num_layers; ++l) {
        if (separate_attention_mlp) {
            layers.push_back(std::make_unique<SelfAttention>(cfg, l));
            layers.push_back(std::make_unique<Mlp>(cfg, l));
        } else {
            layers.push_back(std::make_unique<Transformer>(cfg, l));
        }
    }
    layers.push_back(std::make_unique<OutputEmbed>(cfg));
    return layers;
}

}  // namespace flexrt::opt
