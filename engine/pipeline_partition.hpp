// Pipeline parallelism's split of a model over ranks (FlexLLMGen's dist_flex_opt, reference section 7.2): the
// decoder layers as evenly as possible, the first (layers mod ranks) stages one more; stage 0 also holds the
// input embedding, the last stage the output embedding. An attention and its MLP (sep_layer) stay together.
#pragma once

#include "models/opt/opt_layers.hpp"

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

namespace flexrt {

// One stage: the layer-list entries [begin, end) it runs (the list of opt::build_layers: input embedding,
// then one or two entries per decoder layer, then the output embedding).
struct StageSlice {
    int64_t begin = 0, end = 0;
    int64_t size() const { return end - begin; }
};

// The slices of `ranks` stages over a model of `decoder_layers` decoder layers, each `entries_per_layer` list
// entries (2 with separate attention and MLP, else 1). Throws when there are more ranks than decoder layers.
std::vector<StageSlice> partition_layers(int64_t decoder_layers, int64_t entries_per_layer, int64_t ranks);

// The part of the model an engine runs: the whole layer list, or a pipeline stage's slice of it
// with `micro_batches` blocks of policy.block_size() sequences, each its own cache
// and hidden states, so that the stages work on different micro-batches at once (pipeline_stage.hpp).
struct EngineStage {
    std::optional<StageSlice> layers;  // none: the whole list
    int64_t micro_batches = 1;
    bool message_on_host = false;  // the stage's hidden states travel through host memory (TCP), else the compute device's
};

// The layer list an engine runs: opt::build_layers, cut to the stage's slice. Throws when the slice is empty or
// outside the list. The engine and the memory plan both take their layers from here.
std::vector<std::unique_ptr<opt::Layer>> stage_layers(const opt::OptConfig& model, bool separate_attention_mlp, const EngineStage& stage);

}  // namespace flexrt
