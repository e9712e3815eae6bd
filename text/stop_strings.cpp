#include "stop_strings.hpp"

#include <algorithm>

namespace flexrt::text {

StopStrings::StopStrings(const Gpt2Tokenizer& tokenizer, const std::vector<std::string>& strings) : tokenizer_(tokenizer) {
    for (const auto& s : strings)
        if (!s.empty()) strings_.push_back(s), longest_ = std::max(longest_, s.size());
}

bool StopStrings::newly_in(const int32_t* ids, int64_t count) const {
    if (strings_.empty() || count <= 0) return false;
    // A match that is new ends in the last token's text, or in a character it completed (up to 3 bytes before it);
    // it spans at most `longest_` bytes of the input (lossy decoding never shortens: U+FFFD is 3 bytes).
    const size_t need = tokenizer_.token_bytes(ids[count - 1]).size() + longest_ + 3;
    int64_t first = count;
    size_t bytes = 0;
    while (first > 0) {
        const std::string& b = tokenizer_.token_bytes(ids[--first]);
        bytes += b.size();
        const bool starts_unit = b.empty() || (static_cast<unsigned char>(b[0]) & 0xc0) != 0x80;
        if (bytes >= need && starts_unit) break;
    }
    const std::string tail = tokenizer_.decode(ids + first, count - first);
    return cut(tail) != std::string::npos;
}

int64_t StopStrings::tokens_to_first(const std::vector<int32_t>& ids) const {
    for (int64_t k = 1; k <= static_cast<int64_t>(ids.size()); ++k)
        if (newly_in(ids.data(), k)) return k;
    return -1;
}

size_t StopStrings::cut(const std::string& text) const {
    size_t at = std::string::npos;
    for (const auto& s : strings_) at = std::min(at, text.find(s));
    return at;
}

}  // namespace flexrt::text
