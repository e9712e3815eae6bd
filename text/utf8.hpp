// UTF-8 in both directions, as the tokenizer and the prompt readers need it: encoding a code point, and the
// well-formed sequence at a position (Unicode's table 3-7) - from which strict validation and lossy decoding
// (one U+FFFD per maximal invalid subpart, as Python's and Rust's decoders do) both follow.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace flexrt::text {

inline void append_utf8(std::string& out, uint32_t cp) {
    if (cp < 0x80) {
        out += static_cast<char>(cp);
    } else if (cp < 0x800) {
        out += static_cast<char>(0xc0 | (cp >> 6)), out += static_cast<char>(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
        out += static_cast<char>(0xe0 | (cp >> 12)), out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
        out += static_cast<char>(0x80 | (cp & 0x3f));
    } else {
        out += static_cast<char>(0xf0 | (cp >> 18)), out += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f)), out += static_cast<char>(0x80 | (cp & 0x3f));
    }
}

// The well-formed UTF-8 sequence starting at s[i]: its length, or how many bytes form its longest valid prefix
// negated (a "maximal subpart", at least 1) when it is not complete. Ranges as in the Unicode standard's table 3-7.
inline int utf8_sequence(std::string_view s, size_t i, uint32_t* cp) {
    const auto b = static_cast<uint8_t>(s[i]);
    if (b < 0x80) {
        if (cp) *cp = b;
        return 1;
    }
    int need;
    uint8_t lo = 0x80, hi = 0xbf;
    uint32_t v;
    if (b >= 0xc2 && b <= 0xdf)
        need = 1, v = b & 0x1f;
    else if (b >= 0xe0 && b <= 0xef)
        need = 2, v = b & 0x0f, lo = b == 0xe0 ? 0xa0 : 0x80, hi = b == 0xed ? 0x9f : 0xbf;
    else if (b >= 0xf0 && b <= 0xf4)
        need = 3, v = b & 0x07, lo = b == 0xf0 ? 0x90 : 0x80, hi = b == 0xf4 ? 0x8f : 0xbf;
    else
        return -1;
    size_t j = i + 1;
    for (int k = 0; k < need; ++k, ++j) {
        const uint8_t min = k == 0 ? lo : 0x80, max = k == 0 ? hi : 0xbf;
        if (j >= s.size() || static_cast<uint8_t>(s[j]) < min || static_cast<uint8_t>(s[j]) > max) return -static_cast<int>(j - i);
        v = (v << 6) | (static_cast<uint8_t>(s[j]) & 0x3f);
    }
    if (cp) *cp = v;
    return need + 1;
}

// The offset of the first byte that does not start a well-formed sequence, or npos when all of `s` is UTF-8.
inline size_t invalid_utf8_at(std::string_view s) {
    for (size_t i = 0; i < s.size();) {
        const int n = utf8_sequence(s, i, nullptr);
        if (n < 0) return i;
        i += static_cast<size_t>(n);
    }
    return std::string_view::npos;
}

}  // namespace flexrt::text
