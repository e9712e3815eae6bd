#include "plugin_test.hpp"

#include "conformance/plugin_conformance.hpp"
#include "core/src/config.hpp"
#include "core/src/plugin_loader.hpp"

#include <flexrt/status.hpp>

#include <boost/program_options.hpp>

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <iostream>

namespace po = boost::program_options;

namespace flexrt {
namespace {

namespace fs = std::filesystem;

// "storage.aio" names an installed or built plugin; anything else is a library path.
std::vector<PluginRef> plugins_named(const std::string& target, const std::vector<std::string>& plugin_path) {
    const auto dot = target.find('.');
    const bool is_path = target.find('/') != std::string::npos || target.ends_with(".so");
    if (!is_path && dot != std::string::npos) {
        const std::string kind = target.substr(0, dot), name = target.substr(dot + 1);
        for (flexrt_plugin_kind k : {FLEXRT_PLUGIN_KIND_STORAGE, FLEXRT_PLUGIN_KIND_COMPRESS, FLEXRT_PLUGIN_KIND_SCHEDULE})
            if (kind == plugin_kind_name(k)) return {find_plugin(k, name, plugin_search_path(plugin_path))};
        FLEXRT_THROW(FLEXRT_STATUS_INVALID_ARGUMENT,
                     "plugin-test: '" + target + "': the kind before the dot is not storage, compress or schedule");
    }
    if (!fs::exists(target)) FLEXRT_THROW(FLEXRT_STATUS_NOT_FOUND, "plugin-test: no library " + target);
    return open_plugin_library(target);
}

// "key=value" pairs, each value a TOML literal (a bare word is taken as a string), into a table.
toml::table options_from(const std::vector<std::string>& sets) {
    toml::table t;
    for (const std::string& s : sets) {
        const auto eq = s.find('=');
        if (eq == std::string::npos || eq == 0)
            FLEXRT_THROW(FLEXRT_STATUS_INVALID_ARGUMENT, "plugin-test: --option '" + s + "': expected key=value");
        const std::string key = s.substr(0, eq), value = s.substr(eq + 1);
        try {
            auto parsed = toml::parse("v = " + value);
            t.insert_or_assign(key, *parsed.get("v"));
        } catch (const toml::parse_error&) { t.insert_or_assign(key, value); }
    }
    return t;
}

}  // namespace

int plugin_test_main(const std::vector<std::string>& args) {
    po::options_description desc(
        "flexrt plugin-test <library.so | kind.name>: the conformance suite of every plugin in a library (docs/plugins.md)\n\n"
        "Options");
    desc.add_options()("help,h", "this help")("option,o", po::value<std::vector<std::string>>()->composing(),
                                              "key=value: a plugin option (TOML value), repeatable")(
        "check", po::value<std::vector<std::string>>()->composing(), "run only this check (repeatable)")(
        "list", "list the checks of each plugin, run nothing")(
        "scratch", po::value<std::string>(), "directory for the checks' files (default: a new one under the system temp dir)")(
        "plugin-path", po::value<std::vector<std::string>>()->composing(), "extra directory searched for kind.name");
    po::options_description hidden;
    hidden.add_options()("target", po::value<std::string>());
    po::options_description all;
    all.add(desc).add(hidden);
    po::positional_options_description pos;
    pos.add("target", 1);
    po::variables_map vm;
    try {
        po::store(po::command_line_parser(args).options(all).positional(pos).run(), vm);
        po::notify(vm);
    } catch (const po::error& e) { FLEXRT_THROW(FLEXRT_STATUS_INVALID_ARGUMENT, std::string("plugin-test: ") + e.what()); }
    if (vm.count("help") || !vm.count("target")) {
        std::cout << desc << "\nExit status: 0 when every check passed, 1 when one failed.\n";
        return vm.count("help") ? 0 : 2;
    }
    auto list = [&](const char* key) { return vm.count(key) ? vm[key].as<std::vector<std::string>>() : std::vector<std::string>{}; };
    const std::string target = vm["target"].as<std::string>();
    const std::vector<PluginRef> plugins = plugins_named(target, list("plugin-path"));
    const toml::table options = options_from(list("option"));
    const std::vector<std::string> only = list("check");

    if (vm.count("list")) {
        for (const PluginRef& p : plugins) {
            std::cout << plugin_kind_name(p.desc->kind) << "." << p.desc->name << " (" << p.path.string() << "):\n";
            for (const auto& c : conformance::checks_of(p.desc->kind)) std::printf("  %-18s %s\n", c.name.c_str(), c.what.c_str());
        }
        return 0;
    }

    fs::path scratch;
    bool own_scratch = false;
    if (vm.count("scratch")) {
        scratch = vm["scratch"].as<std::string>();
        fs::create_directories(scratch);
    } else {
        std::string tmpl = (fs::temp_directory_path() / "flexrt-plugin-test-XXXXXX").string();
        if (!::mkdtemp(tmpl.data())) FLEXRT_THROW(FLEXRT_STATUS_IO_ERROR, "plugin-test: cannot create a scratch directory " + tmpl);
        scratch = tmpl, own_scratch = true;
    }

    int checks = 0, failed = 0;
    for (const PluginRef& p : plugins) {
        const conformance::Subject subject{p, options};
        std::cout << subject.id() << " " << p.desc->version << " (" << p.path.string() << ")" << std::endl;
        auto show = [&](const conformance::CheckResult& r) {
            ++checks;
            failed += r.passed ? 0 : 1;
            std::string detail = r.detail;  // continuation lines indented under the check
            while (!detail.empty() && detail.back() == '\n') detail.pop_back();
            for (size_t at = 0; (at = detail.find('\n', at)) != std::string::npos; at += 9) detail.replace(at, 1, "\n        ");
            std::printf("  %s  %-18s %6.2f s%s%s\n", r.passed ? "PASS" : "FAIL", r.check.c_str(), r.seconds, detail.empty() ? "" : "  ",
                        detail.c_str());
            std::fflush(stdout);
        };
        const fs::path dir = scratch / subject.id();
        if (only.empty()) {
            conformance::run_checks(subject, dir, show);
        } else {
            for (const std::string& c : only) show(conformance::run_check(subject, c, dir));
        }
    }
    std::printf("plugin-test: %zu plugin(s), %d check(s): %d passed, %d failed\n", plugins.size(), checks, checks - failed, failed);
    if (failed == 0 && own_scratch) fs::remove_all(scratch);
    if (failed) std::printf("plugin-test: the failed checks' files are kept in %s\n", scratch.string().c_str());
    return failed ? 1 : 0;
}

}  // namespace flexrt
