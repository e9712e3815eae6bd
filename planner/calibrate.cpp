#include "calibrate.hpp"

#include "core/src/device.hpp"
#include "core/src/gpu_upload.hpp"
#include "core/src/memory_stats.hpp"
#include "core/src/pinned_memory.hpp"
#include "core/src/plugin_loader.hpp"
#include "core/src/staging_pool.hpp"
#include "core/src/transfer.hpp"
#include "ops/attention_host.hpp"
#include "ops/compute.hpp"

#include <flexrt/status.hpp>
#include <flexrt/storage.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

namespace flexrt::planner {
namespace {

using Clock = std::chrono::steady_clock;

// The fastest of `reps` runs of `body`, each followed by `sync`: rates are what the hardware can do.
template <typename F, typename S>
double best_seconds(int reps, F&& body, S&& sync) {
    double best = 1e30;
    for (int r = 0; r < reps; ++r) {
        const auto t0 = Clock::now();
        body();
        sync();
        best = std::min(best, std::chrono::duration<double>(Clock::now() - t0).count());
    }
    return best;
}

struct HostBytes {
    explicit HostBytes(uint64_t n) : p(static_cast<std::byte*>(std::aligned_alloc(4096, (n + 4095) / 4096 * 4096)), &std::free) {
        if (!p) FLEXRT_THROW(FLEXRT_STATUS_OUT_OF_MEMORY, "calibrate: cannot allocate " + std::to_string(n) + " bytes of host memory");
        std::memset(p.get(), 0, n);
    }
    std::unique_ptr<std::byte, decltype(&std::free)> p;
};

// Device memory of the compute device: a GPU's, or host memory on the CPU path.
struct DeviceBytes {
    DeviceBytes(bool gpu, uint64_t n) {
        if (gpu)
            g = std::make_unique<GpuMemory>(n);
        else
            h = std::make_unique<HostBytes>(n);
    }
    std::byte* data() const { return g ? g->data() : h->p.get(); }
    std::unique_ptr<GpuMemory> g;
    std::unique_ptr<HostBytes> h;
};

void measure_compute(HardwareProfile& p, bool gpu) {
    std::unique_ptr<ops::Compute> c = gpu ? ops::make_cuda_compute() : ops::make_cpu_compute();
    const auto sync = [&] { c->synchronize(); };
    // Prefill-sized GEMMs: (rows x k) activations times a (n x k) fp16 weight.
    const int64_t rows = gpu ? 8192 : 256, k = gpu ? 4096 : 1024, n = k;
    DeviceBytes x(gpu, static_cast<uint64_t>(rows * k) * c->act_bytes()), w(gpu, static_cast<uint64_t>(k * n) * 2),
        y(gpu, static_cast<uint64_t>(rows * n) * c->act_bytes());
    const auto* wp = reinterpret_cast<const uint16_t*>(w.data());
    c->linear(x.data(), rows, k, wp, nullptr, n, y.data(), false, nullptr);  // warm-up (autotuning, threads)
    sync();
    const int inner = gpu ? 20 : 2;
    const double t = best_seconds(
        3,
        [&] {
            for (int i = 0; i < inner; ++i) c->linear(x.data(), rows, k, wp, nullptr, n, y.data(), false, nullptr);
        },
        sync);
    p.gemm_flops = 2.0 * static_cast<double>(rows * k * n) * inner / t;
    // The device's memory: a large copy, bytes read plus written.
    const uint64_t bytes = gpu ? (512ull << 20) : (128ull << 20);
    DeviceBytes a(gpu, bytes), b(gpu, bytes);
    c->copy(b.data(), a.data(), bytes);
    sync();
    const double tc = best_seconds(
        3, [&] { c->copy(b.data(), a.data(), bytes); }, sync);
    p.mem_bps = 2.0 * static_cast<double>(bytes) / tc;
    // A layer's fixed cost: about a dozen operations whose work is nothing.
    const double tiny = best_seconds(
        5,
        [&] {
            for (int i = 0; i < 12; ++i) c->linear(x.data(), 1, 64, wp, nullptr, 64, y.data(), false, nullptr);
        },
        sync);
    p.layer_overhead_s = tiny;
}

void measure_links(HardwareProfile& p) {
    const uint64_t bytes = 1ull << 30;
    std::unique_ptr<void, void (*)(void*)> host(pinned_alloc(bytes), &pinned_free);
    GpuMemory dev(bytes);
    auto* h = static_cast<std::byte*>(host.get());
    auto once = [&](bool to_gpu) {
        const Status s = to_gpu ? gpu_copy(dev.data(), MemoryKind::device, h, MemoryKind::pinned, bytes)
                                : gpu_copy(h, MemoryKind::pinned, dev.data(), MemoryKind::device, bytes);
        if (!s.is_ok()) FLEXRT_THROW(s.code(), "calibrate: " + s.message());
    };
    once(true);
    p.h2d_bps = static_cast<double>(bytes) / best_seconds(
                                                 3, [&] { once(true); }, [] {});
    p.d2h_bps = static_cast<double>(bytes) / best_seconds(
                                                 3, [&] { once(false); }, [] {});
}

// Decode attention on host threads over an fp16 cache in host memory: 16 sequences of 1024 past tokens,
// 32 heads of 128.
void measure_cpu_attention(HardwareProfile& p) {
    const int64_t batch = 16, past = 1024, heads = 32, hd = 128, h = heads * hd;
    HostBytes k(static_cast<uint64_t>(batch * past * h) * 2), v(static_cast<uint64_t>(batch * past * h) * 2), q(batch * h * 2),
        out(batch * h * 2), nk(batch * h * 2), nv(batch * h * 2);
    std::vector<uint8_t> mask(static_cast<size_t>(past + 1), 1);
    std::vector<ops::SeqKvHost> kv(batch);
    for (int64_t b = 0; b < batch; ++b) {
        const auto* base_k = reinterpret_cast<const uint16_t*>(k.p.get()) + b * past * h;
        const auto* base_v = reinterpret_cast<const uint16_t*>(v.p.get()) + b * past * h;
        kv[b] = {base_k,
                 base_v,
                 h,
                 reinterpret_cast<const uint16_t*>(nk.p.get()) + b * h,
                 reinterpret_cast<const uint16_t*>(nv.p.get()) + b * h,
                 mask.data(),
                 nullptr};
    }
    auto run = [&] {
        ops::attention_decode_host(reinterpret_cast<const uint16_t*>(q.p.get()), kv.data(), batch, past, heads, hd,
                                   reinterpret_cast<uint16_t*>(out.p.get()));
    };
    run();
    p.cpu_attention_bps = 2.0 * static_cast<double>(batch * past * h) * 2 / best_seconds(3, run, [] {});
}

// The disk through the storage plugin: `bytes` written in 16 MiB requests and flushed; then a file written
// outside the plugin, its pages dropped from the page cache (checked by nothing: the kernel may keep some),
// read back through the plugin the way the engine reads it. Each file is its own, so no mapping of the written one holds its pages.
void measure_disk(HardwareProfile& p, const Config& cfg, uint64_t bytes, bool gpu) {
    std::filesystem::create_directories(cfg.offload_dir);
    PluginRef ref = find_plugin(FLEXRT_PLUGIN_KIND_STORAGE, cfg.storage.plugin, plugin_search_path(cfg.runtime.plugin_path));
    PluginOptions opts = resolve_plugin_options(cfg, cfg.storage, *ref.desc);
    auto storage = create_plugin<IStorage>(ref, opts.fields);
    DiskDevice disk(*storage, cfg.offload_dir);
    disk.check_free_space(2 * bytes, "calibrate's test files");
    constexpr uint64_t kChunk = 16ull << 20;
    HostBytes buf(kChunk);
    for (uint64_t i = 0; i < kChunk; ++i) buf.p.get()[i] = static_cast<std::byte>(i * 131 + 7);
    auto pass = [&](DiskBuffer& f, bool write) {
        for (uint64_t off = 0; off < bytes; off += kChunk) {
            const uint64_t n = std::min(kChunk, bytes - off);
            const Status s = write ? disk_write(f, off, buf.p.get(), n) : disk_read(f, off, buf.p.get(), n);
            if (!s.is_ok()) FLEXRT_THROW(s.code(), "calibrate: " + s.message());
        }
    };
    {
        auto file = disk.allocate(bytes, "calibrate-write");
        auto& f = static_cast<DiskBuffer&>(*file);
        const auto t0 = Clock::now();
        pass(f, true);
        if (storage->flush(f.file()) != FLEXRT_STATUS_OK) FLEXRT_THROW(FLEXRT_STATUS_IO_ERROR, "calibrate: flush of " + f.path().string());
        p.disk_write_bps = static_cast<double>(bytes) / std::chrono::duration<double>(Clock::now() - t0).count();
    }
    const std::filesystem::path cold = disk.run_dir() / "calibrate-read.bin";
    {
        const int fd = ::open(cold.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0) FLEXRT_THROW(status_from_errno(errno), "calibrate: cannot create " + cold.string() + ": " + errno_text(errno));
        for (uint64_t off = 0; off < bytes; off += kChunk)
            if (::pwrite(fd, buf.p.get(), std::min(kChunk, bytes - off), static_cast<off_t>(off)) < 0) {
                const int err = errno;
                ::close(fd);
                FLEXRT_THROW(status_from_errno(err), "calibrate: writing " + cold.string() + ": " + errno_text(err));
            }
        ::fdatasync(fd);
        ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
        ::close(fd);
    }
    if (gpu) {
        // Read as the engine reads a layer's weights into the GPU: one stream at a time through pinned 16 MiB
        // chunks, 8 in flight (runtime.staging_mib's default), in 256 MiB pieces.
        auto file = disk.open_existing(cold);
        auto& f = static_cast<DiskBuffer&>(*file);
        StagingPool pool(kChunk, 8, true);
        constexpr uint64_t kPiece = 256ull << 20;
        GpuMemory dst(kPiece);
        const auto t0 = Clock::now();
        for (uint64_t off = 0; off < bytes; off += kPiece) {
            const Status s = read_to_gpu(f, off, std::min(kPiece, bytes - off), dst.data(), pool, 8);
            if (!s.is_ok()) FLEXRT_THROW(s.code(), "calibrate: " + s.message());
        }
        p.disk_read_bps = static_cast<double>(bytes) / std::chrono::duration<double>(Clock::now() - t0).count();
    } else {
        // Read as the CPU engine reads a layer into host memory: 4 threads, each its own quarter.
        auto file = disk.open_existing(cold);
        auto& f = static_cast<DiskBuffer&>(*file);
        std::vector<HostBytes> bufs;
        for (int t = 0; t < 4; ++t) bufs.emplace_back(kChunk);
        std::vector<Status> failed(4);
        const auto t0 = Clock::now();
        {
            std::vector<std::jthread> threads;
            for (uint64_t t = 0; t < 4; ++t)
                threads.emplace_back([&, t] {
                    for (uint64_t off = t * kChunk; off < bytes; off += 4 * kChunk) {
                        const Status s = disk_read(f, off, bufs[t].p.get(), std::min(kChunk, bytes - off));
                        if (!s.is_ok()) {
                            failed[t] = s;
                            return;
                        }
                    }
                });
        }
        p.disk_read_bps = static_cast<double>(bytes) / std::chrono::duration<double>(Clock::now() - t0).count();
        for (const Status& s : failed)
            if (!s.is_ok()) FLEXRT_THROW(s.code(), "calibrate: " + s.message());
    }
    std::filesystem::remove(cold);
    p.storage = cfg.storage.plugin;
    p.disk_free = disk_free_bytes(cfg.offload_dir);
}

}  // namespace

HardwareProfile calibrate(const Config& cfg, bool use_gpu, uint64_t disk_bytes, const std::function<void(const std::string&)>& say) {
    HardwareProfile p;
    p.fingerprint = machine_fingerprint(cfg.offload_dir);
    p.gpu = use_gpu;
    p.gpu_name = use_gpu ? gpu_name() : "";
    p.host_memory = host_available_bytes();
    if (use_gpu) p.gpu_memory = gpu_free_memory() / 10 * 9;  // what a run's pool takes by default
    say("calibrate: " + std::string(use_gpu ? "GPU " + p.gpu_name : "CPU") + " compute (GEMM, memory, per-layer cost)");
    measure_compute(p, use_gpu);
    if (use_gpu) {
        say("calibrate: pinned host <-> GPU copies");
        measure_links(p);
    }
    say("calibrate: the host's decode attention");
    measure_cpu_attention(p);
    if (!use_gpu) p.gpu_memory = p.host_memory;  // the CPU path computes in host memory
    say("calibrate: the disk through storage." + cfg.storage.plugin + " at " + cfg.offload_dir);
    measure_disk(p, cfg, disk_bytes, use_gpu);
    return p;
}

}  // namespace flexrt::planner
