#include "engine.hpp"

#include "placement.hpp"

#include "core/src/host_log.hpp"
#include "core/src/trace.hpp"
#include "packed_weight_store.hpp"

#include "core/src/interrupt.hpp"
#include "core/src/tensor_handle.hpp"

#include "ops/group4.hpp"
#include "ops/linear_group4.hpp"
#include "ops/sampling.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <optional>

namespace flexrt {
namespace {

using Clock = std::chrono::steady_clock;
// The (i, j, k) a slot was last filled or computed for; reading a slot with another tag is a schedule bug.
struct Tag {
    int32_t i = -1, j = -1, k = -1;
    bool operator==(const Tag&) const = default;
};

std::string tag_text(int32_t i, int32_t j, int32_t k) {
    char text[48];
    std::snprintf(text, sizeof text, "(%d, %d, %d)", i, j, k);
    return text;
}

}  // namespace

struct Engine::Impl {
    Impl(const opt::OptConfig& m, const Policy& p, int64_t prompt, int64_t gen, EngineTiers t, ProgressFn prog, int64_t micro)
        : model(m),
          policy(p),
          prompt_len(prompt),
          gen_len(gen),
          max_len(prompt + gen - 1),
          gbs(p.gpu_batch_size),
          ngb(p.num_gpu_batches),
          batches(p.num_gpu_batches * micro),
          h(m.hidden_size),
          tiers(t),
          progress(std::move(prog)),
          elem(t.ops.act_bytes()) {}

    opt::OptConfig model;
    Policy policy;
    // ngb: the GPU batches of a micro-batch, which the schedule sees; batches: of all micro-batches (a pipeline
    // stage keeps several in flight, pipeline_stage.hpp; else one), each with its own cache, hidden states, mask.
    int64_t prompt_len, gen_len, max_len, gbs, ngb, batches, h, L = 0;
    EngineTiers tiers;
    ProgressFn progress;
    const uint64_t elem;  // bytes of an activation (hidden states, KV cache): 4 on the CPU, 2 on a GPU

    IDevice& device(TierKind t) {
        switch (t) {
        case TierKind::compute: return tiers.compute;
        case TierKind::host: return tiers.host;
        case TierKind::disk: return tiers.disk;
        }
        return tiers.compute;
    }
    // An event that completes when the compute device has run everything issued so far.
    Event compute_done() {
        Event e = Event::pending();
        auto* held = new Event(e);
        tiers.ops.when_done(
            [](void* p) {
                std::unique_ptr<Event> ev(static_cast<Event*>(p));
                ev->complete(Status::ok());
            },
            held);
        return e;
    }
    Event join(std::vector<Event> events) {
        std::erase_if(events, [](const Event& e) { return e.ready() && e.wait().is_ok(); });  // nothing to wait for
        if (events.empty()) return {};
        if (events.size() == 1) return events[0];
        return tiers.transfers.run([] { return Status::ok(); }, std::move(events));
    }
    // A copy between a tier group's home and a slot. Both on the compute device: queued on its stream, in
    // op order, so the host never waits for it (the returned event is already complete); else a transfer
    // that starts once `after` completed.
    Event copy(TierKind home, View dst, View src, std::vector<Event> after) {
        if (home != TierKind::compute) return tiers.transfers.copy(dst, src, std::move(after));
        tiers.ops.copy(dst.buffer->data() + dst.offset, src.buffer->data() + src.offset, dst.bytes);
        return {};
    }
    // Whether a cache group on this tier is copied to the compute device for attention (else it is read
    // where it is: on the compute device, or in host memory under policy.cpu_cache_compute).
    bool loads_cache(TierKind t) const { return flexrt::loads_cache(t, policy); }
    bool stops() const { return opts.stop_token >= 0 || static_cast<bool>(opts.stop_when); }  // sequences may end early
    // A GPU batch whose sequences have all stopped costs nothing from then on: every primitive of (i, k) returns
    // at once (its tokens stay pad). Decided once per (i, k), at its first primitive - the batch's tokens of step
    // i - 1 are stored by then in every schedule, as step i's input needs them - so that all of (i, k)'s
    // primitives agree.
    std::vector<int32_t> skip_step;  // per GPU batch: the step `skip` was decided for
    std::vector<uint8_t> skip;
    bool skips(int32_t i, int32_t k) {
        if (i == 0 || !stops()) return false;
        if (skip_step[k] != i) {
            skip_step[k] = i;
            skip[k] = result->all_stopped(k * gbs, gbs);
            result->batch_steps_skipped += skip[k];
        }
        return skip[k];
    }
    // The part of the run the schedule sees (run_window): steps [step, step + steps) of micro-batch `micro`. The
    // primitives take (i, j, k) relative to it - a slot's parity counts within it, as the schedule alternates
    // them - and `global` turns them into the run's own step and GPU batch.
    int32_t window_step = 0, window_steps = 0;
    int64_t window_first = 0;  // the micro-batch's first GPU batch
    void global(int32_t& i, int32_t& k) const { i += window_step, k += static_cast<int32_t>(window_first); }
    // A primitive's span on the --trace timeline, named by its global (step, layer, GPU batch) as the step spans are.
    trace::Span span(const char* what, int32_t i, int32_t j, int32_t k) const {
        global(i, k);
        return trace::Span("engine", what, i, j, k);
    }
    int slot(int32_t j, int32_t k) const { return static_cast<int>((j * ngb + k) % 2); }
    int64_t seq_len(int32_t i) const { return i == 0 ? prompt_len : 1; }
    int64_t past_len(int32_t i) const { return i == 0 ? 0 : prompt_len + i - 1; }
    bool wrap_load(int32_t& i, int32_t& j, int32_t& k) const {
        if (k >= ngb) k = 0, ++j;
        if (j >= L) j = 0, ++i;
        return i >= 0 && i < window_steps && j >= 0 && k >= 0;
    }
    bool wrap_store(int32_t& i, int32_t& j, int32_t& k) const {
        if (k < 0) k = static_cast<int32_t>(ngb - 1), --j;
        if (j < 0) j = static_cast<int32_t>(L - 1), --i;
        return i >= 0 && i < window_steps && j < L && k < ngb;
    }

    // --- weights: each layer's tensors form one blob, split byte-exactly: [0, gpu_end) on the compute
    // device, [gpu_end, cpu_end) in host memory, the rest on disk (an offload file or the weight files).
    struct WeightHome {
        std::vector<TensorHandle> tensors;
        std::vector<uint64_t> offsets;  // of each tensor in the blob
        uint64_t total = 0, gpu_end = 0;
        uint64_t copy_from = 0;  // the slot covers [copy_from, total): gpu_end moved back to its tensor's start
        std::unique_ptr<Buffer> resident, host, disk;
        bool fully_resident() const { return gpu_end == total; }
    };
    std::vector<WeightHome> weights;
    // policy.compress_weights: each >= 2-d weight's group4 layout ([layer][tensor]; empty: stored as fp16),
    // and the compute-device buffer a layer's compressed weights are dequantized into.
    ICompressor* compressor = nullptr;
    Group4Format format{};
    std::vector<std::vector<std::optional<ops::Group4Layout>>> packed;
    std::unique_ptr<Buffer> dequantized;
    int32_t dequantized_layer = -1;  // whose weights `dequantized` holds
    std::optional<ops::Group4Layout> packed_layout(const Shape& shape) const {
        if (!policy.compress_weights || shape.size() < 2) return std::nullopt;
        return ops::Group4Layout::of_tensor({shape.begin(), shape.end()}, format.group_dim, format.group_size, format.symmetric != 0);
    }
    // Weight slots (kWeightSlots), filled round robin; a layer's compute finds its weights by the slot's tag.
    std::array<std::unique_ptr<Buffer>, kWeightSlots> weight_slot;
    std::array<Event, kWeightSlots> weight_ready;
    std::array<Tag, kWeightSlots> weight_tag;
    int next_weight_slot = 0;
    int weight_slot_holding(const Tag& t) const {
        for (int s = 0; s < kWeightSlots; ++s)
            if (weight_tag[s] == t) return s;
        return -1;
    }
    // The compute device's work runs ahead of the host: these say when it has finished with a slot parity
    // (inputs read, outputs written) and with a weight slot, so transfers into them wait for it.
    std::array<Event, 2> computed;
    std::array<Event, kWeightSlots> weights_read;

    // --- KV cache: per (j, k) and tier group, [K (max_len, count, row) | V (max_len, count, row)], a row
    // being h activations, or under policy.compress_cache one group4 block of them (Group4Layout::rows) ---
    uint64_t row_bytes = 0;
    std::optional<ops::Group4Layout> cache_rows;  // compress_cache: the layout of one row
    ops::Group4Layout packed_rows(int64_t n) const { return ops::Group4Layout::rows(n, h, cache_rows->group_size, cache_rows->symmetric); }
    std::array<std::unique_ptr<Buffer>, 2> kv_packed;  // compress_cache: the new rows compressed, on their way home
    struct GroupBuffer {
        SeqGroup group;
        std::unique_ptr<Buffer> buf;
        uint64_t slot_offset = 0;  // where a loaded copy sits in a cache slot (non-compute groups)
    };
    std::vector<SeqGroup> cache_groups, act_groups;
    std::vector<std::vector<std::vector<GroupBuffer>>> cache_home;  // [j][k][group]
    std::vector<std::vector<Event>> cache_written;                  // [j][k]
    std::array<std::unique_ptr<Buffer>, 2> cache_slot;
    std::array<Event, 2> cache_ready;
    std::array<Tag, 2> cache_tag;
    uint64_t cache_slot_bytes = 0;
    // This step's new K, V rows: per group at 2 * prompt_len * first * h, [K (seq, count, h) | V (...)].
    std::array<std::unique_ptr<Buffer>, 2> kv_new;
    std::array<Event, 2> kv_new_free;
    std::array<Tag, 2> kv_new_tag;

    // --- hidden states: per k and tier group, (count, seq, h) ---
    std::vector<std::vector<GroupBuffer>> hidden_home;  // [k][group]
    std::vector<Event> hidden_written;                  // [k]
    std::array<std::unique_ptr<Buffer>, 2> in_slot;     // (gbs, seq, h) floats, or (gbs, seq) token ids
    std::array<Event, 2> in_ready;
    std::array<Tag, 2> in_tag;
    std::array<std::unique_ptr<Buffer>, 2> out_slot;  // (gbs, seq, h), or logits (gbs, vocab)
    std::array<Event, 2> out_free;
    std::array<Tag, 2> out_tag;
    std::array<std::vector<int32_t>, 2> out_ids;  // sampled tokens (gbs,)

    // False when every weight, cache and hidden-state home is on the compute device: no transfer then
    // waits for the compute stream, and the engine asks it for no completion events.
    bool transfers_follow_compute = true;
    std::vector<std::unique_ptr<Buffer>> masks;    // [k]: (gbs, max_len) u8 on the compute device
    std::vector<std::vector<uint8_t>> masks_host;  // [k]: their host copies, uploaded when changed
    std::vector<int32_t> ids_host;                 // (gbs, seq) token ids on their way to an input slot
    std::vector<double> draws;                     // (gbs,) uniforms for sampling
    std::unique_ptr<Buffer> workspace;
    opt::Workspace ws{};
    std::unique_ptr<Buffer> message;  // a pipeline stage's hidden states from the stage before or for the next

    // Copies GPU batch k's hidden states of step i between their home and `message`, and waits for it.
    void move_hidden(int32_t i, int64_t k, bool into_home) {
        const uint64_t E = elem, H = h, seq = seq_len(i);
        std::vector<Event> ev;
        for (const auto& g : hidden_home[k]) {
            const View home{g.buf.get(), 0, g.group.count * seq * H * E}, msg{message.get(), g.group.first * seq * H * E, home.bytes};
            // A message in host memory (a transport of host buffers) moves by the transfer engine whatever the home.
            const TierKind via = message->memory() == MemoryKind::device ? g.group.tier : TierKind::host;
            ev.push_back(into_home ? copy(via, home, msg, {hidden_written[k]}) : copy(via, msg, home, {hidden_written[k]}));
        }
        hidden_written[k] = join(std::move(ev));
        tiers.ops.synchronize();
        hidden_written[k].wait().throw_if_error();
    }

    // --- per generate() ---
    std::vector<int32_t> prompt_ids;  // (N, prompt_len), left-padded
    GenerateOptions opts;
    GenerationResult* result = nullptr;
    Clock::time_point step_start;
    int32_t steps_ended = 0;
    std::string error;

    template <typename F>
    flexrt_status guard(F&& f) noexcept {
        try {
            if (interrupted()) {
                error = "interrupted by a signal";
                return FLEXRT_STATUS_CANCELLED;
            }
            Status s = f();
            if (s.is_ok()) return FLEXRT_STATUS_OK;
            error = s.message();
            return s.code();
        } catch (const Error& e) {
            error = e.what();
            return e.status();
        } catch (const std::bad_alloc&) {
            error = "out of host memory";
            return FLEXRT_STATUS_OUT_OF_MEMORY;
        } catch (const std::exception& e) {
            error = e.what();
            return FLEXRT_STATUS_INTERNAL;
        }
    }
};

// --- construction -----------------------------------------------------------------------------------

Engine::Engine(const opt::OptConfig& model, const Policy& policy, int64_t prompt_len, int64_t gen_len, EngineTiers tiers,
               opt::WeightSource& source, ProgressFn progress, ICompressor* compressor, PackedWeightStore* store, const EngineStage& stage)
    : impl_(std::make_unique<Impl>(model, policy, prompt_len, gen_len, tiers, std::move(progress), stage.micro_batches)) {
    Impl& m = *impl_;
    if (prompt_len + gen_len - 1 > model.max_seq_len)
        FLEXRT_THROW(FLEXRT_STATUS_INVALID_ARGUMENT, "run.prompt_len + run.gen_len - 1 = " + std::to_string(prompt_len + gen_len - 1) +
                                                         " exceeds the model's " + std::to_string(model.max_seq_len) + " positions");
    if (policy.compress_weights || policy.compress_cache) {
        if (!compressor)
            FLEXRT_THROW(
                FLEXRT_STATUS_INVALID_ARGUMENT,
                std::string("policy.") + (policy.compress_weights ? "compress_weights" : "compress_cache") + " needs a compress plugin");
        const auto* f = static_cast<const Group4Format*>(compressor->get_extension(kGroup4Extension, 1));
        if (!f || f->struct_size < sizeof(Group4Format) || f->num_bits != 4)
            FLEXRT_THROW(FLEXRT_STATUS_UNSUPPORTED,
                         "the compress plugin does not write the flexrt.group4 format (4-bit), "
                         "the only one flexrt's compute devices dequantize");
        m.compressor = compressor;
        m.format = *f;
    }
    // The cache is grouped along each token's row of h values: along head_dim when head_dim is a multiple
    // of the group size (OPT-1.3b and larger: head_dim 64 or 128).
    if (policy.compress_cache) m.cache_rows = ops::Group4Layout::rows(1, model.hidden_size, m.format.group_size, m.format.symmetric != 0);
    m.row_bytes = m.cache_rows ? static_cast<uint64_t>(m.cache_rows->slab_bytes) : static_cast<uint64_t>(model.hidden_size) * m.elem;
    if (stage.micro_batches < 1)
        FLEXRT_THROW(FLEXRT_STATUS_INVALID_ARGUMENT, "micro-batches: " + std::to_string(stage.micro_batches) + "; at least 1");
    layers_ = stage_layers(model, policy.separate_attention_mlp, stage);
    m.L = static_cast<int64_t>(layers_.size());
    auto say = [&](const std::string& s) {
        if (m.progress) m.progress(s);
    };

    // Every weight is checked before anything is allocated: a bad file fails in seconds, not after an hour.
    for (const auto& layer : layers_)
        for (const auto& spec : layer->weights()) source.check(spec);

    // The layout of every layer's weight blob first: the disk footprint is checked before anything is
    // allocated.
    struct BlobLayout {
        std::vector<uint64_t> offsets;
        uint64_t total = 0, gpu_end = 0, cpu_end = 0;
        bool direct = true;  // the disk part is read straight from the weight files
    };
    std::vector<BlobLayout> blobs;
    uint64_t disk_weights = 0;
    m.packed.resize(layers_.size());
    for (size_t j = 0; j < layers_.size(); ++j) {
        BlobLayout b;
        const auto specs = layers_[j]->weights();
        for (const auto& s : specs) {
            m.packed[j].push_back(m.packed_layout(s.shape));
            b.total = tensor_span(b.total);
            b.offsets.push_back(b.total);
            b.total += m.packed[j].back() ? m.packed[j].back()->bytes() : numel(s.shape) * 2;
        }
        b.gpu_end = split_point(b.total, policy.weights.gpu);
        b.cpu_end = std::max(b.gpu_end, split_point(b.total, policy.weights.gpu + policy.weights.cpu));
        for (size_t n = 0; n < specs.size(); ++n)  // compressed tensors are not what the weight files hold
            if (b.offsets[n] + numel(specs[n].shape) * 2 > b.cpu_end && (m.packed[j][n] || !source.locate(specs[n]))) b.direct = false;
        if (!b.direct) disk_weights += b.total - b.cpu_end;
        blobs.push_back(std::move(b));
    }
    const uint64_t E = m.elem, H = static_cast<uint64_t>(m.h);
    m.cache_groups = split_sequences(m.gbs, policy.cache);
    m.act_groups = split_sequences(m.gbs, policy.activations);
    uint64_t disk_cache = 0, disk_hidden = 0;
    const auto cache_layers = std::count_if(layers_.begin(), layers_.end(), [](const auto& l) { return l->has_cache(); });
    for (const auto& g : m.cache_groups)
        if (g.tier == TierKind::disk) disk_cache += cache_layers * m.batches * 2 * m.max_len * g.count * m.row_bytes;
    for (const auto& g : m.act_groups)
        if (g.tier == TierKind::disk) disk_hidden += m.batches * g.count * m.prompt_len * H * E;
    tiers.disk.check_free_space(
        disk_weights + disk_cache + disk_hidden,
        "weights " + gib_text(disk_weights) + ", KV cache " + gib_text(disk_cache) + ", hidden states " + gib_text(disk_hidden));

    // Weights.
    uint64_t slot_bytes = 0;
    const auto t0 = Clock::now();
    std::vector<std::byte> staging, packed_staging;
    uint64_t dequant_bytes = 0;
    for (size_t j = 0; j < layers_.size(); ++j) {
        if (interrupted()) FLEXRT_THROW(FLEXRT_STATUS_CANCELLED, "interrupted by a signal while placing weights");
        const auto specs = layers_[j]->weights();
        const BlobLayout& b = blobs[j];
        Impl::WeightHome w;
        w.offsets = b.offsets;
        w.total = b.total;
        w.gpu_end = b.gpu_end;
        const uint64_t cpu_end = b.cpu_end;
        const bool direct = b.direct;
        uint64_t fp16_of_packed = 0;  // what this layer's compressed tensors take once dequantized
        for (size_t n = 0; n < specs.size(); ++n) {
            const auto& pk = m.packed[j][n];
            w.tensors.push_back(pk ? TensorHandle{specs[n].name, DType::u8, {static_cast<int64_t>(pk->bytes())}, {}}
                                   : TensorHandle{specs[n].name, DType::f16, specs[n].shape, {}});
            if (pk) fp16_of_packed += tensor_span(static_cast<uint64_t>(pk->elements()) * 2);
        }
        dequant_bytes = std::max(dequant_bytes, fp16_of_packed);
        const std::string what = "weights of layer " + std::to_string(j) + " (" + layers_[j]->name() + ")";
        if (w.gpu_end) w.resident = tiers.compute.allocate(w.gpu_end, what);
        if (cpu_end > w.gpu_end) w.host = tiers.host.allocate(cpu_end - w.gpu_end, what);
        if (w.total > cpu_end && !direct) w.disk = tiers.disk.allocate_partial(w.total - cpu_end, "weights-" + layers_[j]->name());
        w.copy_from = w.gpu_end;
        for (size_t n = 0; n < specs.size(); ++n) {
            TensorHandle& t = w.tensors[n];
            const uint64_t a = w.offsets[n], b = a + t.bytes();
            if (a < w.gpu_end && w.gpu_end < b) w.copy_from = a;
            auto cut = [&](uint64_t lo, uint64_t hi, Buffer* buf, uint64_t buf_base) {
                lo = std::max(lo, a), hi = std::min(hi, b);
                if (lo < hi) t.segments.push_back({buf, lo - buf_base, hi - lo, lo - a});
            };
            cut(0, w.gpu_end, w.resident.get(), 0);
            cut(w.gpu_end, cpu_end, w.host.get(), w.gpu_end);
            if (direct) {
                if (b > cpu_end) {
                    const opt::FileLocation loc = *source.locate(specs[n]);
                    const uint64_t lo = std::max(a, cpu_end);
                    t.segments.push_back({loc.file, loc.offset + (lo - a), b - lo, lo - a});
                }
            } else {
                cut(cpu_end, w.total, w.disk.get(), cpu_end);
            }
            // Fill every segment that is not the weight file itself.
            if (a >= cpu_end && direct) continue;
            const auto& pk = m.packed[j][n];
            if (!pk && t.segments.size() == 1 && t.segments[0].buffer->data() && t.segments[0].buffer->memory() != MemoryKind::device) {
                const Segment& seg = t.segments[0];  // wholly in host memory: read where it lives, no staging copy
                source.read(specs[n], seg.buffer->data() + seg.offset);
                continue;
            }
            if (!pk) {
                staging.resize(static_cast<size_t>(numel(specs[n].shape)) * 2);
                source.read(specs[n], staging.data());
            } else {  // compressed once (or earlier, into the store); the tiers hold and move the compressed bytes
                staging.resize(t.bytes());
                const std::string identity = store ? source.identity(specs[n]) : std::string();
                if (!store || !store->load(t.name, *pk, identity, staging.data())) {
                    packed_staging.resize(static_cast<size_t>(numel(specs[n].shape)) * 2);
                    source.read(specs[n], packed_staging.data());
                    flexrt_tensor_desc d{sizeof(flexrt_tensor_desc), FLEXRT_DTYPE_F16, static_cast<uint32_t>(specs[n].shape.size()), {}};
                    std::copy(specs[n].shape.begin(), specs[n].shape.end(), d.shape);
                    const flexrt_status st = m.compressor->compress(&d, packed_staging.data(), staging.data());
                    if (st != FLEXRT_STATUS_OK)
                        FLEXRT_THROW(st, "compressing " + t.name + ": the compress plugin returned " + flexrt_status_name(st) +
                                             (st == FLEXRT_STATUS_BAD_DATA ? " (a value that is not finite)" : ""));
                    if (store) store->save(t.name, *pk, identity, staging.data());
                }
            }
            for (const Segment& seg : t.segments) {
                if (seg.buffer->memory() == MemoryKind::device) {
                    tiers.ops.upload(seg.buffer->data() + seg.offset, staging.data() + seg.at, seg.bytes);
                } else if (seg.buffer->data()) {
                    std::memcpy(seg.buffer->data() + seg.offset, staging.data() + seg.at, seg.bytes);
                } else if (seg.buffer == w.disk.get()) {
                    Status s = disk_write(static_cast<DiskBuffer&>(*seg.buffer), seg.offset, staging.data() + seg.at, seg.bytes);
                    if (!s.is_ok()) FLEXRT_THROW(s.code(), "placing " + t.name + " on disk: " + s.message());
                }
            }
        }
        if (w.disk) static_cast<DiskBuffer&>(*w.disk).commit();  // flushed, and named as complete
        if (!w.fully_resident()) slot_bytes = std::max(slot_bytes, w.total - w.copy_from);
        m.weights.push_back(std::move(w));
        if (j + 1 == layers_.size() || (j + 1) % std::max<size_t>(1, layers_.size() / 10) == 0)
            say("placing weights: layer " + std::to_string(j + 1) + "/" + std::to_string(layers_.size()) + " (" +
                std::to_string(std::chrono::duration<double>(Clock::now() - t0).count()).substr(0, 5) + " s)");
    }
    for (int s = 0; s < kWeightSlots && slot_bytes; ++s) m.weight_slot[s] = tiers.compute.allocate(slot_bytes, "weight slot");
    if (dequant_bytes) m.dequantized = tiers.compute.allocate(dequant_bytes, "dequantized weights of a layer");

    // KV cache.
    m.cache_home.resize(layers_.size());
    m.cache_written.assign(layers_.size(), std::vector<Event>(m.batches));
    for (size_t j = 0; j < layers_.size(); ++j) {
        if (!layers_[j]->has_cache()) continue;
        m.cache_home[j].resize(m.batches);
        for (int64_t k = 0; k < m.batches; ++k) {
            uint64_t slot_offset = 0;
            for (const auto& g : m.cache_groups) {
                const uint64_t bytes = 2 * m.max_len * g.count * m.row_bytes;
                Impl::GroupBuffer gb{g, m.device(g.tier).allocate(bytes, "cache-" + layers_[j]->name() + "-batch" + std::to_string(k)), 0};
                if (m.loads_cache(g.tier)) gb.slot_offset = slot_offset, slot_offset += bytes;
                m.cache_home[j][k].push_back(std::move(gb));
            }
            m.cache_slot_bytes = slot_offset;
        }
    }
    const bool any_cache = std::any_of(layers_.begin(), layers_.end(), [](const auto& l) { return l->has_cache(); });
    for (int s = 0; s < 2; ++s) {
        if (m.cache_slot_bytes) m.cache_slot[s] = tiers.compute.allocate(m.cache_slot_bytes, "cache slot");
        if (any_cache) m.kv_new[s] = tiers.compute.allocate(2 * m.prompt_len * m.gbs * H * E, "new KV rows");
        if (any_cache && m.cache_rows)
            m.kv_packed[s] = tiers.compute.allocate(2 * m.prompt_len * m.gbs * m.row_bytes, "new KV rows, compressed");
    }

    // Hidden states, slots, masks, workspace.
    m.hidden_home.resize(m.batches);
    m.hidden_written.assign(m.batches, Event{});
    for (int64_t k = 0; k < m.batches; ++k)
        for (const auto& g : m.act_groups)
            m.hidden_home[k].push_back(
                {g, m.device(g.tier).allocate(g.count * m.prompt_len * H * E, "hidden-batch" + std::to_string(k)), 0});
    const uint64_t rows = static_cast<uint64_t>(m.gbs * m.prompt_len);
    for (int s = 0; s < 2; ++s) {
        m.in_slot[s] = tiers.compute.allocate(rows * H * E, "input slot");
        m.out_slot[s] = tiers.compute.allocate(std::max(rows * H, static_cast<uint64_t>(m.gbs * model.vocab_size)) * E, "output slot");
        m.out_ids[s].assign(m.gbs, 0);
    }
    for (int64_t k = 0; k < m.batches; ++k) {
        m.masks.push_back(tiers.compute.allocate(m.gbs * m.max_len, "attention mask"));
        m.masks_host.emplace_back(m.gbs * m.max_len, 0);
    }
    const uint64_t F = static_cast<uint64_t>(model.ffn_size);
    m.workspace = tiers.compute.allocate((5 * rows * H + rows * F) * E, "workspace");
    if (!layers_.front()->is_input() || !layers_.back()->is_output())  // a pipeline stage's hidden states in and out
        m.message = (stage.message_on_host ? static_cast<IDevice&>(tiers.host) : tiers.compute).allocate(rows * H * E, "stage message");
    std::byte* f = m.workspace->data();
    m.ws = {f, f + rows * H * E, f + 2 * rows * H * E, f + 3 * rows * H * E, f + 4 * rows * H * E, f + 5 * rows * H * E};
    auto off_device = [](const std::vector<SeqGroup>& gs) {
        return std::any_of(gs.begin(), gs.end(), [](const SeqGroup& g) { return g.tier != TierKind::compute; });
    };
    m.transfers_follow_compute = off_device(m.cache_groups) || off_device(m.act_groups) ||
                                 std::any_of(m.weights.begin(), m.weights.end(), [](const auto& w) { return !w.fully_resident(); });
}

Engine::~Engine() {
    // Kernels and transfers in flight reference our buffers: let them finish before the buffers go.
    try {
        impl_->tiers.ops.synchronize();
    } catch (const Error&) {  // a device error was reported where it happened; nothing more to do here
    }
    impl_->tiers.transfers.wait_all().ignore();
}

// --- generate ---------------------------------------------------------------------------------------

void Engine::begin_run(const std::vector<std::vector<int32_t>>& prompts, const GenerateOptions& options, GenerationResult& result) {
    Impl& m = *impl_;
    const int64_t N = m.gbs * m.batches;
    if (static_cast<int64_t>(prompts.size()) != N)
        FLEXRT_THROW(FLEXRT_STATUS_INVALID_ARGUMENT, "a block takes " + std::string(m.batches > m.ngb ? "micro-batches * " : "") +
                                                         "gpu_batch_size * num_gpu_batches = " + std::to_string(N) + " prompts, got " +
                                                         std::to_string(prompts.size()));
    m.prompt_ids.assign(N * m.prompt_len, static_cast<int32_t>(m.model.pad_token_id));
    for (int64_t b = 0; b < N; ++b) {
        const auto& p = prompts[b];
        if (p.empty() || static_cast<int64_t>(p.size()) > m.prompt_len)
            FLEXRT_THROW(FLEXRT_STATUS_INVALID_ARGUMENT, "prompt " + std::to_string(b) + " has " + std::to_string(p.size()) +
                                                             " tokens; expected 1 to run.prompt_len = " + std::to_string(m.prompt_len));
        std::copy(p.begin(), p.end(), m.prompt_ids.begin() + b * m.prompt_len + (m.prompt_len - static_cast<int64_t>(p.size())));
    }
    for (int64_t k = 0; k < m.batches; ++k) {
        auto& mask = m.masks_host[k];
        std::fill(mask.begin(), mask.end(), 0);
        for (int64_t b = 0; b < m.gbs; ++b) {
            const auto len = static_cast<int64_t>(prompts[k * m.gbs + b].size());
            std::fill_n(mask.begin() + b * m.max_len + (m.prompt_len - len), len, 1);
        }
        m.tiers.ops.upload(m.masks[k]->data(), mask.data(), mask.size());
    }
    m.skip_step.assign(m.batches, -1);
    m.skip.assign(m.batches, 0);
    m.weight_tag.fill(Tag{});
    m.next_weight_slot = 0;
    for (auto& t : {&m.cache_tag, &m.kv_new_tag, &m.in_tag, &m.out_tag}) t->fill(Tag{});
    m.opts = options;
    m.steps_ended = 0;
    m.dequantized_layer = -1;
    m.error.clear();
    result = GenerationResult{};
    result.num_sequences = N;
    result.gen_len = m.gen_len;
    result.vocab = m.model.vocab_size;
    result.tokens.assign(N * m.gen_len, static_cast<int32_t>(m.model.pad_token_id));
    result.stopped.assign(N, 0);
    m.result = &result;
}

void Engine::run_window(IScheduler& scheduler, int32_t step, int32_t steps, int64_t micro_batch) {
    Impl& m = *impl_;
    FLEXRT_ASSERT(m.result && step >= 0 && steps > 0 && step + steps <= m.gen_len && micro_batch >= 0 &&
                  (micro_batch + 1) * m.ngb <= m.batches);
    m.window_step = step, m.window_steps = steps, m.window_first = micro_batch * m.ngb;
    m.steps_ended = step;
    flexrt_status s = scheduler.run(this);
    const std::string plugin_said = s == FLEXRT_STATUS_OK ? std::string() : take_last_plugin_error();  // its own reason, if it gave one
    if (flexrt_status d = sync(); s == FLEXRT_STATUS_OK) s = d;  // the device and the transfers, drained
    Status drained = m.tiers.transfers.wait_all();
    if (s != FLEXRT_STATUS_OK) {
        m.result = nullptr;
        FLEXRT_THROW(s, !m.error.empty()       ? m.error
                        : !plugin_said.empty() ? "the schedule plugin failed: " + plugin_said
                                               : std::string("the schedule plugin failed: ") + flexrt_status_name(s));
    }
    if (!drained.is_ok()) m.result = nullptr;
    drained.throw_if_error();
    if (m.steps_ended < step + steps && !(m.stops() && m.result->all_stopped(m.window_first * m.gbs, m.ngb * m.gbs))) {
        m.result = nullptr;
        FLEXRT_THROW(FLEXRT_STATUS_INTERNAL, "the schedule plugin returned after " + std::to_string(m.steps_ended - step) + " of " +
                                                 std::to_string(steps) + " steps");
    }
}

void Engine::end_run() { impl_->result = nullptr; }

Buffer& Engine::stage_message() {
    FLEXRT_ASSERT(impl_->message);
    return *impl_->message;
}

uint64_t Engine::stage_message_bytes(int32_t i) const { return impl_->gbs * impl_->seq_len(i) * impl_->h * impl_->elem; }

void Engine::import_hidden(int32_t i, int64_t k) { impl_->move_hidden(i, k, true); }

void Engine::export_hidden(int32_t i, int64_t k) { impl_->move_hidden(i, k, false); }

GenerationResult Engine::generate(const std::vector<std::vector<int32_t>>& prompts, const GenerateOptions& options, IScheduler& scheduler) {
    GenerationResult result;
    begin_run(prompts, options, result);
    for (int64_t t = 0; t < impl_->batches / impl_->ngb; ++t) run_window(scheduler, 0, static_cast<int32_t>(impl_->gen_len), t);
    end_run();
    return result;
}

// --- primitives -------------------------------------------------------------------------------------

flexrt_schedule_dims Engine::dims() const noexcept {
    return {sizeof(flexrt_schedule_dims), static_cast<uint32_t>(impl_->window_steps), static_cast<uint32_t>(impl_->L),
            static_cast<uint32_t>(impl_->ngb)};
}

flexrt_status Engine::begin_step(int32_t i) noexcept {
    Impl& m = *impl_;
    return m.guard([&] {
        m.step_start = Clock::now();
        i += m.window_step;
        if (i > 0)  // the token generated last step becomes a real position
            for (int64_t k = m.window_first; k < m.window_first + m.ngb; ++k) {
                for (int64_t b = 0; b < m.gbs; ++b) m.masks_host[k][b * m.max_len + m.prompt_len + i - 1] = 1;
                m.tiers.ops.upload(m.masks[k]->data(), m.masks_host[k].data(), m.masks_host[k].size());
            }
        return Status::ok();
    });
}

flexrt_status Engine::load_weight(int32_t i, int32_t j, int32_t k) noexcept {
    Impl& m = *impl_;
    const trace::Span span = m.span("load_weight", i, j, k);
    return m.guard([&] {
        if (!m.wrap_load(i, j, k) || k != 0) return Status::ok();
        m.global(i, k);
        Impl::WeightHome& w = m.weights[j];
        if (w.fully_resident()) return Status::ok();
        // The next slot round robin: the only layer in a slot whose compute may not be issued yet is the one
        // loaded last (the schedules load one layer ahead), and it sits in another slot.
        const int s = m.next_weight_slot;
        m.next_weight_slot = (s + 1) % kWeightSlots;
        Buffer* slot = m.weight_slot[s].get();
        const std::vector<Event> after = {m.weight_ready[s], m.weights_read[s]};  // its last fill and its last reader
        // One copy per run of segments laid out alike in their buffer and in the slot (padding between tensors
        // included): a layer on the host or the disk moves as one large transfer, which keeps PCIe and the
        // disk's queue busy where one copy per tensor left gaps between them.
        struct Run {
            Buffer* buffer;
            uint64_t src, dst, bytes;
        };
        std::vector<Run> runs;
        for (size_t n = 0; n < w.tensors.size(); ++n) {
            if (w.offsets[n] < w.copy_from) continue;  // wholly resident: used in place
            for (const Segment& seg : w.tensors[n].segments) {
                const uint64_t dst = w.offsets[n] + seg.at - w.copy_from;
                if (!runs.empty()) {
                    Run& r = runs.back();
                    if (r.buffer == seg.buffer && seg.offset >= r.src + r.bytes && dst >= r.dst + r.bytes &&
                        seg.offset - r.src == dst - r.dst) {
                        r.bytes = seg.offset + seg.bytes - r.src;
                        continue;
                    }
                }
                runs.push_back({seg.buffer, seg.offset, dst, seg.bytes});
            }
        }
        std::vector<Event> ev;
        for (const Run& r : runs) ev.push_back(m.tiers.transfers.copy({slot, r.dst, r.bytes}, {r.buffer, r.src, r.bytes}, after));
        m.weight_ready[s] = m.join(std::move(ev));
        m.weight_tag[s] = {i, j, 0};
        return Status::ok();
    });
}

flexrt_status Engine::load_cache(int32_t i, int32_t j, int32_t k) noexcept {
    Impl& m = *impl_;
    const trace::Span span = m.span("load_cache", i, j, k);
    return m.guard([&] {
        if (!m.wrap_load(i, j, k)) return Status::ok();
        const int s = m.slot(j, k);
        m.global(i, k);
        if (i == 0 || m.skips(i, k) || !layers_[j]->has_cache() || !m.cache_slot_bytes) return Status::ok();
        const uint64_t past = m.past_len(i);
        const std::vector<Event> after = {m.cache_written[j][k], m.cache_ready[s], m.computed[s]};
        std::vector<Event> ev;
        for (const auto& g : m.cache_home[j][k]) {
            if (!m.loads_cache(g.group.tier)) continue;
            const uint64_t rows = past * g.group.count * m.row_bytes, v_off = m.max_len * g.group.count * m.row_bytes;
            ev.push_back(m.tiers.transfers.copy({m.cache_slot[s].get(), g.slot_offset, rows}, {g.buf.get(), 0, rows}, after));
            ev.push_back(m.tiers.transfers.copy({m.cache_slot[s].get(), g.slot_offset + v_off, rows}, {g.buf.get(), v_off, rows}, after));
        }
        m.cache_ready[s] = m.join(std::move(ev));
        m.cache_tag[s] = {i, j, k};
        return Status::ok();
    });
}

flexrt_status Engine::load_hidden(int32_t i, int32_t j, int32_t k) noexcept {
    Impl& m = *impl_;
    const trace::Span span = m.span("load_hidden", i, j, k);
    return m.guard([&] {
        if (!m.wrap_load(i, j, k)) return Status::ok();
        const int s = m.slot(j, k);
        m.global(i, k);
        if (m.skips(i, k)) return Status::ok();
        const int64_t seq = m.seq_len(i);
        if (layers_[j]->is_input()) {  // token ids: the prompts at prefill, then last step's tokens
            Status prev = m.in_ready[s].wait();
            if (!prev.is_ok()) return prev;
            m.ids_host.resize(m.gbs * seq);
            for (int64_t b = 0; b < m.gbs; ++b) {
                const int64_t n = k * m.gbs + b;
                for (int64_t c = 0; c < seq; ++c)
                    m.ids_host[b * seq + c] = i == 0 ? m.prompt_ids[n * m.prompt_len + c] : m.result->tokens[n * m.gen_len + i - 1];
            }
            m.tiers.ops.upload(m.in_slot[s]->data(), m.ids_host.data(), m.ids_host.size() * sizeof(int32_t));
            m.in_ready[s] = Event{};
        } else {
            const uint64_t E = m.elem, H = m.h;
            const std::vector<Event> after = {m.hidden_written[k], m.in_ready[s], m.computed[s]};
            std::vector<Event> ev;
            for (const auto& g : m.hidden_home[k]) {
                const uint64_t bytes = g.group.count * seq * H * E;
                ev.push_back(
                    m.copy(g.group.tier, {m.in_slot[s].get(), g.group.first * seq * H * E, bytes}, {g.buf.get(), 0, bytes}, after));
            }
            m.in_ready[s] = m.join(std::move(ev));
        }
        m.in_tag[s] = {i, j, k};
        return Status::ok();
    });
}

flexrt_status Engine::compute_layer(int32_t i, int32_t j, int32_t k) noexcept {
    Impl& m = *impl_;
    const trace::Span span = m.span("compute_layer", i, j, k);
    return m.guard([&]() -> Status {
        const int s = m.slot(j, k);
        const int32_t window_i = i, window_k = k;
        m.global(i, k);
        if (m.skips(i, k)) return Status::ok();  // every sequence of the batch has stopped
        const opt::Layer& layer = *layers_[j];
        const uint64_t H = m.h;
        auto need = [&](const Tag& have, const Tag& want, const char* what) {
            if (!(have == want))
                FLEXRT_THROW(FLEXRT_STATUS_INVALID_ARGUMENT, std::string("schedule error: compute_layer") + tag_text(i, j, k) +
                                                                 " called before " + what + tag_text(want.i, want.j, want.k));
        };
        auto wait = [](const Event& e) {
            Status st = e.wait();
            if (!st.is_ok()) throw Error(st.code(), st.message());
        };

        // Weights.
        Impl::WeightHome& w = m.weights[j];
        opt::LayerIO io;
        const int ws = w.fully_resident() ? -1 : m.weight_slot_holding(Tag{i, j, 0});
        if (!w.fully_resident()) {
            if (ws < 0) need(Tag{}, Tag{i, j, 0}, "load_weight");  // no slot holds them: throws
            wait(m.weight_ready[ws]);
        }
        // Compressed weights: a decode-sized GEMM reads them as they are (ops::fuses_group4: the rule depends
        // on the rows only, never on the tiers); otherwise they are dequantized on the compute device, in op
        // order, just before use - the whole layer at once, once for all GPU batches (they run back to back).
        const int64_t linear_rows = layer.is_output() ? m.gbs : m.gbs * m.seq_len(i);
        auto fused = [&](size_t n) { return !layer.is_input() && ops::fuses_group4(linear_rows, *m.packed[j][n]); };
        bool needs_fp16 = false;
        for (size_t n = 0; n < w.tensors.size(); ++n) needs_fp16 |= m.packed[j][n] && !fused(n);
        const bool dequantize = needs_fp16 && m.dequantized_layer != j;
        if (dequantize) m.dequantized_layer = j;
        uint64_t dequant_at = 0;
        io.packed.resize(w.tensors.size());
        for (size_t n = 0; n < w.tensors.size(); ++n) {
            const std::byte* p = w.offsets[n] < w.copy_from ? w.tensors[n].resident_on(TierKind::compute)
                                                            : m.weight_slot[ws]->data() + (w.offsets[n] - w.copy_from);
            FLEXRT_ASSERT(p);
            if (const auto& pk = m.packed[j][n]) {
                const auto* bytes = reinterpret_cast<const uint8_t*>(p);
                auto* out = reinterpret_cast<uint16_t*>(m.dequantized->data() + dequant_at);
                dequant_at += tensor_span(static_cast<uint64_t>(pk->elements()) * 2);
                if (dequantize) m.tiers.ops.dequantize_group4(bytes, *pk, out);
                if (fused(n)) {
                    io.packed[n] = {bytes, &*pk};
                    p = nullptr;
                } else {
                    p = reinterpret_cast<const std::byte*>(out);
                }
            }
            io.w.push_back(reinterpret_cast<const uint16_t*>(p));
        }
        // Input, output, mask.
        need(m.in_tag[s], Tag{i, j, k}, "load_hidden");
        wait(m.in_ready[s]);
        wait(m.out_free[s]);
        wait(m.kv_new_free[s]);
        io.batch = m.gbs;
        io.seq = m.seq_len(i);
        io.past = m.past_len(i);
        io.mask = reinterpret_cast<const uint8_t*>(m.masks[k]->data());
        io.mask_stride = m.max_len;
        io.ids = reinterpret_cast<const int32_t*>(m.in_slot[s]->data());
        io.x = m.in_slot[s]->data();
        io.y = m.out_slot[s]->data();
        io.ws = m.ws;
        io.ops = &m.tiers.ops;
        // Cache: resident groups are read in place, the others from the slot load_cache filled.
        std::vector<ops::KvView> kv;
        if (layer.has_cache()) {
            if (i > 0) {
                wait(m.cache_written[j][k]);
                if (m.cache_slot_bytes) {
                    // The window's first step may be a decode step, which the schedule sees as its step 0, whose
                    // cache it need not load (scheduler.hpp): what it did not load, the engine loads here.
                    if (window_i == 0 && !(m.cache_tag[s] == Tag{i, j, k}))
                        if (const flexrt_status st = load_cache(0, j, window_k); st != FLEXRT_STATUS_OK) throw Error(st, m.error);
                    need(m.cache_tag[s], Tag{i, j, k}, "load_cache");
                    wait(m.cache_ready[s]);
                }
            }
            ops::Compute& o = m.tiers.ops;
            for (const auto& g : m.cache_home[j][k]) {
                const int64_t count = g.group.count, c_h = count * static_cast<int64_t>(H);
                std::byte* base = m.loads_cache(g.group.tier) ? m.cache_slot[s]->data() + g.slot_offset : g.buf->data();
                const bool on_host = g.group.tier == TierKind::host && m.policy.cpu_cache_compute && i > 0;
                void* fresh = o.at(m.kv_new[s]->data(), 2 * m.prompt_len * g.group.first * static_cast<int64_t>(H));
                for (int64_t b = 0; b < count; ++b) {
                    const uint8_t* host_mask = on_host ? m.masks_host[k].data() + (g.group.first + b) * m.max_len : nullptr;
                    if (m.cache_rows)  // compressed past rows, (max_len, count) blocks, K then V: attended as they are
                        kv.push_back({base + b * m.row_bytes, base + (m.max_len * count + b) * m.row_bytes,
                                      count * static_cast<int64_t>(m.row_bytes), o.at(fresh, b * H),
                                      o.at(fresh, m.prompt_len * c_h + b * H), c_h, host_mask, &*m.cache_rows});
                    else
                        kv.push_back({o.at(base, b * H), o.at(base, m.max_len * c_h + b * H), c_h, o.at(fresh, b * H),
                                      o.at(fresh, m.prompt_len * c_h + b * H), c_h, host_mask});
                }
            }
            io.kv = kv.data();
        }
        layer.forward(io);
        if (m.transfers_follow_compute)  // the transfers after it wait for this, the host does not
            m.computed[s] = m.compute_done();
        if (!w.fully_resident()) m.weights_read[ws] = m.computed[s];

        if (layer.is_output()) {  // the next token of each sequence from its logits (gbs, vocab), chosen where they are
            const int64_t V = m.model.vocab_size, N = m.gbs * m.batches;
            m.draws.resize(m.gbs);
            for (int64_t b = 0; b < m.gbs; ++b) m.draws[b] = ops::uniform(m.opts.seed, static_cast<uint64_t>(k * m.gbs + b), i);
            const ops::SamplingParams how{!m.opts.do_sample, m.opts.temperature, m.opts.top_k, m.opts.top_p};
            m.tiers.ops.next_tokens(io.y, m.gbs, V, how, m.draws.data(), m.out_ids[s].data());
            if (m.opts.record_logits) {
                auto& rec = m.result->logits;
                if (rec.size() < static_cast<size_t>((i + 1) * N * V)) rec.resize((i + 1) * N * V);
                m.tiers.ops.to_host_floats(rec.data() + (i * N + k * m.gbs) * V, io.y, m.gbs * V);
            }
        }
        m.out_tag[s] = {i, j, k};
        if (layer.has_cache()) m.kv_new_tag[s] = {i, j, k};
        return Status::ok();
    });
}

flexrt_status Engine::store_hidden(int32_t i, int32_t j, int32_t k) noexcept {
    Impl& m = *impl_;
    const trace::Span span = m.span("store_hidden", i, j, k);
    return m.guard([&]() -> Status {
        if (!m.wrap_store(i, j, k)) return Status::ok();
        const int s = m.slot(j, k);
        m.global(i, k);
        if (m.skips(i, k)) return Status::ok();
        if (!(m.out_tag[s] == Tag{i, j, k}))
            return {FLEXRT_STATUS_INVALID_ARGUMENT,
                    "schedule error: store_hidden" + tag_text(i, j, k) + " before compute_layer" + tag_text(i, j, k)};
        m.out_tag[s] = Tag{};
        if (layers_[j]->is_output()) {  // the tokens: into the result, with stop handling
            for (int64_t b = 0; b < m.gbs; ++b) {
                const int64_t n = k * m.gbs + b;
                auto& stopped = m.result->stopped;
                const int32_t t = m.stops() && stopped[n] ? static_cast<int32_t>(m.model.pad_token_id) : m.out_ids[s][b];
                m.result->tokens[n * m.gen_len + i] = t;
                if (m.stops() && !stopped[n] &&
                    (t == m.opts.stop_token || (m.opts.stop_when && m.opts.stop_when(n, &m.result->tokens[n * m.gen_len], i + 1))))
                    stopped[n] = 1;
            }
            return Status::ok();
        }
        const uint64_t E = m.elem, H = m.h, seq = m.seq_len(i);
        const std::vector<Event> after = {m.hidden_written[k], m.in_ready[s], m.computed[s]};
        std::vector<Event> ev;
        for (const auto& g : m.hidden_home[k]) {
            const uint64_t bytes = g.group.count * seq * H * E;
            ev.push_back(m.copy(g.group.tier, {g.buf.get(), 0, bytes}, {m.out_slot[s].get(), g.group.first * seq * H * E, bytes}, after));
        }
        m.hidden_written[k] = m.join(std::move(ev));
        m.out_free[s] = m.hidden_written[k];
        return Status::ok();
    });
}

flexrt_status Engine::store_cache(int32_t i, int32_t j, int32_t k) noexcept {
    Impl& m = *impl_;
    const trace::Span span = m.span("store_cache", i, j, k);
    return m.guard([&]() -> Status {
        if (!m.wrap_store(i, j, k)) return Status::ok();
        const int s = m.slot(j, k);
        m.global(i, k);
        if (m.skips(i, k) || !layers_[j]->has_cache()) return Status::ok();
        if (!(m.kv_new_tag[s] == Tag{i, j, k}))
            return {FLEXRT_STATUS_INVALID_ARGUMENT,
                    "schedule error: store_cache" + tag_text(i, j, k) + " before compute_layer" + tag_text(i, j, k)};
        m.kv_new_tag[s] = Tag{};
        if (i == m.gen_len - 1) return Status::ok();  // the last step's KV is never read
        const uint64_t E = m.elem, H = m.h, seq = m.seq_len(i), start = m.past_len(i);
        const std::vector<Event> after = {m.cache_written[j][k], m.computed[s]};
        std::vector<Event> ev;
        std::vector<Event> after_quantize = after;
        if (m.cache_rows) {  // compressed on the compute device, then moved compressed
            for (const auto& g : m.cache_home[j][k]) {
                const uint64_t c = g.group.count, plain = 2 * m.prompt_len * g.group.first * H * E;
                const uint64_t packed = 2 * m.prompt_len * g.group.first * m.row_bytes;
                const auto rows = m.packed_rows(static_cast<int64_t>(seq * c));
                auto* out = reinterpret_cast<uint8_t*>(m.kv_packed[s]->data());
                const std::byte* in = m.kv_new[s]->data();
                m.tiers.ops.quantize_rows_group4(in + plain, rows, out + packed);
                m.tiers.ops.quantize_rows_group4(in + plain + m.prompt_len * c * H * E, rows,
                                                 out + packed + m.prompt_len * c * m.row_bytes);
            }
            if (m.transfers_follow_compute) after_quantize.push_back(m.compute_done());
        }
        const uint64_t R = m.row_bytes;
        for (const auto& g : m.cache_home[j][k]) {
            const uint64_t c = g.group.count, bytes = seq * c * R, region = 2 * m.prompt_len * g.group.first * R;
            Buffer* fresh = m.cache_rows ? m.kv_packed[s].get() : m.kv_new[s].get();
            ev.push_back(m.copy(g.group.tier, {g.buf.get(), start * c * R, bytes}, {fresh, region, bytes}, after_quantize));
            ev.push_back(m.copy(g.group.tier, {g.buf.get(), (m.max_len + start) * c * R, bytes},
                                {fresh, region + m.prompt_len * c * R, bytes}, after_quantize));
        }
        m.cache_written[j][k] = m.join(std::move(ev));
        m.kv_new_free[s] = m.cache_written[j][k];
        return Status::ok();
    });
}

flexrt_status Engine::sync() noexcept {
    Impl& m = *impl_;
    return m.guard([&] {
        m.tiers.ops.synchronize();
        return m.tiers.transfers.wait_all();
    });
}

flexrt_status Engine::end_step(int32_t i, int32_t* all_stopped) noexcept {
    Impl& m = *impl_;
    return m.guard([&] {
        m.tiers.ops.synchronize();
        Status s = m.tiers.transfers.wait_all();
        if (!s.is_ok()) return s;
        const auto step_end = Clock::now();
        const double secs = std::chrono::duration<double>(step_end - m.step_start).count();
        i += m.window_step;
        if (trace::on())
            trace::complete("step",
                            (i == 0 ? std::string("prefill") : "decode step " + std::to_string(i)) +
                                (m.batches > m.ngb ? ", micro-batch " + std::to_string(m.window_first / m.ngb) : std::string()),
                            m.step_start, step_end);
        m.result->step_seconds.push_back(secs);
        m.steps_ended = i + 1;
        if (m.progress && m.window_steps == m.gen_len) {  // a pipeline stage's windows: its driver says how it goes
            char line[128];
            if (i == 0)
                std::snprintf(line, sizeof line, "prefill: %.3f s", secs);
            else
                std::snprintf(line, sizeof line, "decode step %d/%lld: %.3f s", i, static_cast<long long>(m.gen_len - 1), secs);
            if (i == 0 || i + 1 == m.gen_len || i % std::max<int64_t>(1, m.gen_len / 8) == 0) m.progress(line);
        }
        *all_stopped = m.stops() && m.result->all_stopped(m.window_first * m.gbs, m.ngb * m.gbs);  // the window's sequences
        return Status::ok();
    });
}

}  // namespace flexrt
