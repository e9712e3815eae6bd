// libFuzzer: the JSON reader (vocab.json, JSONL prompts, checkpoint indexes) on arbitrary text, and json_quote
// reading back what it quoted.
#include "text/json.hpp"

#include <flexrt/status.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string_view s(reinterpret_cast<const char*>(data), size);
    try {
        flexrt::text::parse_json(s, "fuzz.json");
    } catch (const flexrt::Error&) {}
    if (flexrt::text::parse_json(flexrt::text::json_quote(s), "quoted").text != s) std::abort();
    return 0;
}
