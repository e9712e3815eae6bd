// OPT as FlexLLMGen's layer list: InputEmbed, then per decoder layer SelfAttention and MLP (or one fused
// Transformer layer), then OutputEmbed. A layer declares its weights and composes ops; it knows nothing
// of tiers or transfers: the engine hands it pointers to compute-device memory.
#pragma once

#include "opt_config.hpp"

#include <flexrt/tensor.hpp>

#include <memory>
#include <string>
#include <vector>

namespace flexrt::ops {
class Compute;
struct KvView;
struct Group4Layout;
}  // namespace flexrt::ops

namespace flexrt::opt {

struct WeightSpec {
    std::string name;  // FlexLLMGen's file name, e.g. decoder.layers.0.fc1.weight
    Shape shape;       // fp16
};

// Scratch memory of the compute device for one forward call, in activation elements.
struct Workspace {
    void* ln;    // (rows, h)
    void* q;     // (rows, h)
    void* k;     // (rows, h)
    void* v;     // (rows, h)
    void* attn;  // (rows, h)
    void* ffn;   // (rows, ffn)
};

// A weight the compute device multiplies in its compressed form (ops::Compute::linear_group4).
struct PackedWeight {
    const uint8_t* bytes = nullptr;
    const ops::Group4Layout* layout = nullptr;
};

// Everything one forward call of one layer reads and writes (compute-device memory, activation dtype).
struct LayerIO {
    ops::Compute* ops = nullptr;       // the device's ops
    std::vector<const uint16_t*> w;    // fp16 weights, in the order of the layer's weight specs
    std::vector<PackedWeight> packed;  // empty, or parallel to w: where bytes is set (w null), multiply compressed
    int64_t batch = 0;                 // sequences in this GPU batch
    int64_t seq = 0;                   // tokens per sequence this step: prompt_len at prefill, 1 at decode
    int64_t past = 0;                  // cached positions before this step
    const uint8_t* mask = nullptr;     // (batch, mask_stride), columns [0, past + seq) valid
    int64_t mask_stride = 0;

    const int32_t* ids = nullptr;  // InputEmbed: (batch, seq)
    const void* x = nullptr;       // (batch, seq, h)
    void* y = nullptr;             // (batch, seq, h); OutputEmbed: logits (batch, vocab) of the last position

    // Attention: per-sequence cache rows (host array); this layer writes its new K and V rows through them.
    const ops::KvView* kv = nullptr;  // (batch,)
    Workspace ws{};
};

class Layer {
public:
    virtual ~Layer() = default;
    virtual std::string name() const = 0;
    virtual std::vector<WeightSpec> weights() const = 0;
    virtual bool has_cache() const { return false; }
    virtual bool is_input() const { return false; }
    virtual bool is_output() const { return false; }
    virtual void forward(const LayerIO& io) const = 0;
};

// The layer list of `cfg`; separate_attention_mlp picks SelfAttention + MLP (FlexLLMGen's sep_layer) or
// one Transformer layer per decoder layer.
std::vector<std::unique_ptr<Layer>> build_layers(const OptConfig& cfg, bool separate_attention_mlp);

}  // namespace flexrt::opt
