#include "pipeline_partition.hpp"

#include <flexrt/status.hpp>

#include <string>

namespace flexrt {

std::vector<StageSlice> partition_layers(int64_t decoder_layers, int64_t entries_per_layer, int64_t ranks) {
    if (ranks < 1 || decoder_layers < ranks)
        FLEXRT_THROW(FLEXRT_STATUS_INVALID_ARGUMENT, "a pipeline of " + std::to_string(ranks) +
                                                         " stages needs at least as many decoder layers; the model has " +
                                                         std::to_string(decoder_layers));
    if (entries_per_layer != 1 && entries_per_layer != 2)
        FLEXRT_THROW(FLEXRT_STATUS_INVALID_ARGUMENT,
                     "a decoder layer is 1 or 2 layer-list entries, not " + std::to_string(entries_per_layer));
    std::vector<StageSlice> out;
    int64_t at = 1;  // entry 0 is the input embedding, on stage 0
    for (int64_t r = 0; r < ranks; ++r) {
        const int64_t layers = decoder_layers / ranks + (r < decoder_layers % ranks ? 1 : 0);
        StageSlice s{at, at + layers * entries_per_layer};
        if (r == 0) s.begin = 0;
        if (r == ranks - 1) s.end += 1;  // the output embedding
        at += layers * entries_per_layer;
        out.push_back(s);
    }
    return out;
}

std::vector<std::unique_ptr<opt::Layer>> stage_layers(const opt::OptConfig& model, bool separate_attention_mlp, const EngineStage& stage) {
    auto layers = opt::build_layers(model, separate_attention_mlp);
    if (!stage.layers) return layers;
    const StageSlice sl = *stage.layers;
    if (sl.begin < 0 || sl.end > static_cast<int64_t>(layers.size()) || sl.begin >= sl.end)
        FLEXRT_THROW(FLEXRT_STATUS_INVALID_ARGUMENT, "a stage of layer-list entries [" + std::to_string(sl.begin) + ", " +
                                                         std::to_string(sl.end) + ") of " + std::to_string(layers.size()));
    layers.erase(layers.begin() + sl.end, layers.end());
    layers.erase(layers.begin(), layers.begin() + sl.begin);
    return layers;
}

}  // namespace flexrt
