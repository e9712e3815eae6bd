#include "hardware_profile.hpp"

#include "core/src/gpu_upload.hpp"
#include "text/whole_file.hpp"

#include <flexrt/status.hpp>

#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <toml++/toml.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

namespace flexrt::planner {
namespace {

std::string cpu_model() {
    std::ifstream in("/proc/cpuinfo");
    for (std::string line; std::getline(in, line);)
        if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
    return "unknown CPU";
}

uint64_t mem_total() {
    std::ifstream in("/proc/meminfo");
    std::string key;
    uint64_t kb = 0;
    while (in >> key >> kb)
        if (key == "MemTotal:") return kb << 10;
    return 0;
}

}  // namespace

std::string machine_fingerprint(const std::string& offload_dir) {
    std::ostringstream os;
    os << cpu_model() << " x" << std::thread::hardware_concurrency() << "; " << (mem_total() >> 30) << " GiB";
    os << "; " << (gpu_available() ? gpu_name() : std::string("no GPU"));
    // The file system the offload dir is (or will be) on: its nearest existing ancestor's.
    std::filesystem::path dir = std::filesystem::absolute(offload_dir);
    while (!std::filesystem::exists(dir) && dir != dir.parent_path()) dir = dir.parent_path();
    struct stat st {};
    if (::stat(dir.c_str(), &st) == 0) os << "; offload fs " << major(st.st_dev) << ":" << minor(st.st_dev);
    return os.str();
}

std::filesystem::path default_profile_path() {
    if (const char* p = std::getenv("FLEXRT_PROFILE"); p && *p) return p;
    if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) return std::filesystem::path(x) / "flexrt" / "hardware-profile.toml";
    const char* home = std::getenv("HOME");
    return std::filesystem::path(home && *home ? home : "/tmp") / ".cache" / "flexrt" / "hardware-profile.toml";
}

std::string HardwareProfile::to_toml() const {
    toml::table t{{"fingerprint", fingerprint},
                  {"storage", storage},
                  {"gpu", gpu},
                  {"gpu_name", gpu_name},
                  {"gpu_memory_gib", static_cast<double>(gpu_memory) / (1ull << 30)},
                  {"host_memory_gib", static_cast<double>(host_memory) / (1ull << 30)},
                  {"disk_free_gib", static_cast<double>(disk_free) / (1ull << 30)},
                  {"gemm_tflops", gemm_flops / 1e12},
                  {"mem_gbps", mem_bps / 1e9},
                  {"h2d_gbps", h2d_bps / 1e9},
                  {"d2h_gbps", d2h_bps / 1e9},
                  {"disk_read_gbps", disk_read_bps / 1e9},
                  {"disk_write_gbps", disk_write_bps / 1e9},
                  {"cpu_attention_gbps", cpu_attention_bps / 1e9},
                  {"layer_overhead_us", layer_overhead_s * 1e6},
                  {"prefill_efficiency", prefill_efficiency},
                  {"decode_efficiency", decode_efficiency}};
    std::ostringstream os;
    os << "# flexrt hardware profile (flexrt calibrate): rates in GB/s and TFLOP/s, memory in GiB\n"
       << toml::table{{"hardware", t}} << "\n";
    return os.str();
}

HardwareProfile HardwareProfile::load(const std::filesystem::path& file) {
    toml::table doc;
    try {
        doc = toml::parse_file(file.string());
    } catch (const toml::parse_error& e) {
        FLEXRT_THROW(FLEXRT_STATUS_BAD_DATA, "hardware profile " + file.string() + ": " + std::string(e.description()));
    }
    const toml::table* t = doc["hardware"].as_table();
    if (!t) FLEXRT_THROW(FLEXRT_STATUS_BAD_DATA, "hardware profile " + file.string() + ": no [hardware] table");
    auto num = [&](const char* key) {
        const auto v = (*t)[key].value<double>();
        if (!v || *v < 0)
            FLEXRT_THROW(FLEXRT_STATUS_BAD_DATA, "hardware profile " + file.string() + ": hardware." + key + " is missing or negative");
        return *v;
    };
    auto str = [&](const char* key) {
        const auto v = (*t)[key].value<std::string>();
        if (!v) FLEXRT_THROW(FLEXRT_STATUS_BAD_DATA, "hardware profile " + file.string() + ": hardware." + key + " is missing");
        return *v;
    };
    HardwareProfile p;
    p.fingerprint = str("fingerprint");
    p.storage = str("storage");
    p.gpu = (*t)["gpu"].value_or(false);
    p.gpu_name = str("gpu_name");
    p.gpu_memory = static_cast<uint64_t>(num("gpu_memory_gib") * (1ull << 30));
    p.host_memory = static_cast<uint64_t>(num("host_memory_gib") * (1ull << 30));
    p.disk_free = static_cast<uint64_t>(num("disk_free_gib") * (1ull << 30));
    p.gemm_flops = num("gemm_tflops") * 1e12;
    p.mem_bps = num("mem_gbps") * 1e9;
    p.h2d_bps = num("h2d_gbps") * 1e9;
    p.d2h_bps = num("d2h_gbps") * 1e9;
    p.disk_read_bps = num("disk_read_gbps") * 1e9;
    p.disk_write_bps = num("disk_write_gbps") * 1e9;
    p.cpu_attention_bps = num("cpu_attention_gbps") * 1e9;
    p.layer_overhead_s = num("layer_overhead_us") * 1e-6;
    p.prefill_efficiency = num("prefill_efficiency");
    p.decode_efficiency = num("decode_efficiency");
    if (p.gemm_flops <= 0 || p.mem_bps <= 0 || p.disk_read_bps <= 0 || p.cpu_attention_bps <= 0 || p.prefill_efficiency <= 0 ||
        p.decode_efficiency <= 0)
        FLEXRT_THROW(FLEXRT_STATUS_BAD_DATA, "hardware profile " + file.string() + ": a rate the planner divides by is 0");
    return p;
}

void HardwareProfile::save(const std::filesystem::path& file) const {
    std::error_code ec;
    if (file.has_parent_path()) std::filesystem::create_directories(file.parent_path(), ec);
    text::write_whole_file(file, "the hardware profile", [&](std::ostream& out) { out << to_toml(); });
}

}  // namespace flexrt::planner
