#include "cost_model.hpp"

#include "models/opt/opt_weights.hpp"

#include <algorithm>

namespace flexrt::planner {
namespace {

double share(double percent) { return percent / 100.0; }

}  // namespace

double LayerCost::overlapped() const { return std::max({compute, host_to_gpu, gpu_to_host, disk}); }

LayerCost layer_cost(const opt::OptConfig& m, const Policy& p, const Workload& w, const HardwareProfile& hw, int64_t step) {
    const double h = static_cast<double>(m.hidden_size), f = static_cast<double>(m.ffn_size);
    const double b = static_cast<double>(p.gpu_batch_size), k = static_cast<double>(p.num_gpu_batches);
    const bool prefill = step == 0;
    const double tokens = prefill ? static_cast<double>(w.prompt_len) : 1.0;           // new tokens a sequence computes
    const double past = prefill ? 0.0 : static_cast<double>(w.prompt_len + step - 1);  // cached tokens it attends to
    const double elem = hw.gpu ? 2.0 : 4.0;                                            // bytes of an activation

    // One attention + MLP layer of one GPU batch.
    const double params = 4 * h * h + 2 * h * f;
    const double weight_bytes = params * 2 * (p.compress_weights ? kPackedRatio : 1.0);
    const double gemm_flops = 2 * b * tokens * params;
    const double attn_flops = prefill ? 2 * b * tokens * tokens * h : 4 * b * past * h;
    const double kv_ratio = p.compress_cache ? kPackedRatio : 1.0;
    const double kv_bytes = b * past * 2 * h * 2 * kv_ratio;  // the past K and V the step reads
    const double kv_new = b * tokens * 2 * h * 2 * kv_ratio;  // the rows the step writes
    const double hidden = b * tokens * h * elem;              // a layer's input (and output)
    const double cg = share(p.cache.gpu), cc = share(p.cache.cpu), cd = 1 - cg - cc;
    const double wg = share(p.weights.gpu), wc = share(p.weights.cpu), wd = 1 - wg - wc;
    const double ag = share(p.activations.gpu);

    LayerCost c;
    // Compute: GEMMs at the device's rate, or as fast as its memory streams the weights (decode); attention
    // over the cache on the device, or on host threads where cpu_cache_compute keeps it.
    const double on_device_kv = hw.gpu && p.cpu_cache_compute ? cg : 1.0;
    const double gemm = std::max(gemm_flops / hw.gemm_flops, weight_bytes / hw.mem_bps);
    const double attn = std::max(attn_flops * on_device_kv / hw.gemm_flops, kv_bytes * on_device_kv / hw.mem_bps) +
                        kv_bytes * (1 - on_device_kv) / hw.cpu_attention_bps;
    const double elementwise = 12 * hidden / hw.mem_bps;  // layer norms, bias, activation, residual: a few passes
    const double host_attention = kv_bytes * (1 - on_device_kv) / hw.cpu_attention_bps;
    const double efficiency = prefill ? hw.prefill_efficiency : hw.decode_efficiency;
    c.compute = k * ((gemm + attn - host_attention + elementwise) / efficiency + host_attention + hw.layer_overhead_s);

    // Links. The weights once per step (all batches share them), the cache and hidden states per batch.
    const double h2d = hw.gpu ? hw.h2d_bps : hw.mem_bps / 2, d2h = hw.gpu ? hw.d2h_bps : hw.mem_bps / 2;
    double in = weight_bytes * (wc + wd), out = 0;
    if (!(hw.gpu && p.cpu_cache_compute)) in += k * kv_bytes * (cc + cd);  // the cache comes to the device to be attended
    out += k * kv_new * (cc + cd);
    in += k * hidden * (1 - ag), out += k * hidden * (1 - ag);
    c.host_to_gpu = in / h2d;
    c.gpu_to_host = out / d2h;
    c.disk = (weight_bytes * wd + k * kv_bytes * cd) / hw.disk_read_bps + k * kv_new * cd / std::max(hw.disk_write_bps, 1.0);
    return c;
}

MemoryPlan memory_of(const opt::OptConfig& model, const Policy& policy, const Workload& w, bool gpu) {
    static const Group4Format format{sizeof(Group4Format), 4, 64, 0, 0};
    opt::DummyWeights weights(0);
    return plan_memory(model, policy, w.prompt_len, w.gen_len, gpu ? 2 : 4,
                       policy.compress_weights || policy.compress_cache ? &format : nullptr, weights);
}

Prediction predict(const opt::OptConfig& m, const Policy& p, const Workload& w, const HardwareProfile& hw, bool overlap, bool with_memory) {
    Prediction r;
    const double layers = static_cast<double>(m.num_layers);
    auto step_time = [&](int64_t step) {
        const LayerCost c = layer_cost(m, p, w, hw, step);
        return layers * (overlap ? c.overlapped() : c.serial());
    };
    // The output embedding (tied to the input's, on the weights' tiers like a layer's): a vocab-wide GEMM per
    // new token of each sequence's last position.
    const double vocab_bytes = static_cast<double>(m.vocab_size) * static_cast<double>(m.embed_dim()) * 2;
    const double head = static_cast<double>(p.num_gpu_batches) *
                        std::max(2.0 * static_cast<double>(p.gpu_batch_size) * vocab_bytes / 2 / hw.gemm_flops, vocab_bytes / hw.mem_bps);
    r.prefill_s = step_time(0) + head;
    // Decode steps: each one, or 8 spread evenly when there are more (a step's cost is smooth in its length).
    const int64_t steps = w.gen_len - 1, samples = std::min<int64_t>(steps, 8);
    for (int64_t s = 0; s < samples; ++s) r.decode_s += step_time(1 + s * steps / samples) + head;
    if (samples) r.decode_s *= static_cast<double>(steps) / static_cast<double>(samples);
    const LayerCost d = layer_cost(m, p, w, hw, std::max<int64_t>(1, w.gen_len / 2));
    const double most = d.overlapped();
    r.bound = most == d.compute ? "compute" : most == d.disk ? "disk" : "PCIe";
    const double tokens = static_cast<double>(p.block_size() * w.gen_len);
    r.total_throughput = tokens / r.total_s();
    r.decode_throughput = w.gen_len > 1 ? static_cast<double>(p.block_size() * (w.gen_len - 1)) / r.decode_s : 0;
    if (with_memory) add_memory(r, m, p, w, hw.gpu);
    return r;
}

void add_memory(Prediction& r, const opt::OptConfig& model, const Policy& policy, const Workload& w, bool gpu) {
    const MemoryPlan plan = memory_of(model, policy, w, gpu);
    r.compute_bytes = plan.total(TierKind::compute);
    r.host_bytes = plan.total(TierKind::host);
    r.disk_bytes = plan.total(TierKind::disk);
}

void fit_engine_runs(HardwareProfile& hw, const opt::OptConfig& m, const EngineRun& small, const EngineRun& large) {
    hw.prefill_efficiency = hw.decode_efficiency = 1;
    hw.layer_overhead_s = 0;
    const Prediction ws = predict(m, small.policy, small.w, hw, true, false), wl = predict(m, large.policy, large.w, hw, true, false);
    const double layers = static_cast<double>(m.num_layers), steps = static_cast<double>(large.w.gen_len - 1);
    // Decode: time = layers * steps * overhead + work / efficiency, for both runs (the same model and steps).
    // Where the two runs do not fit that line - the model's work does not grow with the batch as the device's
    // time does (a CPU's GEMMs at a few rows) - the large run alone: no fixed cost, all of it work.
    double e = wl.decode_s / large.decode_s, overhead = 0;
    if (wl.decode_s > ws.decode_s && large.decode_s > small.decode_s && steps > 0) {
        const double fitted = (wl.decode_s - ws.decode_s) / (large.decode_s - small.decode_s);
        const double fixed = (small.decode_s - ws.decode_s / fitted) / (layers * steps);
        if (fitted > 0.1 && fitted < 1.5 && fixed >= 0) e = fitted, overhead = fixed;
    }
    hw.decode_efficiency = std::clamp(e, 0.02, 2.0);
    hw.layer_overhead_s = overhead;
    // Prefill: the same overhead once per layer, the rest at its own efficiency.
    const double work = large.prefill_s - layers * hw.layer_overhead_s;
    hw.prefill_efficiency = std::clamp(wl.prefill_s / (work > 0 ? work : large.prefill_s), 0.02, 2.0);
}

}  // namespace flexrt::planner
