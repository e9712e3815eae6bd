// The little JSON flexrt reads and writes (vocab.json, JSONL prompts and results): a value parser with errors
// that give the byte offset, and string quoting. Numbers are kept as doubles plus their text (ids need exact
// integers); no other library is needed for files this simple.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace flexrt::text {

struct JsonValue {
    enum class Type { null, boolean, number, string, array, object };
    Type type = Type::null;
    bool boolean = false;
    double number = 0;
    std::string text;  // a string's UTF-8, or a number as written
    std::vector<JsonValue> items;
    std::vector<std::pair<std::string, JsonValue>> members;  // in file order

    const JsonValue* find(std::string_view key) const;  // an object's member, or nullptr

    // Out of line, where JsonValue is complete: members holds pairs of it (clang with libstdc++ insists).
    JsonValue();
    JsonValue(const JsonValue&);
    JsonValue(JsonValue&&) noexcept;
    JsonValue& operator=(const JsonValue&);
    JsonValue& operator=(JsonValue&&) noexcept;
    ~JsonValue();
};

// Parses one JSON value filling all of `text` (whitespace around it allowed). Throws BAD_DATA with `where`
// ("file.json", "prompts.jsonl line 3") and the byte offset of the first thing that is not JSON.
JsonValue parse_json(std::string_view text, const std::string& where);

// `s` as a JSON string literal, quotes included (control characters escaped; UTF-8 passed through).
std::string json_quote(std::string_view s);

}  // namespace flexrt::text
