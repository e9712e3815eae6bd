#include "iobench.hpp"

#include "core/src/config.hpp"
#include "core/src/device.hpp"
#include "core/src/gpu_upload.hpp"
#include "core/src/host_log.hpp"
#include "core/src/plugin_loader.hpp"
#include "core/src/transfer.hpp"

#include "default_config.hpp"
#include "text/whole_file.hpp"

#include <flexrt/status.hpp>
#include <flexrt/storage.hpp>

#include <boost/program_options.hpp>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>
#include <regex>
#include <sstream>

namespace po = boost::program_options;

namespace flexrt {
namespace {

using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

uint64_t parse_size(const std::string& s) {
    std::smatch m;
    if (!std::regex_match(s, m, std::regex(R"((\d+)\s*([kKmMgG]?)(i?[bB])?)")))
        FLEXRT_THROW(FLEXRT_STATUS_INVALID_ARGUMENT, "size '" + s + "': expected a number with an optional K, M or G");
    uint64_t v = std::stoull(m[1]);
    switch (m[2].str().empty() ? ' ' : std::tolower(m[2].str()[0])) {
    case 'k': return v << 10;
    case 'm': return v << 20;
    case 'g': return v << 30;
    default: return v;
    }
}

std::vector<std::string> split(const std::string& s, char sep) {
    std::vector<std::string> out;
    std::stringstream ss(s);
    for (std::string part; std::getline(ss, part, sep);)
        if (!part.empty()) out.push_back(part);
    return out;
}

double percentile(std::vector<double> v, double p) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    return v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())))];
}

double cpu_seconds() {
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) + (u.ru_utime.tv_usec + u.ru_stime.tv_usec) * 1e-6;
}

// A storage plugin made from the base config plus overrides ("storage.options.queue_depth=8").
struct Backend {
    std::string label;
    PluginPtr<IStorage> storage;
    toml::table options;
};

Backend make_backend(const std::string& base_text, const std::string& base_name, std::vector<std::string> overrides,
                     const std::string& label) {
    Config cfg = load_config(base_text, base_name, overrides);
    PluginRef ref = find_plugin(FLEXRT_PLUGIN_KIND_STORAGE, cfg.storage.plugin, plugin_search_path(cfg.runtime.plugin_path));
    PluginOptions opts = resolve_plugin_options(cfg, cfg.storage, *ref.desc);
    Backend b{label, create_plugin<IStorage>(ref, opts.fields), opts.effective};
    if (b.label.empty()) {
        std::ostringstream os;
        os << ref.desc->name;
        for (const auto& [k, v] : opts.effective) v.visit([&](const auto& x) { os << " " << k.str() << "=" << x; });
        b.label = os.str();
    }
    return b;
}

struct Pass {
    double seconds = 0, cpu_percent = 0;
    uint64_t bytes = 0;
    std::vector<double> submit_us, complete_us;
    double gbps() const { return seconds > 0 ? static_cast<double>(bytes) / seconds / 1e9 : 0; }
};

// The file's pages are dropped from the page cache and checked to be gone (mincore), so a read pass
// measures the disk. Returns how, or throws when the pages stay (then a read figure would be a lie).
std::string drop_page_cache(const std::string& path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    FLEXRT_SYS_CHECK(fd, "open " + path);
    ::fdatasync(fd);
    ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    struct stat st {};
    ::fstat(fd, &st);
    auto resident = [&]() -> double {
        if (st.st_size == 0) return 0;
        void* p = ::mmap(nullptr, static_cast<size_t>(st.st_size), PROT_READ, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED) return 0;
        const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE)), pages = (static_cast<size_t>(st.st_size) + page - 1) / page;
        std::vector<unsigned char> vec(pages);
        size_t in = 0;
        if (::mincore(p, static_cast<size_t>(st.st_size), vec.data()) == 0)
            for (unsigned char c : vec) in += c & 1;
        ::munmap(p, static_cast<size_t>(st.st_size));
        return static_cast<double>(in) / static_cast<double>(pages);
    };
    std::string how = "page cache dropped for the file (fadvise DONTNEED, checked with mincore)";
    if (resident() > 0.01) {
        int dc = ::open("/proc/sys/vm/drop_caches", O_WRONLY | O_CLOEXEC);
        if (dc >= 0) {
            ::sync();
            (void)!::write(dc, "1", 1);
            ::close(dc);
            how = "page cache dropped (/proc/sys/vm/drop_caches, as root)";
        }
    }
    const double left = resident();
    ::close(fd);
    if (left > 0.01)
        FLEXRT_THROW(FLEXRT_STATUS_UNSUPPORTED, "cannot empty the page cache for " + path + " (" +
                                                    std::to_string(static_cast<int>(left * 100)) +
                                                    "% still cached): a read figure would measure memory, not the disk");
    return how;
}

// One pass over the whole file: `inflight` requests of `request` bytes outstanding at a time.
Pass run_pass(IStorage& st, const std::string& path, bool write, uint64_t size, uint64_t request, unsigned inflight,
              std::vector<std::unique_ptr<std::byte, decltype(&std::free)>>& bufs) {
    uint64_t file = 0;
    auto check = [&](flexrt_status s, const std::string& what) {
        if (s != FLEXRT_STATUS_OK) FLEXRT_THROW(s, what + ": " + take_last_plugin_error());
    };
    check(st.open(path.c_str(), write ? (FLEXRT_OPEN_WRITE | FLEXRT_OPEN_CREATE) : FLEXRT_OPEN_READ, size, &file), "open " + path);
    Pass p;
    std::vector<flexrt_io_request> reqs(inflight);
    std::vector<Clock::time_point> started(inflight);
    const double cpu0 = cpu_seconds();
    const auto t0 = Clock::now();
    uint64_t next = 0;
    size_t oldest = 0, outstanding = 0;
    auto submit_one = [&](size_t slot) {
        flexrt_io_request& r = reqs[slot];
        r = {};
        r.struct_size = sizeof r;
        r.op = write ? FLEXRT_IO_OP_WRITE : FLEXRT_IO_OP_READ;
        r.file = file;
        r.offset = next;
        r.bytes = std::min(request, size - next);
        r.buffer = bufs[slot].get();
        next += r.bytes;
        flexrt_io_request* rp = &r;
        started[slot] = Clock::now();
        check(st.submit(&rp, 1), "submit");
        p.submit_us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - started[slot]).count());
        ++outstanding;
    };
    for (size_t s = 0; s < inflight && next < size; ++s) submit_one(s);
    while (outstanding) {
        flexrt_io_request* rp = &reqs[oldest];
        check(st.wait(&rp, 1), "wait");
        p.complete_us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - started[oldest]).count());
        if (rp->status != FLEXRT_STATUS_OK || rp->bytes_done != rp->bytes)
            FLEXRT_THROW(rp->status ? rp->status : FLEXRT_STATUS_IO_ERROR,
                         std::string(write ? "writing " : "reading ") + path + " at offset " + std::to_string(rp->offset) + ": " +
                             (rp->sys_errno ? errno_text(rp->sys_errno) : flexrt_status_name(rp->status)));
        p.bytes += rp->bytes_done;
        --outstanding;
        if (next < size) submit_one(oldest);
        oldest = (oldest + 1) % inflight;
    }
    if (write) check(st.flush(file), "flush " + path);  // a write is done when it is durable
    p.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    p.cpu_percent = 100.0 * (cpu_seconds() - cpu0) / p.seconds;
    check(st.close(file), "close " + path);
    return p;
}

struct Result {
    Pass write, read;
};

Result measure(Backend& b, const std::string& path, uint64_t size, uint64_t request, unsigned inflight, bool do_write, bool do_read,
               std::string* cache_note) {
    const uint64_t align = 4096;
    std::vector<std::unique_ptr<std::byte, decltype(&std::free)>> bufs;
    std::mt19937_64 rng(12345);
    for (unsigned i = 0; i < inflight; ++i) {
        bufs.emplace_back(static_cast<std::byte*>(std::aligned_alloc(align, (request + align - 1) / align * align)), &std::free);
        for (uint64_t k = 0; k + 8 <= request; k += 8) {  // random data: no compressing or deduplicating disk gains
            const uint64_t x = rng();
            std::memcpy(bufs.back().get() + k, &x, 8);
        }
    }
    Result r;
    if (do_write) r.write = run_pass(*b.storage, path, true, size, request, inflight, bufs);
    if (do_read) {
        if (!fs::exists(path) || fs::file_size(path) < size)
            FLEXRT_THROW(FLEXRT_STATUS_INVALID_ARGUMENT, path + " is smaller than --size: run a write pass first");
        *cache_note = drop_page_cache(path);
        r.read = run_pass(*b.storage, path, false, size, request, inflight, bufs);
    }
    return r;
}

void print_pass(const char* what, const Pass& p) {
    std::printf(
        "  %-5s %8.3f GB/s  %7.1f MiB in %.3f s  request latency p50 %.0f us p99 %.0f us  submit p50 %.0f us p99 %.0f us"
        "  cpu %.0f%%\n",
        what, p.gbps(), static_cast<double>(p.bytes) / (1 << 20), p.seconds, percentile(p.complete_us, 0.5),
        percentile(p.complete_us, 0.99), percentile(p.submit_us, 0.5), percentile(p.submit_us, 0.99), p.cpu_percent);
}

// fio with the same block size, queue depth and engine, O_DIRECT: its read GB/s, or a negative value.
double fio_read_gbps(const std::string& path, uint64_t size, uint64_t block, uint64_t qd, uint64_t threads) {
    if (std::system("command -v fio >/dev/null 2>&1") != 0) return -1;
    const std::string out = path + ".fio.json";
    const uint64_t part = size / threads / block * block;
    const std::string cmd =
        "fio --name=flexrt --filename=" + path + " --rw=read --direct=1 --ioengine=libaio --bs=" + std::to_string(block) +
        " --iodepth=" + std::to_string(qd) + " --numjobs=" + std::to_string(threads) + " --size=" + std::to_string(part) +
        " --offset_increment=" + std::to_string(part) + " --group_reporting --output-format=json --output=" + out + " >/dev/null 2>&1";
    if (std::system(cmd.c_str()) != 0) return -1;
    std::string json;
    try {
        json = text::read_whole_file(out, "fio's result");
    } catch (const Error&) { return -1; }
    fs::remove(out);
    std::smatch m;
    if (!std::regex_search(json, m, std::regex(R"("read"\s*:\s*\{[^}]*?"bw_bytes"\s*:\s*(\d+))"))) return -1;
    return std::stod(m[1]) / 1e9;
}

void check_io(const Status& s) { s.throw_if_error(); }

int64_t option_int(const Backend& b, const char* key, int64_t fallback) {
    if (auto v = b.options[key].value<int64_t>()) return *v;
    return fallback;
}

}  // namespace

int iobench_main(const std::vector<std::string>& args) {
    po::options_description desc("flexrt iobench: the disk tier through a storage plugin config\n\nOptions");
    desc.add_options()("help,h", "this help")("config,c", po::value<std::string>(), "TOML config (its [storage] is used)")(
        "set,s", po::value<std::vector<std::string>>()->composing(), "override a config key (as for run)")(
        "file,f", po::value<std::string>(), "file to use (default: <storage.offload_dir>/flexrt-iobench.bin); kept")(
        "size", po::value<std::string>()->default_value("1G"), "bytes to write and read (K, M, G suffixes)")(
        "request", po::value<std::string>()->default_value("64M"), "bytes per request handed to the plugin")(
        "inflight", po::value<unsigned>()->default_value(2), "requests outstanding")(
        "read-only", "skip the write pass (the file must exist)")("write-only", "skip the read pass")(
        "ab", po::value<std::string>(),
        "B config: comma-separated KEY=VALUE overrides on top of the base (A); "
        "runs A and B alternately and prints B/A")("repeat", po::value<unsigned>()->default_value(3), "A/B rounds")(
        "to-gpu",
        "also read the file into GPU memory through pinned staging (CUDA builds with a GPU) and compare "
        "with the read pass")("sweep", "sweep storage.aio's block_size x queue_depth x threads x submission; print the best as TOML")(
        "sweep-block", po::value<std::string>()->default_value("256K,1M,4M"), "sweep: block sizes")(
        "sweep-qd", po::value<std::string>()->default_value("4,16,64"), "sweep: queue depths")(
        "sweep-threads", po::value<std::string>()->default_value("1,2,4"), "sweep: threads");
    po::variables_map vm;
    try {
        po::store(po::command_line_parser(args).options(desc).run(), vm);
        po::notify(vm);
    } catch (const po::error& e) { FLEXRT_THROW(FLEXRT_STATUS_INVALID_ARGUMENT, std::string(e.what()) + " (see flexrt iobench --help)"); }
    if (vm.count("help")) {
        std::cout << desc;
        return 0;
    }
    std::string config_text = kDefaultConfig, name = "embedded default (configs/default.toml)";
    if (vm.count("config")) {
        name = vm["config"].as<std::string>();
        config_text = text::read_whole_file(name, "config file");
    }
    const auto base = vm.count("set") ? vm["set"].as<std::vector<std::string>>() : std::vector<std::string>{};
    const Config cfg = load_config(config_text, name, base);
    std::string path = vm.count("file") ? vm["file"].as<std::string>() : cfg.offload_dir + "/flexrt-iobench.bin";
    fs::create_directories(fs::path(path).parent_path());
    const uint64_t size = parse_size(vm["size"].as<std::string>()), request = parse_size(vm["request"].as<std::string>());
    const unsigned inflight = std::max(1u, vm["inflight"].as<unsigned>());
    const bool do_write = !vm.count("read-only"), do_read = !vm.count("write-only");
    if (size == 0 || request == 0 || request % 4096)
        FLEXRT_THROW(FLEXRT_STATUS_INVALID_ARGUMENT, "--size must be > 0 and --request a multiple of 4096");
    std::printf("iobench: %s, %.3f GiB, requests of %.1f MiB, %u in flight\n", path.c_str(), static_cast<double>(size) / (1 << 30),
                static_cast<double>(request) / (1 << 20), inflight);
    std::string cache_note;

    if (vm.count("sweep")) {
        struct Best {
            double gbps = -1;
            std::string snippet, label;
        } best;
        bool wrote = !do_write;
        for (const auto& bs : split(vm["sweep-block"].as<std::string>(), ','))
            for (const auto& qd : split(vm["sweep-qd"].as<std::string>(), ','))
                for (const auto& th : split(vm["sweep-threads"].as<std::string>(), ','))
                    for (const char* mode : {"overlapped", "sequential"}) {
                        auto o = base;
                        o.push_back("storage.plugin=aio");
                        o.push_back("storage.options.block_size=" + std::to_string(parse_size(bs)));
                        o.push_back("storage.options.queue_depth=" + qd);
                        o.push_back("storage.options.threads=" + th);
                        o.push_back(std::string("storage.options.submission=\"") + mode + "\"");
                        Backend b = make_backend(config_text, name, o, "");
                        Result r = measure(b, path, size, request, inflight, !wrote, true, &cache_note);
                        wrote = true;
                        std::printf("%-70s read %7.3f GB/s\n", b.label.c_str(), r.read.gbps());
                        if (r.read.gbps() > best.gbps)
                            best = {r.read.gbps(),
                                    "[storage]\nplugin = \"aio\"\n[storage.options]\nblock_size = " + std::to_string(parse_size(bs)) +
                                        "\nqueue_depth = " + qd + "\nthreads = " + th + "\nsubmission = \"" + mode + "\"\n",
                                    b.label};
                    }
        std::printf("\nreads: %s\nbest read %.3f GB/s (%s):\n\n%s", cache_note.c_str(), best.gbps, best.label.c_str(),
                    best.snippet.c_str());
        return 0;
    }

    Backend a = make_backend(config_text, name, base, "");
    if (vm.count("ab")) {
        // B starts from the base; when B names another plugin, the base's plugin options are not B's.
        const auto b_keys = split(vm["ab"].as<std::string>(), ',');
        const bool other_plugin =
            std::any_of(b_keys.begin(), b_keys.end(), [](const std::string& kv) { return kv.rfind("storage.plugin=", 0) == 0; });
        std::vector<std::string> o;
        for (const auto& kv : base)
            if (!(other_plugin && kv.rfind("storage.options.", 0) == 0)) o.push_back(kv);
        o.insert(o.end(), b_keys.begin(), b_keys.end());
        Backend b = make_backend(config_text, name, o, "");
        std::vector<double> aw, ar, bw, br;
        for (unsigned round = 0; round < vm["repeat"].as<unsigned>(); ++round)
            for (Backend* x : {&a, &b}) {
                Result r = measure(*x, path, size, request, inflight, do_write, do_read, &cache_note);
                (x == &a ? aw : bw).push_back(r.write.gbps());
                (x == &a ? ar : br).push_back(r.read.gbps());
                std::printf("round %u %s:", round, x == &a ? "A" : "B");
                if (do_write) std::printf(" write %.3f GB/s", r.write.gbps());
                if (do_read) std::printf(" read %.3f GB/s", r.read.gbps());
                std::printf("\n");
            }
        const double mw_a = percentile(aw, 0.5), mr_a = percentile(ar, 0.5), mw_b = percentile(bw, 0.5), mr_b = percentile(br, 0.5);
        std::printf("\nA: %s\nB: %s\n", a.label.c_str(), b.label.c_str());
        if (do_write) std::printf("median write: A %.3f GB/s, B %.3f GB/s, B/A %.2f\n", mw_a, mw_b, mw_a > 0 ? mw_b / mw_a : 0);
        if (do_read)
            std::printf("median read:  A %.3f GB/s, B %.3f GB/s, B/A %.2f\nreads: %s\n", mr_a, mr_b, mr_a > 0 ? mr_b / mr_a : 0,
                        cache_note.c_str());
        return 0;
    }

    Result r = measure(a, path, size, request, inflight, do_write, do_read, &cache_note);
    std::printf("%s\n", a.label.c_str());
    if (do_write) print_pass("write", r.write);
    if (do_read) {
        print_pass("read", r.read);
        std::printf("  reads: %s\n", cache_note.c_str());
        const int64_t bs = option_int(a, "block_size", 1 << 20), qd = option_int(a, "queue_depth", 32), th = option_int(a, "threads", 1);
        const double fio = fio_read_gbps(path, size, static_cast<uint64_t>(bs), static_cast<uint64_t>(qd), static_cast<uint64_t>(th));
        if (fio > 0)
            std::printf("  fio   %8.3f GB/s  (libaio, O_DIRECT, bs %lld, iodepth %lld, numjobs %lld)  flexrt/fio %.2f\n", fio,
                        static_cast<long long>(bs), static_cast<long long>(qd), static_cast<long long>(th), r.read.gbps() / fio);
        else
            std::printf("  fio: not installed (apt-get install fio) or failed; no fio comparison\n");
    }
    if (vm.count("to-gpu")) {
        if (!gpu_available()) FLEXRT_THROW(FLEXRT_STATUS_UNSUPPORTED, "--to-gpu needs a CUDA build and a GPU");
        // disk -> pinned staging (8 MiB chunks, 8 in flight) -> GPU, timed end to end, checked against the file.
        StagingPool pinned(8 << 20, 8, true);
        GpuMemory dev(size);
        DiskDevice disk(*a.storage, fs::path(path).parent_path() / "iobench-disk");
        auto file = disk.open_existing(path);
        drop_page_cache(path);
        const auto t0 = Clock::now();
        Status s = read_to_gpu(static_cast<DiskBuffer&>(*file), 0, size, dev.data(), pinned, 8);
        const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
        s.throw_if_error();
        std::vector<std::byte> host(1 << 20), back(1 << 20);
        for (uint64_t off : {uint64_t{0}, size / 2 / 4096 * 4096, size - (1 << 20)}) {
            check_io(disk_read(static_cast<DiskBuffer&>(*file), off, host.data(), host.size()));
            dev.copy_to_host(back.data(), off, back.size());
            if (host != back) FLEXRT_THROW(FLEXRT_STATUS_INTERNAL, "GPU copy differs from the file at offset " + std::to_string(off));
        }
        const double gbps = static_cast<double>(size) / secs / 1e9;
        std::printf("  disk -> GPU %6.3f GB/s (pinned staging 8 x 8 MiB, checked)  = %.2f x the read pass's %.3f GB/s\n", gbps,
                    r.read.gbps() > 0 ? gbps / r.read.gbps() : 0.0, r.read.gbps());
        // And back: GPU -> pinned -> a new file, flushed, then compared with the original.
        auto back_file = disk.allocate_partial(size, "from-gpu");
        const auto t1 = Clock::now();
        write_from_gpu(dev.data(), static_cast<DiskBuffer&>(*back_file), 0, size, pinned, 8).throw_if_error();
        static_cast<DiskBuffer&>(*back_file).commit();
        const double wsecs = std::chrono::duration<double>(Clock::now() - t1).count();
        for (uint64_t off : {uint64_t{0}, size / 2 / 4096 * 4096, size - (1 << 20)}) {
            check_io(disk_read(static_cast<DiskBuffer&>(*file), off, host.data(), host.size()));
            check_io(disk_read(static_cast<DiskBuffer&>(*back_file), off, back.data(), back.size()));
            if (host != back) FLEXRT_THROW(FLEXRT_STATUS_INTERNAL, "GPU -> disk copy differs at offset " + std::to_string(off));
        }
        const double wgbps = static_cast<double>(size) / wsecs / 1e9;
        std::printf("  GPU -> disk %6.3f GB/s (flush included, checked)  = %.2f x the write pass's %.3f GB/s\n", wgbps,
                    r.write.gbps() > 0 ? wgbps / r.write.gbps() : 0.0, r.write.gbps());
    }
    return 0;
}

}  // namespace flexrt
