#include "plugin_loader.hpp"

#include "host_log.hpp"

#include <flexrt/status.hpp>

#include <boost/dll/shared_library.hpp>

#include <algorithm>
#include <cstdlib>
#include <optional>
#include <sstream>

#ifndef FLEXRT_BUILD_PLUGIN_DIR
#define FLEXRT_BUILD_PLUGIN_DIR ""
#endif
#ifndef FLEXRT_INSTALL_PLUGIN_DIR
#define FLEXRT_INSTALL_PLUGIN_DIR ""
#endif

namespace flexrt {
namespace fs = std::filesystem;

const char* plugin_kind_name(flexrt_plugin_kind kind) noexcept {
    switch (kind) {
    case FLEXRT_PLUGIN_KIND_STORAGE: return "storage";
    case FLEXRT_PLUGIN_KIND_COMPRESS: return "compress";
    case FLEXRT_PLUGIN_KIND_SCHEDULE: return "schedule";
    }
    return "unknown";
}

std::vector<SearchDir> plugin_search_path(const std::vector<std::string>& config_plugin_path) {
    std::vector<SearchDir> dirs;
    for (const auto& d : config_plugin_path) dirs.push_back({d, "runtime.plugin_path"});
    if (const char* env = std::getenv("FLEXRT_PLUGIN_PATH")) {
        std::stringstream ss(env);
        for (std::string d; std::getline(ss, d, ':');)
            if (!d.empty()) dirs.push_back({d, "FLEXRT_PLUGIN_PATH"});
    }
    if (*FLEXRT_BUILD_PLUGIN_DIR) dirs.push_back({FLEXRT_BUILD_PLUGIN_DIR, "build dir"});
    if (*FLEXRT_INSTALL_PLUGIN_DIR) dirs.push_back({FLEXRT_INSTALL_PLUGIN_DIR, "install dir"});
    return dirs;
}

std::vector<PluginRef> open_plugin_library(const fs::path& path) {
    namespace dll = boost::dll;
    auto lib = std::make_shared<dll::shared_library>();
    boost::dll::fs::error_code ec;
    lib->load(path.string(), ec, dll::load_mode::rtld_now | dll::load_mode::rtld_local);
    if (ec) FLEXRT_THROW(FLEXRT_STATUS_NOT_FOUND, "cannot load plugin library " + path.string() + ": " + ec.message());
    if (!lib->has(FLEXRT_PLUGIN_ENTRY))
        FLEXRT_THROW(FLEXRT_STATUS_ABI_MISMATCH,
                     "library " + path.string() + " is not a flexrt plugin: it exports no " + FLEXRT_PLUGIN_ENTRY + "()");
    auto list = lib->get<const flexrt_plugin_desc*(uint32_t*)>(FLEXRT_PLUGIN_ENTRY);
    uint32_t count = 0;
    const flexrt_plugin_desc* descs = list(&count);
    if (!descs || count == 0) FLEXRT_THROW(FLEXRT_STATUS_ABI_MISMATCH, "plugin library " + path.string() + " lists no plugins");
    std::vector<PluginRef> out;
    for (uint32_t i = 0; i < count; ++i) {
        const flexrt_plugin_desc& d = descs[i];
        // The version fields sit right after struct_size in every ABI: read them before trusting the rest.
        if (d.abi_major != FLEXRT_ABI_MAJOR || d.abi_minor > FLEXRT_ABI_MINOR)
            FLEXRT_THROW(FLEXRT_STATUS_ABI_MISMATCH,
                         "plugin library " + path.string() + " was built for flexrt ABI " + std::to_string(d.abi_major) + "." +
                             std::to_string(d.abi_minor) + "; this flexrt has ABI " + std::to_string(FLEXRT_ABI_MAJOR) + "." +
                             std::to_string(FLEXRT_ABI_MINOR) + " (the major must match and the minor must not be newer)");
        if (d.struct_size < sizeof(flexrt_plugin_desc))
            FLEXRT_THROW(FLEXRT_STATUS_ABI_MISMATCH, "plugin library " + path.string() + " has a descriptor of " +
                                                         std::to_string(d.struct_size) + " bytes; ABI " + std::to_string(FLEXRT_ABI_MAJOR) +
                                                         " needs " + std::to_string(sizeof(flexrt_plugin_desc)));
        if (!d.name || !d.create || !d.version || (d.n_options && !d.options))
            FLEXRT_THROW(FLEXRT_STATUS_ABI_MISMATCH,
                         "plugin library " + path.string() + " has an incomplete descriptor (name, version or create missing)");
        for (const PluginRef& earlier : out)
            if (earlier.desc->kind == d.kind && std::string(earlier.desc->name) == d.name)
                FLEXRT_THROW(FLEXRT_STATUS_INVALID_ARGUMENT,
                             "plugin library " + path.string() + " lists " + plugin_kind_name(d.kind) + "." + d.name + " twice");
        out.push_back({lib, &d, path});
    }
    return out;
}

namespace {

std::vector<fs::path> libraries_in(const fs::path& dir, const std::string& prefix) {
    std::vector<fs::path> libs;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(dir, ec)) {
        std::string f = e.path().filename().string();
        if (f.rfind(prefix, 0) == 0 && f.size() > 3 && f.substr(f.size() - 3) == ".so") libs.push_back(e.path());
    }
    std::sort(libs.begin(), libs.end());
    return libs;
}

bool looks_like_path(const std::string& name) {
    return name.find('/') != std::string::npos || (name.size() > 3 && name.substr(name.size() - 3) == ".so");
}

}  // namespace

PluginRef find_plugin(flexrt_plugin_kind kind, const std::string& name, const std::vector<SearchDir>& search) {
    const std::string id = std::string(plugin_kind_name(kind)) + "." + name;
    if (looks_like_path(name)) {
        if (!fs::exists(name)) FLEXRT_THROW(FLEXRT_STATUS_NOT_FOUND, "plugin library " + name + " does not exist");
        auto plugins = open_plugin_library(name);
        for (auto& p : plugins)
            if (p.desc->kind == kind) return p;
        FLEXRT_THROW(FLEXRT_STATUS_NOT_FOUND, "plugin library " + name + " holds no " + plugin_kind_name(kind) + " plugin");
    }
    const std::string prefix = std::string("libflexrt-") + plugin_kind_name(kind) + "-";
    std::string looked, refused;
    // Every library on the path is looked at, not only up to the first match: two libraries that both provide
    // the name are an error, not a silent choice by path order. The one exception is flexrt's own plugins
    // found both in its build dir and its install dir (a developer's tree): the build dir's are taken.
    std::optional<PluginRef> found;
    std::string found_origin;
    auto own = [](const std::string& origin) { return origin == "build dir" || origin == "install dir"; };
    for (const auto& sd : search) {
        looked += (looked.empty() ? "" : ", ") + sd.dir.string() + " (" + sd.origin + ")";
        for (const auto& lib : libraries_in(sd.dir, prefix)) {
            std::error_code ec;
            if (found && fs::weakly_canonical(lib, ec) == fs::weakly_canonical(found->path, ec)) continue;  // the same file again
            std::vector<PluginRef> plugins;
            try {
                plugins = open_plugin_library(lib);
            } catch (const Error& e) { refused += (refused.empty() ? "" : "; ") + std::string(e.what()); }
            for (auto& p : plugins) {
                if (p.desc->kind != kind || name != p.desc->name) continue;
                if (!found) {
                    found = p, found_origin = sd.origin;
                } else if (!(own(found_origin) && own(sd.origin))) {
                    FLEXRT_THROW(FLEXRT_STATUS_INVALID_ARGUMENT, "plugin " + id + " is provided by two libraries: " + found->path.string() +
                                                                     " (" + found_origin + ") and " + lib.string() + " (" + sd.origin +
                                                                     "); remove one from the plugin path, or name the library by its path");
                }
            }
        }
    }
    if (found) return *found;
    std::string msg =
        "plugin " + id + " not found; looked for " + prefix + "*.so in: " + (looked.empty() ? std::string("(no directories)") : looked);
    if (!refused.empty()) msg += "; refused: " + refused;
    FLEXRT_THROW(FLEXRT_STATUS_NOT_FOUND, msg);
}

std::vector<LibraryScan> scan_plugins(const std::vector<SearchDir>& search) {
    std::vector<LibraryScan> out;
    std::vector<fs::path> seen;
    for (const auto& sd : search) {
        for (const auto& lib : libraries_in(sd.dir, "libflexrt-")) {
            std::error_code ec;
            auto canon = fs::weakly_canonical(lib, ec);
            if (std::find(seen.begin(), seen.end(), canon) != seen.end()) continue;
            seen.push_back(canon);
            LibraryScan scan{lib, {}, {}};
            try {
                scan.plugins = open_plugin_library(lib);
            } catch (const Error& e) { scan.error = e.what(); }
            out.push_back(std::move(scan));
        }
    }
    return out;
}

void* create_plugin_object(const PluginRef& ref, const std::vector<flexrt_field>& fields) {
    void* obj = nullptr;
    take_last_plugin_error();
    flexrt_status s = ref.desc->create(plugin_host(), fields.data(), static_cast<uint32_t>(fields.size()), &obj);
    if (s != FLEXRT_STATUS_OK || !obj) {
        std::string detail = take_last_plugin_error();
        FLEXRT_THROW(s == FLEXRT_STATUS_OK ? FLEXRT_STATUS_INTERNAL : s,
                     std::string("plugin ") + plugin_kind_name(ref.desc->kind) + "." + ref.desc->name + " (" + ref.path.string() +
                         ") failed to start: " + (detail.empty() ? flexrt_status_name(s) : detail));
    }
    return obj;
}

}  // namespace flexrt
