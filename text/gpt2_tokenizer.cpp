#include "gpt2_tokenizer.hpp"

#include "whole_file.hpp"

#include "json.hpp"
#include "utf8.hpp"

#include <flexrt/status.hpp>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <limits>
#include <sstream>

namespace flexrt::text {
namespace {

struct CodeRange {
    uint32_t lo, hi;
};
#include "unicode_classes.inc"

template <size_t N>
bool in(const CodeRange (&table)[N], uint32_t cp) {
    const auto it = std::upper_bound(std::begin(table), std::end(table), cp, [](uint32_t c, const CodeRange& r) { return c < r.lo; });
    return it != std::begin(table) && cp <= std::prev(it)->hi;
}
bool is_letter(uint32_t cp) { return in(kLetters, cp); }
bool is_number(uint32_t cp) { return in(kNumbers, cp); }
// Unicode White_Space: what the pattern's \s matches in HF tokenizers (Oniguruma).
bool is_space(uint32_t cp) {
    return (cp >= 0x09 && cp <= 0x0d) || cp == 0x20 || cp == 0x85 || cp == 0xa0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200a) ||
           cp == 0x2028 || cp == 0x2029 || cp == 0x202f || cp == 0x205f || cp == 0x3000;
}

std::string hex_byte(char c) {
    char h[8];
    std::snprintf(h, sizeof h, "0x%02x", static_cast<uint8_t>(c));
    return h;
}

std::string pair_key(const std::string& a, const std::string& b) { return a + ' ' + b; }  // byte-level tokens hold no space

}  // namespace

Gpt2Tokenizer Gpt2Tokenizer::from_files(const std::filesystem::path& vocab_json, const std::filesystem::path& merges_txt) {
    Gpt2Tokenizer t;
    // bytes_to_unicode: printable Latin-1 bytes stand for themselves, the others for code points from 256 up.
    std::unordered_map<uint32_t, uint8_t> symbol_byte;  // stand-in code point -> byte
    int next = 0;
    for (int b = 0; b < 256; ++b) {
        const bool printable = (b >= '!' && b <= '~') || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
        const uint32_t cp = printable ? static_cast<uint32_t>(b) : static_cast<uint32_t>(256 + next++);
        append_utf8(t.byte_symbol_[b], cp);
        symbol_byte[cp] = static_cast<uint8_t>(b);
    }

    const JsonValue doc =
        parse_json(read_whole_file(vocab_json, "the tokenizer's vocabulary"), "tokenizer vocabulary " + vocab_json.string());
    if (doc.type != JsonValue::Type::object)
        FLEXRT_THROW(FLEXRT_STATUS_BAD_DATA, "tokenizer vocabulary " + vocab_json.string() + " is not a JSON object of \"token\": id");
    std::vector<std::pair<std::string, int64_t>> entries;
    for (const auto& [tok, v] : doc.members) {
        if (v.type != JsonValue::Type::number || v.text.find_first_not_of("0123456789") != std::string::npos || v.text.size() > 9)
            FLEXRT_THROW(FLEXRT_STATUS_BAD_DATA, "tokenizer vocabulary " + vocab_json.string() + ": the id of \"" + tok + "\" is " +
                                                     v.text + ", not a non-negative integer");
        entries.emplace_back(tok, std::stoll(v.text));
    }
    int64_t max_id = -1;
    for (const auto& [tok, id] : entries) max_id = std::max(max_id, id);
    if (entries.empty()) FLEXRT_THROW(FLEXRT_STATUS_BAD_DATA, "tokenizer vocabulary " + vocab_json.string() + " is empty");
    t.tokens_.assign(static_cast<size_t>(max_id + 1), std::string());
    std::vector<bool> used(t.tokens_.size());
    for (const auto& [tok, id] : entries) {
        if (used[id])
            FLEXRT_THROW(FLEXRT_STATUS_BAD_DATA, "tokenizer vocabulary " + vocab_json.string() + ": id " + std::to_string(id) +
                                                     " is given twice (the second time to \"" + tok + "\")");
        used[id] = true;
        t.tokens_[id] = tok;
        t.ids_[tok] = static_cast<int32_t>(id);
    }
    for (size_t id = 0; id < used.size(); ++id)
        if (!used[id])
            FLEXRT_THROW(FLEXRT_STATUS_BAD_DATA, "tokenizer vocabulary " + vocab_json.string() + ": no token has id " + std::to_string(id) +
                                                     " (ids must run from 0 without gaps)");
    for (int b = 0; b < 256; ++b)
        if (!t.ids_.count(t.byte_symbol_[b]))
            FLEXRT_THROW(FLEXRT_STATUS_BAD_DATA, "tokenizer vocabulary " + vocab_json.string() + " lacks the token of byte " +
                                                     std::to_string(b) + " (\"" + t.byte_symbol_[b] +
                                                     "\"): not a byte-level BPE vocabulary");

    const std::string mtext = read_whole_file(merges_txt, "the tokenizer's merges");
    std::istringstream lines(mtext);
    std::string line;
    int64_t number = 0;
    while (std::getline(lines, line)) {
        ++number;
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (line.empty() || (number == 1 && line.rfind("#version", 0) == 0)) continue;
        const size_t sp = line.find(' ');
        if (sp == std::string::npos || sp == 0 || sp + 1 == line.size() || line.find(' ', sp + 1) != std::string::npos)
            FLEXRT_THROW(FLEXRT_STATUS_BAD_DATA, "tokenizer merges " + merges_txt.string() + " line " + std::to_string(number) + ": \"" +
                                                     line + "\" is not two tokens separated by one space");
        const std::string a = line.substr(0, sp), b = line.substr(sp + 1);
        if (!t.ids_.count(a + b))
            FLEXRT_THROW(FLEXRT_STATUS_BAD_DATA, "tokenizer merges " + merges_txt.string() + " line " + std::to_string(number) +
                                                     ": the merge of \"" + a + "\" and \"" + b + "\" is not in the vocabulary " +
                                                     vocab_json.string());
        t.ranks_.emplace(pair_key(a, b), static_cast<int32_t>(t.ranks_.size()));
    }

    // OPT's special tokens (its tokenizer's bos = eos = </s>, pad <pad>, unk <unk>): split out of the text as they are.
    auto special = [&](const char* s) {
        const auto it = t.ids_.find(s);
        if (it == t.ids_.end())
            FLEXRT_THROW(FLEXRT_STATUS_BAD_DATA,
                         "tokenizer vocabulary " + vocab_json.string() + " has no \"" + s + "\" (an OPT special token)");
        t.specials_.emplace_back(s, it->second);
        return it->second;
    };
    t.bos_ = t.eos_ = special("</s>");
    t.pad_ = special("<pad>");
    t.unk_ = special("<unk>");
    t.is_special_.assign(t.tokens_.size(), false);
    for (const auto& [s, id] : t.specials_) t.is_special_[id] = true;
    // Each token's bytes, once: its stand-ins mapped back (a stand-in outside bytes_to_unicode's, or a byte that
    // is not UTF-8, passes through as it is - not from a well-formed vocabulary).
    t.bytes_.resize(t.tokens_.size());
    for (size_t id = 0; id < t.tokens_.size(); ++id) {
        const std::string& tok = t.tokens_[id];
        std::string& out = t.bytes_[id];
        for (size_t i = 0; i < tok.size();) {
            uint32_t c = 0;
            const int n = utf8_sequence(tok, i, &c);
            if (n < 0) {
                out += tok[i++];
                continue;
            }
            const auto it = symbol_byte.find(c);
            if (it != symbol_byte.end())
                out += static_cast<char>(it->second);
            else
                out.append(tok, i, static_cast<size_t>(n));
            i += static_cast<size_t>(n);
        }
    }
    return t;
}

std::vector<int32_t> Gpt2Tokenizer::encode(std::string_view utf8, bool add_bos) const {
    if (const size_t bad = invalid_utf8_at(utf8); bad != std::string_view::npos)
        FLEXRT_THROW(FLEXRT_STATUS_INVALID_ARGUMENT,
                     "text to tokenize is not valid UTF-8 at byte " + std::to_string(bad) + " (" + hex_byte(utf8[bad]) + ")");
    std::vector<int32_t> out;
    if (add_bos) out.push_back(bos_);
    WordCache cache;
    size_t at = 0;
    while (at < utf8.size()) {  // the leftmost special token (the longest where two start together), then the text before it
        size_t best = std::string_view::npos, best_len = 0;
        int32_t best_id = -1;
        for (const auto& [s, id] : specials_) {
            const size_t p = utf8.find(s, at);
            if (p != std::string_view::npos && (p < best || (p == best && s.size() > best_len)))
                best = p, best_len = s.size(), best_id = id;
        }
        encode_piece(utf8.substr(at, best == std::string_view::npos ? std::string_view::npos : best - at), cache, out);
        if (best == std::string_view::npos) break;
        out.push_back(best_id);
        at = best + best_len;
    }
    return out;
}

// GPT-2's pattern, 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+, as a scan over
// code points (the alternatives tried in that order at each position, as the regex does).
void Gpt2Tokenizer::encode_piece(std::string_view utf8, WordCache& cache, std::vector<int32_t>& out) const {
    std::vector<uint32_t> cp;
    std::vector<size_t> off;  // byte offset of each code point, and the end
    for (size_t i = 0; i < utf8.size();) {
        uint32_t c = 0;
        const int n = utf8_sequence(utf8, i, &c);  // valid: checked by encode()
        cp.push_back(c), off.push_back(i);
        i += static_cast<size_t>(n);
    }
    off.push_back(utf8.size());
    const size_t n = cp.size();
    enum Kind { kLetter, kNumber, kSpace, kOther };
    auto kind = [&](size_t i) { return is_space(cp[i]) ? kSpace : is_letter(cp[i]) ? kLetter : is_number(cp[i]) ? kNumber : kOther; };
    auto emit = [&](size_t a, size_t b) {
        const std::string word(utf8.substr(off[a], off[b] - off[a]));
        auto it = cache.find(word);
        if (it == cache.end()) {
            std::vector<int32_t> ids;
            bpe(word, ids);
            it = cache.emplace(word, std::move(ids)).first;
        }
        out.insert(out.end(), it->second.begin(), it->second.end());
    };
    auto ascii_at = [&](size_t i, char c) { return i < n && cp[i] == static_cast<uint32_t>(c); };
    size_t i = 0;
    while (i < n) {
        if (cp[i] == '\'') {  // contractions (case-sensitive, as GPT-2's pattern)
            size_t len = 0;
            if (ascii_at(i + 1, 's') || ascii_at(i + 1, 't') || ascii_at(i + 1, 'm') || ascii_at(i + 1, 'd')) len = 2;
            if ((ascii_at(i + 1, 'r') && ascii_at(i + 2, 'e')) || (ascii_at(i + 1, 'v') && ascii_at(i + 2, 'e')) ||
                (ascii_at(i + 1, 'l') && ascii_at(i + 2, 'l')))
                len = 3;
            if (len) {
                emit(i, i + len);
                i += len;
                continue;
            }
        }
        const Kind k = kind(i);
        // One optional leading space (U+0020 only) joins a run of letters, numbers or other symbols.
        const bool lead = cp[i] == ' ' && i + 1 < n && kind(i + 1) != kSpace;
        if (k != kSpace || lead) {
            const size_t start = i, first = lead ? i + 1 : i;
            const Kind run = kind(first);
            size_t e = first + 1;
            while (e < n && kind(e) == run) ++e;
            emit(start, e);
            i = e;
            continue;
        }
        // Whitespace: the run, less its last character when a non-space follows (that one leads the next word),
        // unless the run is a single character.
        size_t e = i + 1;
        while (e < n && kind(e) == kSpace) ++e;
        if (e < n && e - i >= 2) --e;
        emit(i, e);
        i = e;
    }
}

void Gpt2Tokenizer::bpe(const std::string& word, std::vector<int32_t>& out) const {
    std::vector<std::string> sym;
    for (const char c : word) sym.push_back(byte_symbol_[static_cast<uint8_t>(c)]);
    while (sym.size() > 1) {
        int32_t best = std::numeric_limits<int32_t>::max();
        size_t at = 0;
        for (size_t i = 0; i + 1 < sym.size(); ++i) {
            const auto it = ranks_.find(pair_key(sym[i], sym[i + 1]));
            if (it != ranks_.end() && it->second < best) best = it->second, at = i;
        }
        if (best == std::numeric_limits<int32_t>::max()) break;
        const std::string a = sym[at], b = sym[at + 1];
        std::vector<std::string> next;  // every occurrence of the pair, left to right, without overlaps
        for (size_t i = 0; i < sym.size();) {
            if (i + 1 < sym.size() && sym[i] == a && sym[i + 1] == b) {
                next.push_back(a + b);
                i += 2;
            } else {
                next.push_back(sym[i++]);
            }
        }
        sym.swap(next);
    }
    for (const std::string& s : sym) {
        const auto it = ids_.find(s);
        out.push_back(it == ids_.end() ? unk_ : it->second);
    }
}

const std::string& Gpt2Tokenizer::token_bytes(int32_t id) const {
    if (id < 0 || static_cast<size_t>(id) >= bytes_.size())
        FLEXRT_THROW(FLEXRT_STATUS_INVALID_ARGUMENT,
                     "decode: token id " + std::to_string(id) + " is outside the vocabulary of " + std::to_string(bytes_.size()));
    return bytes_[id];
}

std::string Gpt2Tokenizer::decode(const int32_t* ids, int64_t count, bool skip_special) const {
    std::string bytes;
    for (int64_t i = 0; i < count; ++i) {
        const std::string& b = token_bytes(ids[i]);
        if (!(skip_special && is_special_[ids[i]])) bytes += b;
    }
    std::string text;  // lossy: each maximal invalid subpart becomes U+FFFD
    for (size_t i = 0; i < bytes.size();) {
        const int n = utf8_sequence(bytes, i, nullptr);
        if (n > 0) {
            text.append(bytes, i, static_cast<size_t>(n));
            i += static_cast<size_t>(n);
        } else {
            text += "\xef\xbf\xbd";
            i += static_cast<size_t>(-n);
        }
    }
    return text;
}

}  // namespace flexrt::text
