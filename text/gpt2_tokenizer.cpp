#include "gpt2_tokenizer.hpp"

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

void append_utf8(std::string& out, uint32_t cp) {
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
int utf8_sequence(std::string_view s, size_t i, uint32_t* cp) {
    const auto b = static_cast<uint8_t>(s[i]);
    if (b < 0x80) {
        if (cp) *cp = b;
        return 1;
    }
    int need;
    uint8_t lo = 0x80, hi = 0xbf;
    uint32_t v;
    if (b >= 0xc2 && b <= 0xdf) need = 1, v = b & 0x1f;
    else if (b >= 0xe0 && b <= 0xef) need = 2, v = b & 0x0f, lo = b == 0xe0 ? 0xa0 : 0x80, hi = b == 0xed ? 0x9f : 0xbf;
    else if (b >= 0xf0 && b <= 0xf4) need = 3, v = b & 0x07, lo = b == 0xf0 ? 0x90 : 0x80, hi = b == 0xf4 ? 0x8f : 0xbf;
    else return -1;
    size_t j = i + 1;
    for (int k = 0; k < need; ++k, ++j) {
        const uint8_t min = k == 0 ? lo : 0x80, max = k == 0 ? hi : 0xbf;
        if (j >= s.size() || static_cast<uint8_t>(s[j]) < min || static_cast<uint8_t>(s[j]) > max) return -static_cast<int>(j - i);
        v = (v << 6) | (static_cast<uint8_t>(s[j]) & 0x3f);
    }
    if (cp) *cp = v;
    return need + 1;
}

std::string hex_byte(char c) {
    char h[8];
    std::snprintf(h, sizeof h, "0x%02x", static_cast<uint8_t>(c));
    return h;
}

std::string read_all(const std::filesystem::path& p, const char* what) {
    std::ifstream in(p, std::ios::binary);
    if (!in) FLEXRT_THROW(FLEXRT_STATUS_NOT_FOUND, std::string("tokenizer: cannot open the ") + what + " " + p.string());
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

// vocab.json: one JSON object of "token": id. A small parser for exactly that (strings with every JSON escape,
// non-negative integers), with errors that give the byte offset.
class VocabParser {
public:
    VocabParser(std::string_view text, std::string file) : s_(text), file_(std::move(file)) {}
    std::vector<std::pair<std::string, int64_t>> parse() {
        std::vector<std::pair<std::string, int64_t>> out;
        skip();
        expect('{');
        skip();
        if (peek() == '}') return ++i_, out;
        for (;;) {
            skip();
            std::string key = string();
            skip();
            expect(':');
            skip();
            out.emplace_back(std::move(key), integer());
            skip();
            if (peek() == ',') {
                ++i_;
                continue;
            }
            expect('}');
            break;
        }
        skip();
        if (i_ != s_.size()) fail("text after the object");
        return out;
    }

private:
    [[noreturn]] void fail(const std::string& what) const {
        FLEXRT_THROW(FLEXRT_STATUS_BAD_DATA, "tokenizer vocabulary " + file_ + ": " + what + " at byte " + std::to_string(i_) +
                                                 " (expected a JSON object of \"token\": id)");
    }
    char peek() const { return i_ < s_.size() ? s_[i_] : '\0'; }
    void skip() {
        while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\n' || s_[i_] == '\r' || s_[i_] == '\t')) ++i_;
    }
    void expect(char c) {
        if (peek() != c) fail(std::string("'") + c + "' missing");
        ++i_;
    }
    uint32_t hex4() {
        if (i_ + 4 > s_.size()) fail("a short \\u escape");
        uint32_t v = 0;
        for (int k = 0; k < 4; ++k) {
            const char c = s_[i_++];
            v <<= 4;
            if (c >= '0' && c <= '9') v |= static_cast<uint32_t>(c - '0');
            else if (c >= 'a' && c <= 'f') v |= static_cast<uint32_t>(c - 'a' + 10);
            else if (c >= 'A' && c <= 'F') v |= static_cast<uint32_t>(c - 'A' + 10);
            else fail("a bad \\u escape");
        }
        return v;
    }
    std::string string() {
        expect('"');
        std::string out;
        for (;;) {
            if (i_ >= s_.size()) fail("an unterminated string");
            const char c = s_[i_++];
            if (c == '"') return out;
            if (static_cast<uint8_t>(c) < 0x20) fail("a control character in a string");
            if (c != '\\') {
                out += c;
                continue;
            }
            const char e = i_ < s_.size() ? s_[i_++] : '\0';
            switch (e) {
                case '"': out += '"'; break;
                case '\\': out += '\\'; break;
                case '/': out += '/'; break;
                case 'b': out += '\b'; break;
                case 'f': out += '\f'; break;
                case 'n': out += '\n'; break;
                case 'r': out += '\r'; break;
                case 't': out += '\t'; break;
                case 'u': {
                    uint32_t cp = hex4();
                    if (cp >= 0xd800 && cp <= 0xdbff) {  // a surrogate pair
                        if (peek() != '\\' || i_ + 1 >= s_.size() || s_[i_ + 1] != 'u') fail("a lone high surrogate");
                        i_ += 2;
                        const uint32_t low = hex4();
                        if (low < 0xdc00 || low > 0xdfff) fail("a bad low surrogate");
                        cp = 0x10000 + ((cp - 0xd800) << 10) + (low - 0xdc00);
                    } else if (cp >= 0xdc00 && cp <= 0xdfff) {
                        fail("a lone low surrogate");
                    }
                    append_utf8(out, cp);
                    break;
                }
                default: fail("an unknown escape");
            }
        }
    }
    int64_t integer() {
        const size_t start = i_;
        int64_t v = 0;
        while (i_ < s_.size() && s_[i_] >= '0' && s_[i_] <= '9') {
            v = v * 10 + (s_[i_++] - '0');
            if (v > std::numeric_limits<int32_t>::max()) fail("an id beyond int32");
        }
        if (i_ == start) fail("an id that is not a non-negative integer");
        return v;
    }

    std::string_view s_;
    std::string file_;
    size_t i_ = 0;
};

std::string pair_key(const std::string& a, const std::string& b) { return a + ' ' + b; }  // byte-level tokens hold no space

}  // namespace

Gpt2Tokenizer Gpt2Tokenizer::from_files(const std::filesystem::path& vocab_json, const std::filesystem::path& merges_txt) {
    Gpt2Tokenizer t;
    // bytes_to_unicode: printable Latin-1 bytes stand for themselves, the others for code points from 256 up.
    int next = 0;
    for (int b = 0; b < 256; ++b) {
        const bool printable = (b >= '!' && b <= '~') || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
        const uint32_t cp = printable ? static_cast<uint32_t>(b) : static_cast<uint32_t>(256 + next++);
        append_utf8(t.byte_symbol_[b], cp);
        t.symbol_byte_[cp] = static_cast<uint8_t>(b);
    }

    const std::string vtext = read_all(vocab_json, "vocabulary");
    const auto entries = VocabParser(vtext, vocab_json.string()).parse();
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
            FLEXRT_THROW(FLEXRT_STATUS_BAD_DATA, "tokenizer vocabulary " + vocab_json.string() + " lacks the token of byte " + std::to_string(b) +
                                                     " (\"" + t.byte_symbol_[b] + "\"): not a byte-level BPE vocabulary");

    const std::string mtext = read_all(merges_txt, "merges");
    std::istringstream lines(mtext);
    std::string line;
    int64_t number = 0;
    while (std::getline(lines, line)) {
        ++number;
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (line.empty() || (number == 1 && line.rfind("#version", 0) == 0)) continue;
        const size_t sp = line.find(' ');
        if (sp == std::string::npos || sp == 0 || sp + 1 == line.size() || line.find(' ', sp + 1) != std::string::npos)
            FLEXRT_THROW(FLEXRT_STATUS_BAD_DATA, "tokenizer merges " + merges_txt.string() + " line " + std::to_string(number) + ": \"" + line +
                                                     "\" is not two tokens separated by one space");
        const std::string a = line.substr(0, sp), b = line.substr(sp + 1);
        if (!t.ids_.count(a + b))
            FLEXRT_THROW(FLEXRT_STATUS_BAD_DATA, "tokenizer merges " + merges_txt.string() + " line " + std::to_string(number) + ": the merge of \"" +
                                                     a + "\" and \"" + b + "\" is not in the vocabulary " + vocab_json.string());
        t.ranks_.emplace(pair_key(a, b), static_cast<int32_t>(t.ranks_.size()));
    }

    // OPT's special tokens (its tokenizer's bos = eos = </s>, pad <pad>, unk <unk>): split out of the text as they are.
    auto special = [&](const char* s) {
        const auto it = t.ids_.find(s);
        if (it == t.ids_.end())
            FLEXRT_THROW(FLEXRT_STATUS_BAD_DATA, "tokenizer vocabulary " + vocab_json.string() + " has no \"" + s + "\" (an OPT special token)");
        t.specials_.emplace_back(s, it->second);
        return it->second;
    };
    t.bos_ = t.eos_ = special("</s>");
    t.pad_ = special("<pad>");
    t.unk_ = special("<unk>");
    t.is_special_.assign(t.tokens_.size(), false);
    for (const auto& [s, id] : t.specials_) t.is_special_[id] = true;
    return t;
}

std::vector<int32_t> Gpt2Tokenizer::encode(std::string_view utf8, bool add_bos) const {
    for (size_t i = 0; i < utf8.size();) {
        const int n = utf8_sequence(utf8, i, nullptr);
        if (n < 0)
            FLEXRT_THROW(FLEXRT_STATUS_INVALID_ARGUMENT,
                         "text to tokenize is not valid UTF-8 at byte " + std::to_string(i) + " (" + hex_byte(utf8[i]) + ")");
        i += static_cast<size_t>(n);
    }
    std::vector<int32_t> out;
    if (add_bos) out.push_back(bos_);
    WordCache cache;
    size_t at = 0;
    while (at < utf8.size()) {  // the leftmost special token (the longest where two start together), then the text before it
        size_t best = std::string_view::npos, best_len = 0;
        int32_t best_id = -1;
        for (const auto& [s, id] : specials_) {
            const size_t p = utf8.find(s, at);
            if (p != std::string_view::npos && (p < best || (p == best && s.size() > best_len))) best = p, best_len = s.size(), best_id = id;
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

std::string Gpt2Tokenizer::decode(const std::vector<int32_t>& ids, bool skip_special) const {
    std::string bytes;
    for (const int32_t id : ids) {
        if (id < 0 || static_cast<size_t>(id) >= tokens_.size())
            FLEXRT_THROW(FLEXRT_STATUS_INVALID_ARGUMENT, "decode: token id " + std::to_string(id) + " is outside the vocabulary of " +
                                                             std::to_string(tokens_.size()));
        if (skip_special && is_special_[id]) continue;
        const std::string& tok = tokens_[id];
        for (size_t i = 0; i < tok.size();) {
            uint32_t c = 0;
            const int n = utf8_sequence(tok, i, &c);
            if (n < 0) {  // not from a well-formed vocabulary: pass the byte through
                bytes += tok[i++];
                continue;
            }
            const auto it = symbol_byte_.find(c);
            if (it != symbol_byte_.end()) bytes += static_cast<char>(it->second);
            else bytes.append(tok, i, static_cast<size_t>(n));
            i += static_cast<size_t>(n);
        }
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
