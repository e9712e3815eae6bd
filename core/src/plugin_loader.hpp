// Finds plugin libraries on the search path, checks their ABI, and creates plugin objects (Boost.DLL).
#pragma once

#include <flexrt/abi.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace boost::dll {
class shared_library;
}

namespace flexrt {

// A loaded library: kept alive by every object created from it (the registry never unloads at exit).
using LibraryHandle = std::shared_ptr<boost::dll::shared_library>;

struct PluginRef {
    LibraryHandle library;
    const flexrt_plugin_desc* desc = nullptr;  // static storage inside the library
    std::filesystem::path path;
};

// Where plugins are looked for, in order, each with where the entry came from (for error messages).
struct SearchDir {
    std::filesystem::path dir;
    std::string origin;  // "runtime.plugin_path", "FLEXRT_PLUGIN_PATH", "build dir", "install dir"
};
std::vector<SearchDir> plugin_search_path(const std::vector<std::string>& config_plugin_path);

const char* plugin_kind_name(flexrt_plugin_kind kind) noexcept;

// Loads `path` and returns its validated descriptors. Throws naming the library when it cannot be
// loaded, has no flexrt entry point, or was built for another ABI major (or a newer minor).
std::vector<PluginRef> open_plugin_library(const std::filesystem::path& path);

// Finds the plugin `name` of `kind`: `name` is either an explicit path to a library (contains '/' or ends
// in .so) or a plugin name looked up as libflexrt-<kind>-*.so in the search path. Throws with the list
// of places it looked (and libraries it refused) when nothing matches.
PluginRef find_plugin(flexrt_plugin_kind kind, const std::string& name, const std::vector<SearchDir>& search);

// Every flexrt library in the search path, loaded or refused (for --list-plugins).
struct LibraryScan {
    std::filesystem::path path;
    std::vector<PluginRef> plugins;
    std::string error;  // why it was refused; empty when loaded
};
std::vector<LibraryScan> scan_plugins(const std::vector<SearchDir>& search);

// Owns a created plugin object; release() runs inside the plugin, and the library outlives the object.
template <typename I>
struct PluginDeleter {
    LibraryHandle library;
    void operator()(I* p) const noexcept {
        if (p) p->release();
    }
};
template <typename I>
using PluginPtr = std::unique_ptr<I, PluginDeleter<I>>;

// Creates the plugin object with validated option fields. Throws naming the plugin and its library.
void* create_plugin_object(const PluginRef& ref, const std::vector<flexrt_field>& fields);

template <typename I>
PluginPtr<I> create_plugin(const PluginRef& ref, const std::vector<flexrt_field>& fields) {
    return PluginPtr<I>(static_cast<I*>(create_plugin_object(ref, fields)), PluginDeleter<I>{ref.library});
}

}  // namespace flexrt
