#include "plan_command.hpp"

#include "core/src/gpu_upload.hpp"
#include "core/src/memory_stats.hpp"
#include "planner/calibrate.hpp"
#include "planner/policy_search.hpp"

#include "default_config.hpp"
#include "text/json.hpp"
#include "text/whole_file.hpp"

#include <unistd.h>

#include <fstream>

#include <flexrt/status.hpp>

#include <boost/program_options.hpp>

#include <cstdio>
#include <filesystem>
#include <iostream>

namespace po = boost::program_options;

namespace flexrt {
namespace {

using planner::HardwareProfile;

double gib(uint64_t b) { return static_cast<double>(b) / (1ull << 30); }

void common_options(po::options_description& d) {
    d.add_options()("config,c", po::value<std::string>(), "TOML config: its [storage] and offload dir are where the disk is measured")(
        "set", po::value<std::vector<std::string>>()->composing(), "key=value config override (repeatable)")(
        "profile", po::value<std::string>(),
        "the hardware profile file (default: $FLEXRT_PROFILE or ~/.cache/flexrt/hardware-profile.toml)")(
        "compute", po::value<std::string>()->default_value("auto"), "the compute device: cuda, cpu, or auto")(
        "disk-mib", po::value<int64_t>()->default_value(1024), "the file calibration writes and reads back, MiB")("quiet,q",
                                                                                                                  "no progress lines");
}

po::variables_map parse(const std::vector<std::string>& args, const po::options_description& d, const char* sub) {
    po::variables_map vm;
    try {
        po::store(po::command_line_parser(args).options(d).run(), vm);
        po::notify(vm);
    } catch (const po::error& e) { FLEXRT_THROW(FLEXRT_STATUS_INVALID_ARGUMENT, std::string(sub) + ": " + e.what() + " (see --help)"); }
    return vm;
}

// The options every planner command shares: where the profile is, how much disk calibration measures, progress.
std::filesystem::path profile_file(const po::variables_map& vm) {
    return vm.count("profile") ? std::filesystem::path(vm["profile"].as<std::string>()) : planner::default_profile_path();
}
uint64_t disk_bytes(const po::variables_map& vm) { return static_cast<uint64_t>(vm["disk-mib"].as<int64_t>()) << 20; }
std::function<void(const std::string&)> progress(const po::variables_map& vm) {
    const bool quiet = vm.count("quiet") > 0;
    return [quiet](const std::string& s) {
        if (!quiet) std::cerr << "flexrt: " << s << std::endl;
    };
}

Config config_of(const po::variables_map& vm) {
    const auto sets = vm.count("set") ? vm["set"].as<std::vector<std::string>>() : std::vector<std::string>{};
    return vm.count("config") ? load_config_file(vm["config"].as<std::string>(), sets)
                              : load_config(kDefaultConfig, "embedded default (configs/default.toml)", sets);
}

bool gpu_of(const std::string& compute) {
    if (compute == "cuda") {
        if (!gpu_available()) FLEXRT_THROW(FLEXRT_STATUS_UNSUPPORTED, "--compute cuda: no GPU here (or no CUDA in this build)");
        return true;
    }
    if (compute != "cpu" && compute != "auto") FLEXRT_THROW(FLEXRT_STATUS_INVALID_ARGUMENT, "--compute: cuda, cpu or auto, not " + compute);
    return compute == "auto" && gpu_available();
}

std::string profile_text(const HardwareProfile& p) {
    char s[1024];
    std::snprintf(s, sizeof s,
                  "  compute: %s, %.2f GiB; GEMM %.1f TFLOP/s, memory %.1f GB/s, %.0f us a layer\n"
                  "  links: host -> GPU %.1f GB/s, GPU -> host %.1f GB/s\n"
                  "  disk (storage.%s): read %.2f GB/s, write %.2f GB/s, %.0f GiB free\n"
                  "  host: %.1f GiB available, decode attention reads %.1f GB/s\n"
                  "  the engine's layers reach %.0f%% (prefill) and %.0f%% (decode) of the compute these rates predict\n",
                  p.gpu ? p.gpu_name.c_str() : "CPU", gib(p.gpu_memory), p.gemm_flops / 1e12, p.mem_bps / 1e9, p.layer_overhead_s * 1e6,
                  p.h2d_bps / 1e9, p.d2h_bps / 1e9, p.storage.c_str(), p.disk_read_bps / 1e9, p.disk_write_bps / 1e9, gib(p.disk_free),
                  gib(p.host_memory), p.cpu_attention_bps / 1e9, 100 * p.prefill_efficiency, 100 * p.decode_efficiency);
    return s;
}

// One run of this binary, as a user would start it, with everything on the compute device; its prefill and
// decode seconds.
planner::EngineRun engine_run(const Config& cfg, bool gpu, const std::string& model, int64_t batch, const planner::Workload& w) {
    planner::EngineRun r;
    r.policy.gpu_batch_size = batch, r.policy.num_gpu_batches = 1;
    r.policy.weights = {100, 0}, r.policy.cache = {100, 0}, r.policy.activations = {100, 0};
    r.w = w;
    std::filesystem::create_directories(cfg.offload_dir);
    const std::filesystem::path json =
        std::filesystem::path(cfg.offload_dir) / ("flexrt-calibrate-" + std::to_string(::getpid()) + ".json");
    const std::string self = std::filesystem::read_symlink("/proc/self/exe").string();  // (in the shell, /proc/self is the shell)
    const std::string cmd = "'" + self + "' --quiet --set 'model.name=\"" + model +
                            "\"' --set run.prompt_len=" + std::to_string(w.prompt_len) + " --set run.gen_len=" + std::to_string(w.gen_len) +
                            " --set policy.gpu_batch_size=" + std::to_string(batch) +
                            " --set policy.num_gpu_batches=1 --set policy.weights.gpu=100 --set policy.weights.cpu=0"
                            " --set policy.cache.gpu=100 --set policy.cache.cpu=0 --set policy.activations.gpu=100"
                            " --set policy.activations.cpu=0 --set 'schedule.plugin=\"normal\"' --set 'runtime.compute=\"" +
                            std::string(gpu ? "cuda" : "cpu") + "\"' --set 'storage.offload_dir=\"" + cfg.offload_dir + "\"' --json '" +
                            json.string() + "' >/dev/null";
    const int rc = std::system(cmd.c_str());
    if (rc != 0 || !std::filesystem::exists(json))
        FLEXRT_THROW(FLEXRT_STATUS_INTERNAL, "calibrate: the engine's calibration run failed: " + cmd);
    const std::string result = text::read_whole_file(json, "the calibration run's result");
    std::error_code ec;
    std::filesystem::remove(json, ec);
    const text::JsonValue v = text::parse_json(result, json.string());
    const text::JsonValue* f = v.find("figures");
    const text::JsonValue* pre = f ? f->find("prefill_latency_s") : nullptr;
    const text::JsonValue* dec = f ? f->find("decode_latency_s") : nullptr;
    if (!pre || !dec) FLEXRT_THROW(FLEXRT_STATUS_INTERNAL, "calibrate: the calibration run's " + json.string() + " has no latencies");
    r.prefill_s = pre->number, r.decode_s = dec->number;
    return r;
}

// Calibration: the rates (planner::calibrate), then two short real runs of the engine - a model that fits
// the compute device, a small and a large batch - that fit the per-layer fixed cost and the efficiencies of
// its prefill and decode work.
HardwareProfile calibrate_all(const Config& cfg, bool gpu, uint64_t disk_bytes, const std::function<void(const std::string&)>& say) {
    HardwareProfile p = planner::calibrate(cfg, gpu, disk_bytes, say);
    ModelSection ms;
    // Batches of the sizes the planner picks on such a device: at a handful of rows a GPU's GEMMs fall off the
    // memory-bound line the model draws, and the fit would take that for fixed cost.
    ms.name = !gpu ? "opt-125m" : p.gpu_memory > (40ull << 30) ? "opt-6.7b" : p.gpu_memory > (12ull << 30) ? "opt-1.3b" : "opt-125m";
    const planner::Workload w{gpu ? 512 : 64, gpu ? 24 : 4};  // enough decode steps that the two runs' difference is not noise
    const int64_t small = gpu ? 32 : 2, large = gpu ? 96 : 8;
    say("calibrate: two short runs of the engine (" + ms.name + ", " + std::to_string(small) + " and " + std::to_string(large) + " x (" +
        std::to_string(w.prompt_len) + " + " + std::to_string(w.gen_len) + ") tokens, all on the compute device)");
    const planner::EngineRun a = engine_run(cfg, gpu, ms.name, small, w), b = engine_run(cfg, gpu, ms.name, large, w);
    planner::fit_engine_runs(p, opt::from_section(ms), a, b);
    return p;
}

// The profile of this machine: the saved one when it was measured here with this compute device, else a
// fresh calibration (saved).
HardwareProfile profile_for(const Config& cfg, bool gpu, const std::filesystem::path& file, uint64_t disk_bytes,
                            const std::function<void(const std::string&)>& say) {
    std::string why = "no profile at " + file.string();
    if (std::filesystem::exists(file)) {
        HardwareProfile p = HardwareProfile::load(file);
        if (p.fingerprint == planner::machine_fingerprint(cfg.offload_dir) && p.gpu == gpu) return p;
        why = "the profile at " + file.string() + " was measured on another machine or compute device";
    }
    say(why + ": calibrating");
    HardwareProfile p = calibrate_all(cfg, gpu, disk_bytes, say);
    p.save(file);
    say("hardware profile saved to " + file.string());
    return p;
}

std::string row(const planner::Candidate& c) {
    const Policy& p = c.policy;
    char s[256];
    std::snprintf(s, sizeof s, "%9.1f  %4lldx%-3lld  %3.0f/%3.0f/%3.0f  %3.0f/%3.0f/%3.0f  %-3s %-3s %-3s  %7.2f %7.2f %7.2f  %s",
                  c.prediction.total_throughput, static_cast<long long>(p.gpu_batch_size), static_cast<long long>(p.num_gpu_batches),
                  p.weights.gpu, p.weights.cpu, p.weights.disk(), p.cache.gpu, p.cache.cpu, p.cache.disk(), p.compress_weights ? "w" : "-",
                  p.compress_cache ? "c" : "-", p.cpu_cache_compute ? "ccc" : "-", gib(c.prediction.compute_bytes),
                  gib(c.prediction.host_bytes), gib(c.prediction.disk_bytes), c.prediction.bound);
    return s;
}

}  // namespace

int calibrate_main(const std::vector<std::string>& args) {
    po::options_description d("flexrt calibrate: measures this machine for the planner and saves a hardware profile\n\nOptions");
    d.add_options()("help,h", "this help");
    common_options(d);
    const po::variables_map vm = parse(args, d, "calibrate");
    if (vm.count("help")) {
        std::cout << d;
        return 0;
    }
    const Config cfg = config_of(vm);
    const bool gpu = gpu_of(vm["compute"].as<std::string>());
    const std::filesystem::path file = profile_file(vm);
    const HardwareProfile p = calibrate_all(cfg, gpu, disk_bytes(vm), progress(vm));
    p.save(file);
    std::cout << "hardware profile (" << p.fingerprint << "):\n" << profile_text(p) << "saved to " << file.string() << "\n";
    return 0;
}

int plan_main(const std::vector<std::string>& args) {
    po::options_description d(
        "flexrt plan: the fastest policy that fits this machine, predicted from its hardware profile (calibrated when there is "
        "none)\n\nOptions");
    d.add_options()("help,h", "this help")("model", po::value<std::string>()->default_value("opt-30b"), "OPT size (opt-125m .. opt-175b)")(
        "prompt-len", po::value<int64_t>()->default_value(512), "prompt tokens")(
        "gen-len", po::value<int64_t>()->default_value(32), "generated tokens")("gpu-mem", po::value<double>(),
                                                                                "GiB the compute device may use (default: the profile's)")(
        "host-mem", po::value<double>(), "GiB of host memory to use (default: the profile's)")(
        "disk", po::value<double>(), "GiB of disk to use (default: the profile's free space)")(
        "max-block", po::value<int64_t>()->default_value(0), "the most sequences in a block (0: no limit)")(
        "keep", po::value<int>()->default_value(4), "policies to show")(
        "predict", "no search: the config's own policy, model and run (--config, --set), predicted");
    common_options(d);
    const po::variables_map vm = parse(args, d, "plan");
    if (vm.count("help")) {
        std::cout << d;
        return 0;
    }
    Config cfg = config_of(vm);
    if (vm.count("predict")) {  // the config's policy as it stands: what the validation compares with a run
        const HardwareProfile hw = profile_for(cfg, gpu_of(cfg.runtime.compute), profile_file(vm), disk_bytes(vm), progress(vm));
        const opt::OptConfig m = opt::from_section(cfg.model);
        const bool overlap = cfg.schedule.plugin.rfind("overlap", 0) == 0;
        const planner::Prediction p = planner::predict(m, cfg.policy, {cfg.run.prompt_len, cfg.run.gen_len}, hw, overlap);
        std::printf("predicted total throughput: %.3f token/s (prefill %.3f s, decode %.3f s, decode bound by %s; %s schedule)\n",
                    p.total_throughput, p.prefill_s, p.decode_s, p.bound, overlap ? "an overlapped" : "the plain");
        std::printf("predicted memory: compute %.6f GiB, host %.6f GiB, disk %.6f GiB\n", gib(p.compute_bytes), gib(p.host_bytes),
                    gib(p.disk_bytes));
        return 0;
    }
    ModelSection ms = cfg.model;
    ms.name = vm["model"].as<std::string>();
    const opt::OptConfig model = opt::from_section(ms);
    const std::filesystem::path file = profile_file(vm);
    const HardwareProfile hw = profile_for(cfg, gpu_of(vm["compute"].as<std::string>()), file, disk_bytes(vm), progress(vm));
    planner::Limits lim;
    auto bytes = [&](const char* key, uint64_t dflt) {
        return vm.count(key) ? static_cast<uint64_t>(vm[key].as<double>() * (1ull << 30)) : dflt;
    };
    lim.compute = bytes("gpu-mem", hw.gpu_memory);
    lim.host = bytes("host-mem", hw.host_memory);
    lim.disk = bytes("disk", hw.disk_free);
    lim.compute_is_host = !hw.gpu;
    const planner::Workload w{vm["prompt-len"].as<int64_t>(), vm["gen-len"].as<int64_t>()};
    if (w.prompt_len < 1 || w.gen_len < 1 || w.prompt_len + w.gen_len - 1 > model.max_seq_len)
        FLEXRT_THROW(FLEXRT_STATUS_INVALID_ARGUMENT,
                     "plan: --prompt-len + --gen-len - 1 must lie in 1.." + std::to_string(model.max_seq_len));
    const auto found =
        planner::search_policies(model, w, hw, lim, static_cast<size_t>(std::max(1, vm["keep"].as<int>())), vm["max-block"].as<int64_t>());
    std::printf("flexrt plan: %s, prompt %lld, gen %lld, on %s (profile %s)\n", model.name.c_str(), static_cast<long long>(w.prompt_len),
                static_cast<long long>(w.gen_len), hw.gpu ? hw.gpu_name.c_str() : "the CPU", file.string().c_str());
    std::printf("tiers: compute %.1f GiB, host %.1f GiB, disk %.1f GiB\n", gib(lim.compute), gib(lim.host), gib(lim.disk));
    if (found.empty()) {
        std::printf("no policy fits: the model (%.1f GiB in fp16, %.1f GiB compressed) and its KV cache exceed the tiers\n",
                    gib(model.model_bytes()), gib(model.model_bytes()) * planner::kPackedRatio);
        return 6;  // as a run whose memory plan does not fit (OUT_OF_MEMORY)
    }
    const planner::Candidate& best = found.front();
    std::printf("best policy: %.1f token/s predicted (prefill %.2f s, decode %.2f s, decode bound by %s)\n",
                best.prediction.total_throughput, best.prediction.prefill_s, best.prediction.decode_s, best.prediction.bound);
    std::printf("memory plan: compute %.2f GiB, host %.2f GiB, disk %.2f GiB\n\n%s\n", gib(best.prediction.compute_bytes),
                gib(best.prediction.host_bytes), gib(best.prediction.disk_bytes), planner::policy_toml(best).c_str());
    std::printf(
        "policies ranked (token/s, gbs x ngb, weights g/c/d %%, cache g/c/d %%, compression, ccc, GiB compute/host/disk, bound):\n");
    for (const auto& c : found) std::printf("  %s\n", row(c).c_str());
    return 0;
}

void plan_policy_for_run(Config& cfg, const opt::OptConfig& model, bool use_gpu, uint64_t gpu_pool, int64_t max_block,
                         const std::function<void(const std::string&)>& say) {
    const HardwareProfile hw = profile_for(cfg, use_gpu, planner::default_profile_path(), 256ull << 20, say);
    planner::Limits lim;
    lim.compute = use_gpu ? gpu_pool : 0;
    lim.host = host_available_bytes();
    lim.disk = disk_free_bytes(cfg.offload_dir);
    lim.compute_is_host = !use_gpu;
    const auto found = planner::search_policies(model, {cfg.run.prompt_len, cfg.run.gen_len}, hw, lim, 1, max_block);
    if (found.empty())
        FLEXRT_THROW(FLEXRT_STATUS_OUT_OF_MEMORY, "policy = \"auto\": no policy fits " + model.name + " with prompt " +
                                                      std::to_string(cfg.run.prompt_len) + " and gen " + std::to_string(cfg.run.gen_len) +
                                                      " in this machine's tiers");
    cfg.policy = found.front().policy;
    cfg.schedule.plugin = found.front().schedule;
    cfg.schedule.options = {};
    say("policy = \"auto\": the planner's choice, " + std::to_string(static_cast<int>(found.front().prediction.total_throughput)) +
        " token/s predicted:\n" + planner::policy_toml(found.front()));
}

}  // namespace flexrt
