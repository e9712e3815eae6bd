// A plugin built for a future ABI major: the host must refuse it before calling anything.
#include <flexrt/sdk.hpp>

namespace {
flexrt_status create(const flexrt_host*, const flexrt_field*, uint32_t, void**) {
    __builtin_trap();  // never called: the version check comes first
}
}  // namespace

extern "C" __attribute__((visibility("default"))) const flexrt_plugin_desc* flexrt_plugin_list(uint32_t* count) {
    static const flexrt_plugin_desc d = {sizeof(flexrt_plugin_desc),
                                         FLEXRT_ABI_MAJOR + 1,
                                         0,
                                         FLEXRT_PLUGIN_KIND_STORAGE,
                                         "abi2",
                                         "9.9.9",
                                         "from the future",
                                         nullptr,
                                         0,
                                         &create};
    *count = 1;
    return &d;
}
