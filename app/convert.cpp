// One pass, tensor by tensor: host memory holds one tensor (the largest bounds it), never the model. Every
// name and shape is checked against the model before anything is written. Each file is written under a
// temporary name, flushed and renamed when complete, then recorded in the directory's manifest (its size and
// the source it came from); a re-run skips what the manifest records and the file confirms (its .npy header
// and size), and redoes the rest - so a conversion killed at any point resumes, and no file that looks
// complete is ever half-written.
#include "convert.hpp"

#include "default_config.hpp"  // generated from configs/default.toml

#include "core/src/config.hpp"
#include "core/src/host_log.hpp"
#include "core/src/npy.hpp"
#include "models/opt/hf_checkpoint.hpp"
#include "models/opt/opt_config.hpp"
#include "models/opt/opt_layers.hpp"

#include <flexrt/status.hpp>

#include <boost/program_options.hpp>

#include <fcntl.h>
#include <unistd.h>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>

namespace flexrt {
namespace {

namespace po = boost::program_options;
namespace fs = std::filesystem;
constexpr const char* kManifest = "flexrt-convert.manifest";  // lines: name \t bytes \t source identity

std::map<std::string, std::pair<uint64_t, std::string>> read_manifest(const fs::path& dir) {
    std::map<std::string, std::pair<uint64_t, std::string>> m;
    std::ifstream in(dir / kManifest);
    for (std::string line; std::getline(in, line);) {  // a line cut by a kill has too few fields: ignored, redone
        const size_t a = line.find('\t'), b = a == std::string::npos ? a : line.find('\t', a + 1);
        if (b == std::string::npos || line.find_first_not_of("0123456789", a + 1) != b) continue;
        m[line.substr(0, a)] = {std::stoull(line.substr(a + 1, b - a - 1)), line.substr(b + 1)};
    }
    return m;
}

// The file is what the manifest says was written: its .npy header names the shape as fp16 and its size is exact.
bool verified(const fs::path& file, const opt::WeightSpec& spec, uint64_t bytes) {
    std::error_code ec;
    if (fs::file_size(file, ec) != bytes || ec) return false;
    std::ifstream in(file, std::ios::binary);
    std::string head(kNpyProbeBytes, '\0');
    in.read(head.data(), static_cast<std::streamsize>(head.size()));
    try {
        const NpyHeader h = parse_npy_header(head.data(), static_cast<uint64_t>(in.gcount()), file.string());
        return h.dtype == DType::f16 && h.shape == spec.shape && h.data_offset + h.data_bytes() == bytes;
    } catch (const Error&) { return false; }
}

void fsync_file(const fs::path& p) {
    const int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0 || ::fsync(fd) != 0) {
        const int e = errno;
        if (fd >= 0) ::close(fd);
        FLEXRT_THROW(FLEXRT_STATUS_IO_ERROR, "convert: flushing " + p.string() + " failed: " + errno_text(e));
    }
    ::close(fd);
}

}  // namespace

int convert_main(const std::vector<std::string>& args) {
    po::options_description desc("flexrt convert: a Hugging Face checkpoint to a FlexLLMGen numpy weight directory\n\nOptions");
    desc.add_options()("help,h", "this help")("from", po::value<std::string>(),
                                              "the checkpoint directory (model.safetensors, or its index and shards)")(
        "to", po::value<std::string>(), "the numpy directory to write (created; a re-run resumes)")(
        "config,c", po::value<std::string>(), "TOML config whose [model] names the model (default: the embedded default's)")(
        "set,s", po::value<std::vector<std::string>>()->composing(), "override a config key, as for a run: --set model.name=opt-1.3b")(
        "quiet,q", "no progress on stderr");
    po::variables_map vm;
    try {
        po::store(po::command_line_parser(args).options(desc).run(), vm);
        po::notify(vm);
    } catch (const po::error& e) {
        FLEXRT_THROW(FLEXRT_STATUS_INVALID_ARGUMENT, std::string("convert: ") + e.what() + " (see flexrt convert --help)");
    }
    if (vm.count("help")) {
        std::cout << "usage: flexrt convert --from HF_DIR --to NUMPY_DIR [--set model.name=opt-...]\n\n" << desc;
        return 0;
    }
    if (!vm.count("from") || !vm.count("to"))
        FLEXRT_THROW(FLEXRT_STATUS_INVALID_ARGUMENT, "convert: --from and --to are required (see --help)");
    const auto overrides = vm.count("set") ? vm["set"].as<std::vector<std::string>>() : std::vector<std::string>{};
    const Config cfg = vm.count("config") ? load_config_file(vm["config"].as<std::string>(), overrides)
                                          : load_config(kDefaultConfig, "embedded default (configs/default.toml)", overrides);
    const opt::OptConfig model = opt::from_section(cfg.model);
    const fs::path from = vm["from"].as<std::string>(), to = vm["to"].as<std::string>();
    const bool progress = !vm.count("quiet") && ::isatty(STDERR_FILENO);

    opt::HfCheckpointWeights source(from);
    std::vector<opt::WeightSpec> specs;
    for (const auto& layer : opt::build_layers(model, true))
        for (const auto& s : layer->weights())
            if (std::none_of(specs.begin(), specs.end(), [&](const opt::WeightSpec& x) { return x.name == s.name; })) specs.push_back(s);
    uint64_t total = 0;
    std::vector<std::string> used = {"lm_head.weight"};  // the tied head: the input embedding again
    for (const auto& s : specs) {                        // every name and shape before any byte is written
        source.check(s);
        used.push_back(source.name_of(s));
        total += static_cast<uint64_t>(numel(s.shape)) * 2;
    }
    std::vector<std::string> unused;
    for (const auto& name : source.tensor_names())
        if (std::find(used.begin(), used.end(), name) == used.end()) unused.push_back(name);
    if (!unused.empty())  // a checkpoint of another model (more layers, another size): not silently cut down
        FLEXRT_THROW(FLEXRT_STATUS_BAD_DATA, "convert: " + from.string() + " holds " + std::to_string(unused.size()) + " tensors that " +
                                                 model.name + " does not have, " + unused.front() +
                                                 " the first: is model.name (or the custom shape) this checkpoint's?");
    fs::create_directories(to);
    for (const auto& e : fs::directory_iterator(to))  // what a killed run left half-written
        if (e.path().extension() == ".partial") fs::remove(e.path());
    auto manifest = read_manifest(to);
    std::ofstream log(to / kManifest, std::ios::app);
    if (!log) FLEXRT_THROW(FLEXRT_STATUS_IO_ERROR, "convert: cannot write " + (to / kManifest).string());

    const auto t0 = std::chrono::steady_clock::now();
    auto last = t0;
    uint64_t done_bytes = 0, converted = 0, skipped = 0;
    std::vector<std::byte> buffer;
    for (size_t i = 0; i < specs.size(); ++i) {
        const opt::WeightSpec& s = specs[i];
        const fs::path out = to / s.name;
        const std::string identity = source.identity(s);
        const uint64_t bytes = static_cast<uint64_t>(numel(s.shape)) * 2;
        const auto it = manifest.find(s.name);
        if (it != manifest.end() && it->second.second == identity && verified(out, s, it->second.first)) {
            ++skipped;
        } else {
            buffer.resize(bytes);
            source.read(s, buffer.data());
            const fs::path partial = out.string() + ".partial";
            write_npy(partial.string(), DType::f16, s.shape, buffer.data());
            fsync_file(partial);
            fs::rename(partial, out);
            log << s.name << '\t' << fs::file_size(out) << '\t' << identity << '\n' << std::flush;
            if (!log) FLEXRT_THROW(FLEXRT_STATUS_IO_ERROR, "convert: writing " + (to / kManifest).string() + " failed");
            ++converted;
        }
        done_bytes += bytes;
        const auto now = std::chrono::steady_clock::now();
        if (progress && (now - last > std::chrono::milliseconds(500) || i + 1 == specs.size())) {
            const double secs = std::chrono::duration<double>(now - t0).count(), rate = done_bytes / std::max(secs, 1e-9);
            std::fprintf(stderr, "\rflexrt convert: %zu/%zu tensors, %.2f of %.2f GB, %.0f MB/s, ETA %.0f s   ", i + 1, specs.size(),
                         done_bytes / 1e9, total / 1e9, rate / 1e6, (total - done_bytes) / std::max(rate, 1.0));
            last = now;
        }
    }
    if (progress) std::fprintf(stderr, "\n");
    std::printf("converted %llu tensors, skipped %llu already converted and verified; %.3f GB of %s weights in %s\n",
                static_cast<unsigned long long>(converted), static_cast<unsigned long long>(skipped), total / 1e9, model.name.c_str(),
                to.string().c_str());
    return 0;
}

}  // namespace flexrt
