#include "memory_plan.hpp"

#include "placement.hpp"

#include "models/opt/opt_layers.hpp"
#include "ops/group4.hpp"

#include <map>
#include <optional>

namespace flexrt {

uint64_t MemoryPlan::total(TierKind tier) const {
    uint64_t sum = 0;
    for (const MemoryItem& i : items) sum += i.tier == tier ? i.bytes : 0;
    return sum;
}

MemoryPlan plan_memory(const opt::OptConfig& model, const Policy& policy, int64_t prompt_len, int64_t gen_len, uint64_t elem,
                       const Group4Format* format, opt::WeightSource& weights, const EngineStage& stage) {
    MemoryPlan plan;
    std::map<std::pair<TierKind, std::string>, size_t> at;  // the item of (tier, what)
    auto add = [&](TierKind tier, const std::string& what, uint64_t bytes) {
        if (bytes == 0) return;
        const auto key = std::make_pair(tier, what);
        if (auto it = at.find(key); it != at.end()) return void(plan.items[it->second].bytes += bytes);
        at[key] = plan.items.size();
        plan.items.push_back({tier, what, bytes});
    };
    const bool packs = policy.compress_weights && format;
    auto packed_layout = [&](const Shape& shape) -> std::optional<ops::Group4Layout> {
        if (!packs || shape.size() < 2) return std::nullopt;
        return ops::Group4Layout::of_tensor({shape.begin(), shape.end()}, format->group_dim, format->group_size, format->symmetric != 0);
    };
    const uint64_t E = elem, H = static_cast<uint64_t>(model.hidden_size), F = static_cast<uint64_t>(model.ffn_size);
    // ngb: the GPU batches whose cache, hidden states and masks are kept (every micro-batch's).
    const int64_t gbs = policy.gpu_batch_size, ngb = policy.num_gpu_batches * stage.micro_batches, max_len = prompt_len + gen_len - 1;
    const uint64_t row_bytes =
        policy.compress_cache && format
            ? static_cast<uint64_t>(ops::Group4Layout::rows(1, model.hidden_size, format->group_size, format->symmetric != 0).slab_bytes)
            : H * E;
    const auto layers = stage_layers(model, policy.separate_attention_mlp, stage);

    // Weights: each layer's blob, split byte-exactly; the slots hold the part off the compute device.
    uint64_t slot_bytes = 0, dequant_bytes = 0;
    for (const auto& layer : layers) {
        const auto specs = layer->weights();
        std::vector<uint64_t> offsets, sizes;
        uint64_t total = 0, fp16_of_packed = 0;
        bool any_packed = false;
        std::vector<bool> packed;
        for (const auto& s : specs) {
            const auto pk = packed_layout(s.shape);
            total = tensor_span(total);
            offsets.push_back(total);
            sizes.push_back(pk ? pk->bytes() : static_cast<uint64_t>(numel(s.shape)) * 2);
            total += sizes.back();
            packed.push_back(pk.has_value());
            if (pk) fp16_of_packed += tensor_span(static_cast<uint64_t>(pk->elements()) * 2), any_packed = true;
        }
        const uint64_t gpu_end = split_point(total, policy.weights.gpu);
        const uint64_t cpu_end = std::max(gpu_end, split_point(total, policy.weights.gpu + policy.weights.cpu));
        bool direct = true;  // the disk part is read straight from the weight files
        for (size_t n = 0; n < specs.size(); ++n)
            if (offsets[n] + static_cast<uint64_t>(numel(specs[n].shape)) * 2 > cpu_end && (packed[n] || !weights.locate(specs[n])))
                direct = false;
        add(TierKind::compute, "weights", gpu_end);
        add(TierKind::host, "weights", cpu_end - gpu_end);
        if (!direct) add(TierKind::disk, "weights", total - cpu_end);
        uint64_t copy_from = gpu_end;  // moved back to the start of the tensor gpu_end cuts
        for (size_t n = 0; n < specs.size(); ++n)
            if (offsets[n] < gpu_end && gpu_end < offsets[n] + sizes[n]) copy_from = offsets[n];
        if (gpu_end < total) slot_bytes = std::max(slot_bytes, total - copy_from);
        if (any_packed) dequant_bytes = std::max(dequant_bytes, fp16_of_packed);
    }
    add(TierKind::compute, "weight slots (" + std::to_string(kWeightSlots) + ", the layers being loaded)", kWeightSlots * slot_bytes);
    add(TierKind::compute, "a layer's weights dequantized", dequant_bytes);

    // KV cache: per layer that has one and GPU batch, the batch's sequences split over the tiers.
    const auto cache_groups = split_sequences(gbs, policy.cache);
    const auto cache_layers =
        static_cast<uint64_t>(std::count_if(layers.begin(), layers.end(), [](const auto& l) { return l->has_cache(); }));
    uint64_t cache_slot = 0;
    for (const SeqGroup& g : cache_groups) {
        const uint64_t bytes = 2 * static_cast<uint64_t>(max_len * g.count) * row_bytes;
        add(g.tier, "KV cache", cache_layers * static_cast<uint64_t>(ngb) * bytes);
        if (loads_cache(g.tier, policy)) cache_slot += bytes;
    }
    if (cache_layers) {
        add(TierKind::compute, "cache slots (2, off-device cache read here)", 2 * cache_slot);
        add(TierKind::compute, "new KV rows (2)", 2 * 2 * static_cast<uint64_t>(prompt_len * gbs) * H * E);
        if (policy.compress_cache && format)
            add(TierKind::compute, "new KV rows compressed (2)", 2 * 2 * static_cast<uint64_t>(prompt_len * gbs) * row_bytes);
    }

    // Hidden states, slots, masks, workspace.
    for (const SeqGroup& g : split_sequences(gbs, policy.activations))
        add(g.tier, "hidden states", static_cast<uint64_t>(ngb) * static_cast<uint64_t>(g.count * prompt_len) * H * E);
    const uint64_t rows = static_cast<uint64_t>(gbs * prompt_len);
    add(TierKind::compute, "input and output slots (2 each)",
        2 * (rows * H * E + std::max(rows * H, static_cast<uint64_t>(gbs) * static_cast<uint64_t>(model.vocab_size)) * E));
    add(TierKind::compute, "attention masks", static_cast<uint64_t>(ngb * gbs * max_len));
    add(TierKind::compute, "workspace", (5 * rows * H + rows * F) * E);
    if (!layers.front()->is_input() || !layers.back()->is_output())
        add(stage.message_on_host ? TierKind::host : TierKind::compute, "stage message", rows * H * E);
    return plan;
}

}  // namespace flexrt
