// A shared library that is not a flexrt plugin: it exports no flexrt_plugin_list.
extern "C" __attribute__((visibility("default"))) int flexrt_something_else() { return 42; }
