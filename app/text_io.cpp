#include "text_io.hpp"

#include "text/json.hpp"
#include "text/utf8.hpp"

#include <flexrt/status.hpp>

#include <unistd.h>
#include <cstdio>
#include <fstream>
#include <sstream>

namespace flexrt::app {

std::vector<std::string> read_prompts(const std::filesystem::path& file) {
    std::ifstream in(file, std::ios::binary);
    if (!in) FLEXRT_THROW(FLEXRT_STATUS_NOT_FOUND, "run.prompts: cannot open " + file.string());
    const bool jsonl = file.extension() == ".jsonl";
    std::vector<std::string> prompts;
    std::string line;
    for (int64_t number = 1; std::getline(in, line); ++number) {
        const std::string where = file.string() + " line " + std::to_string(number);
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (const size_t bad = text::invalid_utf8_at(line); bad != std::string::npos) {
            char byte[8];
            std::snprintf(byte, sizeof byte, "0x%02x", static_cast<uint8_t>(line[bad]));
            FLEXRT_THROW(FLEXRT_STATUS_BAD_DATA, where + ": not UTF-8 text (byte " + byte + " at column " + std::to_string(bad + 1) + ")");
        }
        if (line.find_first_not_of(" \t") == std::string::npos) continue;
        if (!jsonl) {
            prompts.push_back(line);
            continue;
        }
        const text::JsonValue v = text::parse_json(line, where);
        const text::JsonValue* p = v.type == text::JsonValue::Type::object ? v.find("prompt") : nullptr;
        if (!p || p->type != text::JsonValue::Type::string)
            FLEXRT_THROW(FLEXRT_STATUS_BAD_DATA, where + ": expected an object with a \"prompt\" string");
        prompts.push_back(p->text);
    }
    if (in.bad()) FLEXRT_THROW(FLEXRT_STATUS_IO_ERROR, "run.prompts: reading " + file.string() + " failed");
    if (prompts.empty()) FLEXRT_THROW(FLEXRT_STATUS_INVALID_ARGUMENT, "run.prompts: " + file.string() + " holds no prompt");
    return prompts;
}

std::string jsonl_line(const Completion& c) {
    std::ostringstream o;
    o << "{\"prompt\": " << text::json_quote(c.prompt) << ", \"text\": " << text::json_quote(c.text) << ", \"token_ids\": [";
    for (size_t i = 0; i < c.ids.size(); ++i) o << (i ? ", " : "") << c.ids[i];
    char times[96];
    std::snprintf(times, sizeof times, "\"prefill_s\": %.6f, \"decode_s\": %.6f", c.prefill_s, c.decode_s);
    o << "], \"finish_reason\": \"" << (c.stopped ? "stop" : "length") << "\", \"prompt_tokens\": " << c.prompt_tokens
      << ", \"block\": " << c.block << ", " << times << "}";
    return o.str();
}

void check_writable(const std::filesystem::path& file, const std::string& what) {
    const auto dir = std::filesystem::absolute(file).parent_path();
    if (!std::filesystem::is_directory(dir) || ::access(dir.c_str(), W_OK) != 0)
        FLEXRT_THROW(FLEXRT_STATUS_INVALID_ARGUMENT, what + " " + file.string() + ": " + dir.string() + " is not a writable directory");
}

}  // namespace flexrt::app
