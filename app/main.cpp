// flexrt: one binary, one TOML file, overrides on the command line. Runs a block of prompts through the
// offloading engine and prints FlexLLMGen's figures.
#include "core/src/config.hpp"
#include "core/src/cuda_device.hpp"
#include "core/src/device.hpp"
#include "core/src/gpu_upload.hpp"
#include "core/src/host_log.hpp"
#include "core/src/interrupt.hpp"
#include "core/src/memory_stats.hpp"
#include "core/src/nccl_communicator.hpp"
#include "core/src/plugin_loader.hpp"
#include "core/src/tcp_communicator.hpp"
#include "core/src/trace.hpp"
#include "core/src/transfer.hpp"
#include "engine/engine.hpp"
#include "engine/memory_plan.hpp"
#include "engine/packed_weight_store.hpp"
#include "engine/pipeline_stage.hpp"
#include "models/opt/hf_checkpoint.hpp"
#include "models/opt/opt_config.hpp"
#include "models/opt/opt_weights.hpp"
#include "ops/sampling.hpp"
#include "text/gpt2_tokenizer.hpp"
#include "text/json.hpp"
#include "text/stop_strings.hpp"
#include "text/whole_file.hpp"

#include "build_info.hpp"  // generated: version, commit, compiler, CUDA
#include "convert.hpp"
#include "default_config.hpp"  // generated from configs/default.toml
#include "iobench.hpp"
#include "memory_report.hpp"
#include "plan_command.hpp"
#include "plugin_test.hpp"
#include "rank_place.hpp"
#include "text_io.hpp"

#include <flexrt/compressor.hpp>
#include <flexrt/scheduler.hpp>
#include <flexrt/storage.hpp>

#include <boost/program_options.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>
#include <numeric>
#include <optional>
#include <sstream>
#include <thread>

#include <unistd.h>  // access()

namespace po = boost::program_options;
using namespace flexrt;

namespace {

// Exit codes (README "Exit codes").
int exit_code(flexrt_status s) {
    switch (s) {
    case FLEXRT_STATUS_INVALID_ARGUMENT: return 2;
    case FLEXRT_STATUS_NOT_FOUND: return 3;
    case FLEXRT_STATUS_ABI_MISMATCH: return 3;
    case FLEXRT_STATUS_BAD_DATA: return 4;
    case FLEXRT_STATUS_IO_ERROR: return 5;
    case FLEXRT_STATUS_NO_SPACE: return 5;
    case FLEXRT_STATUS_OUT_OF_MEMORY: return 6;
    case FLEXRT_STATUS_CANCELLED: return 130;  // the shell's code for SIGINT
    default: return 1;
    }
}

constexpr double kGB = 1024.0 * 1024.0 * 1024.0;  // FlexLLMGen's "GB"

void list_plugins(const std::vector<SearchDir>& search) {
    std::cout << "plugin search path:\n";
    for (const auto& d : search) std::cout << "  " << d.dir.string() << " (" << d.origin << ")\n";
    std::map<std::string, std::vector<std::string>> providers;  // "storage.aio" -> the libraries that hold it
    for (const auto& lib : scan_plugins(search)) {
        if (!lib.error.empty()) {
            std::cout << "\nrefused " << lib.path.string() << ": " << lib.error << "\n";
            continue;
        }
        for (const auto& p : lib.plugins) {
            const auto& d = *p.desc;
            providers[std::string(plugin_kind_name(d.kind)) + "." + d.name].push_back(p.path.string());
            std::cout << "\n"
                      << plugin_kind_name(d.kind) << "." << d.name << "  version " << d.version << "  ABI " << d.abi_major << "."
                      << d.abi_minor << "  " << p.path.string() << "\n  " << d.description << "\n";
            for (uint32_t i = 0; i < d.n_options; ++i) {
                const auto& o = d.options[i];
                const char* type = o.type == FLEXRT_FIELD_TYPE_BOOL    ? "bool"
                                   : o.type == FLEXRT_FIELD_TYPE_INT   ? "int"
                                   : o.type == FLEXRT_FIELD_TYPE_FLOAT ? "float"
                                                                       : "string";
                std::cout << "  option " << o.name << " (" << type << ", default " << o.default_value << "): " << o.doc << "\n";
            }
        }
    }
    for (const auto& [id, libs] : providers)
        if (libs.size() > 1) {
            std::cout << "\nduplicate: " << id << " is in " << libs.size()
                      << " libraries (a run naming it by name stops, unless they are flexrt's own build and install copies; name one by "
                         "its path):\n";
            for (const auto& l : libs) std::cout << "  " << l << "\n";
        }
}

// The tokenizer of text prompts: model.tokenizer, else the weight directory when it holds vocab.json.
text::Gpt2Tokenizer load_tokenizer(const Config& cfg) {
    std::filesystem::path dir = cfg.model.tokenizer;
    if (dir.empty() && cfg.model.weights != "dummy" && std::filesystem::exists(std::filesystem::path(cfg.model.weights) / "vocab.json"))
        dir = cfg.model.weights;
    if (dir.empty())
        FLEXRT_THROW(FLEXRT_STATUS_INVALID_ARGUMENT,
                     "text prompts need a tokenizer: set model.tokenizer to a directory with the "
                     "checkpoint's vocab.json and merges.txt");
    return text::Gpt2Tokenizer::from_files(dir / "vocab.json", dir / "merges.txt");
}

int run(int argc, char** argv) {
    const auto run_start = std::chrono::steady_clock::now();
    po::options_description desc("flexrt: high-throughput OPT inference with GPU / host / disk offloading\n\nOptions");
    desc.add_options()("help,h", "print this help and the config reference")(
        "config,c", po::value<std::string>(), "TOML config file (default: the embedded configs/default.toml)")(
        "set,s", po::value<std::vector<std::string>>()->composing(),
        "override a config key: --set policy.gpu_batch_size=8 (repeatable; values in TOML syntax)")(
        "print-config", "print the effective config (defaults and plugin options included) and exit")(
        "list-plugins", "list the plugins on the search path with their options and exit")(
        "dry-run",
        "print the memory plan - the bytes each tier needs, against what it has - and exit; when a tier does not "
        "fit, by how much and what each remedy would free")(
        "trace", po::value<std::string>(),
        "write the generation's timeline to this file as a Chrome trace (open it in Perfetto or chrome://tracing): a track "
        "for the thread that runs the schedule and the host's compute, one per transfer worker")(
        "prompt,p", po::value<std::vector<std::string>>()->composing(),
        "a text prompt (repeatable; with run.prompts, these come first): generates text, decoded with the model's "
        "tokenizer (model.tokenizer), into run.output or onto stdout")(
        "json", po::value<std::string>(),
        "also write the run's result to this file as JSON: flexrt's version, the effective config, the hardware, the figures, "
        "the peak memory and the plan per tier (written whole)")("version",
                                                                 "print the version, the git commit, the compiler and CUDA, and exit")(
        "progress", "progress lines on stderr even when it is not a terminal (for logs)")("quiet,q", "no progress lines on stderr")(
        "rank", po::value<int>(), "pipeline parallelism: this process's stage, 0 .. world - 1 (with --world; mpirun and torchrun set it)")(
        "world", po::value<int>(), "pipeline parallelism: the number of stages (processes, one GPU each), the layers split evenly")(
        "rendezvous", po::value<std::string>(), "pipeline parallelism: rank 0's host:port where the ranks meet (pipeline.rendezvous)")(
        "local-rank", po::value<int>(),
        "pipeline parallelism: this process's rank on its host, which picks its GPU (default: LOCAL_RANK, else --rank)");
    po::variables_map vm;
    try {
        po::store(po::parse_command_line(argc, argv, desc), vm);
        po::notify(vm);
    } catch (const po::error& e) { FLEXRT_THROW(FLEXRT_STATUS_INVALID_ARGUMENT, std::string(e.what()) + " (see --help)"); }
    if (vm.count("version")) {
        std::cout << "flexrt " << kVersion << " (git " << kGitHash << "), " << kCuda << ", built with " << kCompiler << "\n";
        return 0;
    }
    if (vm.count("help")) {
        std::cout << "usage: flexrt [run] [options]        run the job (the default)\n"
                     "       flexrt plan [options]         the fastest policy that fits this machine (flexrt plan --help)\n"
                     "       flexrt calibrate [options]    measure this machine for the planner (flexrt calibrate --help)\n"
                     "       flexrt list-plugins [options] the plugins found, with their options (as --list-plugins)\n"
                     "       flexrt convert [options]      a Hugging Face checkpoint to a numpy weight directory (flexrt convert --help)\n"
                     "       flexrt iobench [options]      the disk tier's throughput (flexrt iobench --help)\n"
                     "       flexrt plugin-test <lib.so>   the conformance suite of a plugin library (flexrt plugin-test --help)\n\n"
                  << desc << "\nConfig keys (key, default, meaning):\n"
                  << config_reference();
        return 0;
    }
    // A pipeline's rank, before anything asks CUDA: the process is given its GPU.
    const app::RankPlace place =
        app::find_rank_place(vm.count("rank") ? std::optional<int>(vm["rank"].as<int>()) : std::nullopt,
                             vm.count("world") ? std::optional<int>(vm["world"].as<int>()) : std::nullopt,
                             vm.count("local-rank") ? std::optional<int>(vm["local-rank"].as<int>()) : std::nullopt);
    const bool pipelined = place.world > 1, reports = place.rank == place.world - 1;  // the last stage has the figures
    if (pipelined) app::pin_gpu_of(place);
    std::filesystem::path trace_file = vm.count("trace") ? std::filesystem::path(vm["trace"].as<std::string>()) : std::filesystem::path();
    if (pipelined && !trace_file.empty())  // a timeline per rank: out.json -> out.rank1.json
        trace_file.replace_filename(trace_file.stem().string() + ".rank" + std::to_string(place.rank) + trace_file.extension().string());
    if (!trace_file.empty()) app::check_writable(trace_file, "--trace");  // checked before the run, not after it
    if (vm.count("json") && reports) app::check_writable(vm["json"].as<std::string>(), "--json");
    const auto overrides = vm.count("set") ? vm["set"].as<std::vector<std::string>>() : std::vector<std::string>{};
    Config cfg = vm.count("config") ? load_config_file(vm["config"].as<std::string>(), overrides)
                                    : load_config(kDefaultConfig, "embedded default (configs/default.toml)", overrides);
    // Progress on a terminal; into a log only when asked (--progress), so that piped output stays clean.
    const bool progress = cfg.runtime.progress && !vm.count("quiet") && (::isatty(STDERR_FILENO) || vm.count("progress"));
    const std::string who = pipelined ? "flexrt rank " + std::to_string(place.rank) + "/" + std::to_string(place.world) : "flexrt";
    auto say = [&](const std::string& s) {
        if (progress) std::cerr << who << ": " << s << std::endl;
    };

    const auto search = plugin_search_path(cfg.runtime.plugin_path);
    if (vm.count("list-plugins")) {
        list_plugins(search);
        return 0;
    }
    const opt::OptConfig model = opt::from_section(cfg.model);

    // Text prompts, tokenized before anything is allocated: the longest sets run.prompt_len for the plan.
    std::vector<std::string> prompt_texts = vm.count("prompt") ? vm["prompt"].as<std::vector<std::string>>() : std::vector<std::string>{};
    if (!cfg.run.prompts.empty()) {
        const auto from_file = app::read_prompts(cfg.run.prompts);
        prompt_texts.insert(prompt_texts.end(), from_file.begin(), from_file.end());
    }
    if (!cfg.run.output.empty() && reports) app::check_writable(cfg.run.output, "run.output");
    std::optional<text::Gpt2Tokenizer> tokenizer;
    std::vector<std::vector<int32_t>> prompt_ids;
    if (!prompt_texts.empty()) {
        tokenizer = load_tokenizer(cfg);
        if (static_cast<int64_t>(tokenizer->vocab_size()) > model.vocab_size)
            FLEXRT_THROW(FLEXRT_STATUS_INVALID_ARGUMENT, "the tokenizer has " + std::to_string(tokenizer->vocab_size()) +
                                                             " tokens, more than " + model.name + "'s vocabulary of " +
                                                             std::to_string(model.vocab_size));
        int64_t longest = 0;
        for (size_t i = 0; i < prompt_texts.size(); ++i) {
            try {
                prompt_ids.push_back(tokenizer->encode(prompt_texts[i]));
            } catch (const Error& e) { FLEXRT_THROW(e.status(), "prompt " + std::to_string(i + 1) + ": " + e.what()); }
            longest = std::max<int64_t>(longest, static_cast<int64_t>(prompt_ids.back().size()));
        }
        cfg.run.prompt_len = longest;
        if (cfg.run.stop_token < 0) cfg.run.stop_token = tokenizer->eos_id();
        say("text prompts: " + std::to_string(prompt_ids.size()) + ", the longest " + std::to_string(longest) + " tokens");
    }
    const bool use_gpu = cfg.runtime.compute == "cuda" || (cfg.runtime.compute == "auto" && gpu_available());
    // The GPU pool: runtime.gpu_memory_gib, or 90% of the GPU's free memory (asked of the GPU only when needed).
    const double pool_gib = cfg.runtime.gpu_memory_gib;
    auto gpu_pool = [&]() -> uint64_t {
        return !use_gpu ? 0 : pool_gib > 0 ? static_cast<uint64_t>(pool_gib * (1ull << 30)) : gpu_free_memory() / 10 * 9;
    };
    if (cfg.policy_auto && pipelined)
        FLEXRT_THROW(FLEXRT_STATUS_INVALID_ARGUMENT, cfg.source +
                                                         ": policy = \"auto\" plans a run on one device; a pipeline's stages "
                                                         "(--world " +
                                                         std::to_string(place.world) + ") need a policy given");
    if (cfg.policy_auto)  // the planner chooses, against this machine's tiers, before anything is planned or allocated
        plan_policy_for_run(cfg, model, use_gpu, gpu_pool(),
                            prompt_ids.empty() ? cfg.run.max_block : static_cast<int64_t>(prompt_ids.size()), say);
    PluginRef storage_ref = find_plugin(FLEXRT_PLUGIN_KIND_STORAGE, cfg.storage.plugin, search);
    PluginRef schedule_ref = find_plugin(FLEXRT_PLUGIN_KIND_SCHEDULE, cfg.schedule.plugin, search);
    PluginOptions storage_opts = resolve_plugin_options(cfg, cfg.storage, *storage_ref.desc);
    PluginOptions schedule_opts = resolve_plugin_options(cfg, cfg.schedule, *schedule_ref.desc);
    const bool compressing = cfg.policy.compress_weights || cfg.policy.compress_cache;
    std::optional<PluginRef> compress_ref;
    std::optional<PluginOptions> compress_opts;
    if (compressing) {
        compress_ref = find_plugin(FLEXRT_PLUGIN_KIND_COMPRESS, cfg.compress.plugin, search);
        compress_opts = resolve_plugin_options(cfg, cfg.compress, *compress_ref->desc);
    }
    if (vm.count("print-config")) {
        toml::table eff = cfg.effective;
        eff.at_path("storage").as_table()->insert("options", storage_opts.effective);
        eff.at_path("schedule").as_table()->insert("options", schedule_opts.effective);
        if (compress_opts) eff.at_path("compress").as_table()->insert("options", compress_opts->effective);
        std::cout << "# effective config (from " << cfg.source << ")\n" << eff << "\n";
        return 0;
    }

    const Policy& p = cfg.policy;
    // A pipeline stage: its slice of the layers, with micro-batches in flight (one per stage unless set).
    EngineStage stage;
    std::string transport;
    if (pipelined) {
        const auto& pc = cfg.pipeline;
        transport = pc.transport == "auto" ? (use_gpu ? "nccl" : "tcp") : pc.transport;
        if (transport == "nccl" && !use_gpu)
            FLEXRT_THROW(FLEXRT_STATUS_INVALID_ARGUMENT,
                         "pipeline.transport = \"nccl\" moves GPU buffers, and this stage computes on the CPU "
                         "(runtime.compute = \"" +
                             cfg.runtime.compute + "\"): use \"tcp\"");
        stage.layers = partition_layers(model.num_layers, p.separate_attention_mlp ? 2 : 1, place.world)[static_cast<size_t>(place.rank)];
        stage.micro_batches = pc.micro_batches > 0 ? pc.micro_batches : place.world;
        stage.message_on_host = transport == "tcp";
        say("pipeline stage " + std::to_string(place.rank) + " of " + std::to_string(place.world) + " (" + place.from +
            "): layer-list entries [" + std::to_string(stage.layers->begin) + ", " + std::to_string(stage.layers->end) + "), " +
            std::to_string(stage.micro_batches) + " micro-batches in flight, hidden states over " + transport);
    }
    auto storage = create_plugin<IStorage>(storage_ref, storage_opts.fields);
    auto scheduler = create_plugin<IScheduler>(schedule_ref, schedule_opts.fields);
    auto compressor = compressing ? create_plugin<ICompressor>(*compress_ref, compress_opts->fields) : nullptr;
    DiskDevice disk(*storage, cfg.offload_dir);
    for (const auto& d : disk.removed_stale()) say("removed " + d.string() + ", left by a run that no longer exists");
    std::unique_ptr<opt::WeightSource> weights;
    if (cfg.model.weights == "dummy")
        weights = std::make_unique<opt::DummyWeights>(cfg.run.seed);
    else if (opt::HfCheckpointWeights::is_checkpoint(cfg.model.weights))
        weights = std::make_unique<opt::HfCheckpointWeights>(cfg.model.weights);
    else
        weights = std::make_unique<opt::NumpyDirWeights>(cfg.model.weights, disk);

    // The memory plan, before anything is allocated: --dry-run prints it; a run that does not fit stops here.
    // Host memory is pinned when a GPU reads it (policy.pin_weights): its copies then run at full speed.
    const bool pin = use_gpu && p.pin_weights;
    const uint64_t pool = gpu_pool();
    MemoryPlan plan;
    {
        const Group4Format default_format{sizeof(Group4Format), 4, 64, 0, 0};  // for the remedies' figures
        const auto* format = compressor ? static_cast<const Group4Format*>(compressor->get_extension(kGroup4Extension, 1)) : nullptr;
        auto plan_for = [&](const Policy& q) {
            const bool packs = q.compress_weights || q.compress_cache;
            return plan_memory(model, q, cfg.run.prompt_len, cfg.run.gen_len, use_gpu ? 2 : 4,
                               packs ? (format ? format : &default_format) : nullptr, *weights, stage);
        };
        TierCapacity cap;
        if (use_gpu && (pool_gib > 0 || gpu_available())) {
            cap.compute = pool;
            cap.compute_from = pool_gib > 0 ? "runtime.gpu_memory_gib" : "90% of the GPU's free memory";
        } else if (use_gpu) {
            cap.compute_from = "no GPU here: set runtime.gpu_memory_gib to check against it";
        }
        cap.compute_is_host = !use_gpu;
        cap.host = host_available_bytes();
        cap.host_from = "MemAvailable";
        if (pin && cfg.runtime.pinned_gib > 0) {
            cap.host = std::min(*cap.host, static_cast<uint64_t>(cfg.runtime.pinned_gib * (1ull << 30)));
            cap.host_from = "runtime.pinned_gib (pinned weights)", cap.host_pinned_cap = true;
        }
        cap.disk = disk_free_bytes(cfg.offload_dir);
        cap.disk_from = "free space at " + cfg.offload_dir;
        plan = plan_for(p);
        const MemoryReport report = report_memory(plan, cap, p, plan_for);
        const flexrt_status short_status = report.memory_short ? FLEXRT_STATUS_OUT_OF_MEMORY : FLEXRT_STATUS_NO_SPACE;
        if (vm.count("dry-run")) {
            std::cout << report.text;
            return report.fits ? 0 : exit_code(short_status);
        }
        if (!report.fits)
            FLEXRT_THROW(short_status, "the memory plan does not fit: " + report.shortfall + " (flexrt --dry-run lists the remedies)");
    }

    std::unique_ptr<ops::Compute> compute_ops = use_gpu ? ops::make_cuda_compute() : ops::make_cpu_compute();
    std::unique_ptr<IDevice> compute_dev;
    if (use_gpu)
        compute_dev = std::make_unique<CudaDevice>(pool);
    else
        compute_dev = std::make_unique<MemoryDevice>(TierKind::compute, "cpu (compute device)");
    IDevice& compute = *compute_dev;
    MemoryDevice host(TierKind::host, pin ? "pinned host" : "host", pin,
                      pin ? static_cast<uint64_t>(cfg.runtime.pinned_gib * (1ull << 30)) : 0);
    say("model " + model.name + " (" + std::to_string(model.num_layers) + " layers, hidden " + std::to_string(model.hidden_size) +
        "), compute device: " + compute.name() + ", weights: " + cfg.model.weights);
    TransferEngine transfers(static_cast<unsigned>(cfg.runtime.io_threads), static_cast<uint64_t>(cfg.runtime.staging_mib) << 20);

    // Dummy prompts (seeded random tokens, every prompt full length: the benchmark shape), or the text prompts in
    // blocks of gpu_batch_size * num_gpu_batches (times a pipeline's micro-batches), the last block filled up with BOS-only prompts whose
    // output is dropped.
    const int64_t N = p.block_size() * stage.micro_batches;
    std::vector<std::vector<int32_t>> all = prompt_ids;
    if (all.empty()) {
        all.assign(N, std::vector<int32_t>(cfg.run.prompt_len));
        for (int64_t n = 0; n < N; ++n)
            for (int64_t t = 0; t < cfg.run.prompt_len; ++t)
                all[n][t] = 3 + static_cast<int32_t>(ops::uniform(cfg.run.seed, n, 1000000 + t) * (model.vocab_size - 3));
    }

    // A pipeline's links: TCP for the tokens (and the rendezvous), NCCL or the same TCP for the hidden states. Every
    // rank checks it runs the same job before the weights are placed.
    std::unique_ptr<TcpCommunicator> control;
    std::unique_ptr<NcclCommunicator> nccl;
    if (pipelined) {
        const std::string at = vm.count("rendezvous") ? vm["rendezvous"].as<std::string>() : cfg.pipeline.rendezvous;
        say("meeting the other ranks at " + at);
        control = std::make_unique<TcpCommunicator>(place.rank, place.world, at, cfg.pipeline.timeout_s);
        uint64_t hash = 1469598103934665603ull;  // FNV-1a over the prompts' ids
        for (const auto& prompt : all)
            for (const int32_t id : prompt) hash = (hash ^ static_cast<uint64_t>(static_cast<uint32_t>(id) + 1)) * 1099511628211ull;
        std::ostringstream terms;
        terms << "model.name = " << model.name << "\nmodel.num_layers = " << model.num_layers
              << "\nmodel.hidden_size = " << model.hidden_size << "\nmodel.weights = " << (cfg.model.weights == "dummy" ? "dummy" : "files")
              << "\nruntime.compute = " << (use_gpu ? "cuda" : "cpu") << "\npipeline.transport = " << transport
              << "\npipeline.micro_batches = " << stage.micro_batches << "\npolicy.gpu_batch_size = " << p.gpu_batch_size
              << "\npolicy.num_gpu_batches = " << p.num_gpu_batches << "\npolicy.separate_attention_mlp = " << p.separate_attention_mlp
              << "\nrun.prompt_len = " << cfg.run.prompt_len << "\nrun.gen_len = " << cfg.run.gen_len << "\nrun.seed = " << cfg.run.seed
              << "\nrun.do_sample = " << cfg.run.do_sample << "\nrun.temperature = " << cfg.run.temperature
              << "\nrun.top_k = " << cfg.run.top_k << "\nrun.top_p = " << cfg.run.top_p << "\nrun.stop_token = " << cfg.run.stop_token
              << "\nrun.stop_strings = " << cfg.run.stop_strings.size() << "\nprompts = " << all.size() << " (hash " << hash << ")\n";
        check_pipeline_agreement(*control, terms.str());
        if (transport == "nccl") nccl = std::make_unique<NcclCommunicator>(*control);
    }

    std::optional<PackedWeightStore> store;
    if (p.compress_weights && !cfg.compress_store_dir.empty()) store.emplace(cfg.compress_store_dir);
    Engine engine(model, p, cfg.run.prompt_len, cfg.run.gen_len, {*compute_ops, compute, host, disk, transfers}, *weights, say,
                  compressor.get(), store ? &*store : nullptr, stage);
    // FlexLLMGen generates once before it measures; so does flexrt (run.warmup): two tokens on BOS-only prompts at
    // the run's shapes, so that a process's one-time costs - library handles, kernels loaded on first use, the GEMM
    // algorithm each shape keeps (ops/linear_cuda.cu) - are start-up, not the first block's prefill and decode. Not
    // in a pipeline, whose ranks would have to warm up together.
    const std::vector<int32_t> bos_only{tokenizer ? tokenizer->bos_id() : 2};  // the warm-up's prompts, and a last block's fillers
    if (cfg.run.warmup && !pipelined) {
        say("warming up: 2 tokens on BOS-only prompts");
        GenerateOptions warm;
        warm.stop_when = [](int64_t, const int32_t*, int64_t count) { return count >= 2; };
        const auto t0 = std::chrono::steady_clock::now();
        engine.generate(std::vector<std::vector<int32_t>>(N, bos_only), warm, *scheduler);
        say("warmed up in " + std::to_string(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()).substr(0, 5) +
            " s");
    }
    const double startup_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - run_start).count();
    if (store)
        say("compressed weights: " + std::to_string(store->loaded()) + " tensors read from " + store->dir().string() + ", " +
            std::to_string(store->saved()) + " compressed and written there");

    const int64_t real = static_cast<int64_t>(all.size()), blocks = (real + N - 1) / N;

    GenerateOptions go;
    go.do_sample = cfg.run.do_sample;
    go.temperature = cfg.run.temperature;
    go.top_k = cfg.run.top_k;
    go.top_p = cfg.run.top_p;
    go.seed = cfg.run.seed;
    go.stop_token = cfg.run.stop_token;
    int64_t block_real = 0;  // real prompts in the block running; the rest are fillers
    std::optional<text::StopStrings> stops;
    if (tokenizer && !cfg.run.stop_strings.empty()) stops.emplace(*tokenizer, cfg.run.stop_strings);
    if (stops)
        go.stop_when = [&](int64_t n, const int32_t* tokens, int64_t count) {
            if (n >= block_real) return true;       // a filler: stop at once, so the run can end when the real ones have
            return stops->newly_in(tokens, count);  // called after every token: only the text's tail is new
        };
    say("generating: " + std::to_string(real) + " prompts x " + std::to_string(cfg.run.prompt_len) + " tokens" +
        (blocks > 1 ? " in " + std::to_string(blocks) + " blocks" : std::string()) + ", " + std::to_string(cfg.run.gen_len) +
        " new tokens, schedule " + schedule_ref.desc->name);
    if (!trace_file.empty()) {
        trace::start();
        trace::name_thread("schedule and compute (host)");
    }
    GenerationResult r;
    double prefill = 0, decode = 0;
    std::vector<app::Completion> completions;
    for (int64_t blk = 0; blk < blocks; ++blk) {
        std::vector<std::vector<int32_t>> block(N);
        for (int64_t n = 0; n < N; ++n) block[n] = blk * N + n < real ? all[blk * N + n] : bos_only;
        block_real = std::min(N, real - blk * N);
        r = pipelined ? run_pipeline_stage(engine, block, go, *scheduler, {nccl ? static_cast<ICommunicator&>(*nccl) : *control, *control},
                                           stage.micro_batches, say)
                      : engine.generate(block, go, *scheduler);
        const double pf = r.step_seconds.at(0), dc = std::accumulate(r.step_seconds.begin() + 1, r.step_seconds.end(), 0.0);
        prefill += pf, decode += dc;
        const bool keep = tokenizer || !cfg.run.output.empty();  // dummy prompts too: their token ids into run.output
        for (int64_t n = 0; keep && n < N && blk * N + n < real; ++n) {
            app::Completion c;
            if (tokenizer) c.prompt = prompt_texts[blk * N + n];
            c.prompt_tokens = static_cast<int64_t>(block[n].size());
            for (int64_t t = 0; t < r.gen_len; ++t) {
                const int32_t id = r.tokens[n * r.gen_len + t];
                if (id == cfg.run.stop_token) {
                    c.stopped = true;
                    break;
                }
                c.ids.push_back(id);
            }
            // The first stop string ends the completion: its ids up to the token that completed it (pad follows
            // in the engine's output), its text up to the string, which is left out.
            if (const int64_t k = stops ? stops->tokens_to_first(c.ids) : -1; k >= 0)
                c.ids.resize(static_cast<size_t>(k)), c.stopped = true;
            if (tokenizer) c.text = tokenizer->decode(c.ids);
            if (stops)
                if (const size_t cut = stops->cut(c.text); cut != std::string::npos) c.text.resize(cut);
            c.block = blk, c.prefill_s = pf, c.decode_s = dc;
            completions.push_back(std::move(c));
        }
    }
    if (!trace_file.empty()) {
        trace::write(trace_file);
        say("timeline written to " + trace_file.string());
    }

    if (!reports) {  // a stage before the last: its memory; the figures are the last stage's (every token passes it)
        std::printf(
            "rank %d of %d (layer-list entries [%lld, %lld)): peak gpu mem %.3f GB, peak host memory %.3f GB (process), tier peaks: "
            "gpu %.3f GB, cpu %.3f GB, disk %.3f GB; memory plan: gpu %.3f GB, cpu %.3f GB, disk %.3f GB; start-up %.3f s\n",
            place.rank, place.world, static_cast<long long>(stage.layers->begin), static_cast<long long>(stage.layers->end),
            compute.peak_bytes() / kGB, peak_host_memory_bytes() / kGB, compute.peak_bytes() / kGB, host.peak_bytes() / kGB,
            disk.peak_bytes() / kGB, plan.total(TierKind::compute) / kGB, plan.total(TierKind::host) / kGB,
            plan.total(TierKind::disk) / kGB, startup_seconds);
        return 0;
    }

    // FlexLLMGen's figures (flex_opt.py's formulas; GB = 2^30).
    // Over every block: the sequences run (fillers included), the prefill and decode seconds summed.
    if (pipelined)
        std::printf(
            "pipeline: %d stages (%s), %lld micro-batches in flight, hidden states over %s; the figures below are the last "
            "stage's, its memory its own\n",
            place.world, place.from.c_str(), static_cast<long long>(stage.micro_batches), transport.c_str());
    const double s = static_cast<double>(cfg.run.prompt_len), n = static_cast<double>(cfg.run.gen_len);
    const double total = prefill + decode;
    const int64_t seqs = N * blocks;
    std::printf("model size: %.3f GB\tcache size: %.3f GB\thidden size (p): %.3f GB\n", model.model_bytes() / kGB,
                model.cache_bytes(N, cfg.run.prompt_len + cfg.run.gen_len) / kGB,
                model.hidden_bytes(N, cfg.run.prompt_len + cfg.run.gen_len) / kGB);
    std::printf("peak gpu mem: %.3f GB (compute device: %s)\tprojected: False\n", compute.peak_bytes() / kGB, compute.name().c_str());
    std::printf("prefill latency: %.3f s\tprefill throughput: %.3f token/s\n", prefill, seqs * s / prefill);
    std::printf("decode latency: %.3f s\tdecode throughput: %.3f token/s\n", decode, decode > 0 ? seqs * (n - 1) / decode : 0.0);
    std::printf("total latency: %.3f s\ttotal throughput: %.3f token/s\n", total, seqs * n / total);
    std::printf("peak host memory: %.3f GB (process)\ttier peaks: gpu %.3f GB, cpu %.3f GB, disk %.3f GB\n", peak_host_memory_bytes() / kGB,
                compute.peak_bytes() / kGB, host.peak_bytes() / kGB, disk.peak_bytes() / kGB);
    std::printf(
        "memory plan: gpu %.3f GB, cpu %.3f GB, disk %.3f GB\tstart-up: %.3f s (devices, placement of the weights, buffers, warm-up)\n",
        plan.total(TierKind::compute) / kGB, plan.total(TierKind::host) / kGB, plan.total(TierKind::disk) / kGB, startup_seconds);
    std::printf("first sequence's tokens:");
    for (int64_t t = 0; t < std::min<int64_t>(r.gen_len, 16); ++t) std::printf(" %d", r.tokens[t]);
    std::printf("\n");
    if (vm.count("json")) {  // the same figures, machine-readable
        std::ostringstream j;
        char figures[512];
        std::snprintf(figures, sizeof figures,
                      "{\"prefill_latency_s\": %.6f, \"prefill_tok_s\": %.3f, \"decode_latency_s\": %.6f, \"decode_tok_s\": %.3f, "
                      "\"total_latency_s\": %.6f, \"total_tok_s\": %.3f, \"startup_s\": %.3f, \"sequences\": %lld, \"prompt_len\": %lld, "
                      "\"gen_len\": %lld}",
                      prefill, seqs * s / prefill, decode, decode > 0 ? seqs * (n - 1) / decode : 0.0, total, seqs * n / total,
                      startup_seconds, static_cast<long long>(seqs), static_cast<long long>(cfg.run.prompt_len),
                      static_cast<long long>(cfg.run.gen_len));
        auto gib = [](double b) { return std::to_string(b / kGB); };
        j << "{\"flexrt\": {\"version\": \"" << kVersion << "\", \"git\": \"" << kGitHash << "\", \"cuda\": " << text::json_quote(kCuda)
          << ", \"compiler\": " << text::json_quote(kCompiler) << "},\n \"config\": " << toml::json_formatter{cfg.effective}
          << ",\n \"hardware\": {\"compute_device\": " << text::json_quote(compute.name())
          << ", \"host_threads\": " << std::thread::hardware_concurrency() << "},\n \"figures\": " << figures
          << ",\n \"memory_gib\": {\"peak\": {\"gpu\": " << gib(compute.peak_bytes()) << ", \"cpu\": " << gib(host.peak_bytes())
          << ", \"disk\": " << gib(disk.peak_bytes()) << ", \"host_process\": " << gib(peak_host_memory_bytes())
          << "}, \"plan\": {\"gpu\": " << gib(plan.total(TierKind::compute)) << ", \"cpu\": " << gib(plan.total(TierKind::host))
          << ", \"disk\": " << gib(plan.total(TierKind::disk)) << "}}}\n";
        text::write_whole_file(vm["json"].as<std::string>(), "--json", [&](std::ostream& out) { out << j.str(); });
    }
    if (!completions.empty()) {  // the completions: JSONL into run.output, or readable on stdout (text prompts)
        if (!cfg.run.output.empty()) {
            std::string lines;
            for (const auto& c : completions) lines += app::jsonl_line(c) + "\n";
            text::write_whole_file(cfg.run.output, "run.output", [&](std::ostream& out) { out << lines; });
            say("completions written to " + cfg.run.output);
        } else {
            for (size_t i = 0; i < completions.size(); ++i)
                std::printf("\n--- prompt %zu (%lld tokens; %s) ---\n%s%s\n", i + 1, static_cast<long long>(completions[i].prompt_tokens),
                            completions[i].stopped ? "stopped" : "length", completions[i].prompt.c_str(), completions[i].text.c_str());
        }
    }
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    install_interrupt_handlers();
    try {
        // Subcommands, `flexrt <name> [options]`: run (the default, also with no name), plan (the run's memory
        // the planner's policy), calibrate, list-plugins (the run's options), convert, iobench, plugin-test.
        const std::string sub = argc > 1 ? argv[1] : "";
        if (sub == "iobench") return iobench_main(std::vector<std::string>(argv + 2, argv + argc));
        if (sub == "convert") return convert_main(std::vector<std::string>(argv + 2, argv + argc));
        if (sub == "plugin-test") return plugin_test_main(std::vector<std::string>(argv + 2, argv + argc));
        if (sub == "plan") return plan_main(std::vector<std::string>(argv + 2, argv + argc));
        if (sub == "calibrate") return calibrate_main(std::vector<std::string>(argv + 2, argv + argc));
        if (sub == "run" || sub == "list-plugins") {
            std::vector<char*> args(argv, argv + argc);
            static char list_plugins[] = "--list-plugins";
            args[1] = sub == "list-plugins" ? list_plugins : nullptr;
            if (!args[1]) args.erase(args.begin() + 1);
            return run(static_cast<int>(args.size()), args.data());
        }
        return run(argc, argv);
    } catch (const Error& e) {
        std::fflush(stdout);
        std::cerr << "flexrt: error: " << e.what() << std::endl;
        return exit_code(e.status());
    } catch (const std::exception& e) {
        std::cerr << "flexrt: internal error: " << e.what() << std::endl;
        return 1;
    }
}
