#include "json.hpp"

#include "utf8.hpp"

#include <flexrt/status.hpp>

#include <cstdio>
#include <cstdlib>

namespace flexrt::text {
namespace {

class Parser {
public:
    Parser(std::string_view s, const std::string& where) : s_(s), where_(where) {}
    JsonValue document() {
        JsonValue v = value(0);
        skip();
        if (i_ != s_.size()) fail("text after the value");
        return v;
    }

private:
    static constexpr int kMaxDepth = 256;  // nesting deeper than any file flexrt reads: an error, not a stack overflow

    [[noreturn]] void fail(const std::string& what) const {
        FLEXRT_THROW(FLEXRT_STATUS_BAD_DATA, where_ + ": not valid JSON: " + what + " at byte " + std::to_string(i_));
    }
    char peek() const { return i_ < s_.size() ? s_[i_] : '\0'; }
    void skip() {
        while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\n' || s_[i_] == '\r' || s_[i_] == '\t')) ++i_;
    }
    void expect(char c) {
        if (peek() != c) fail(std::string("'") + c + "' expected");
        ++i_;
    }
    bool literal(std::string_view word) {
        if (s_.substr(i_, word.size()) != word) return false;
        i_ += word.size();
        return true;
    }
    JsonValue value(int depth) {
        if (depth > kMaxDepth) fail("nesting deeper than " + std::to_string(kMaxDepth));
        skip();
        JsonValue v;
        const char c = peek();
        if (c == '{') {
            v.type = JsonValue::Type::object;
            ++i_;
            skip();
            if (peek() == '}') return ++i_, v;
            for (;;) {
                skip();
                std::string key = string();
                skip();
                expect(':');
                v.members.emplace_back(std::move(key), value(depth + 1));
                skip();
                if (peek() == ',') {
                    ++i_;
                    continue;
                }
                expect('}');
                return v;
            }
        }
        if (c == '[') {
            v.type = JsonValue::Type::array;
            ++i_;
            skip();
            if (peek() == ']') return ++i_, v;
            for (;;) {
                v.items.push_back(value(depth + 1));
                skip();
                if (peek() == ',') {
                    ++i_;
                    continue;
                }
                expect(']');
                return v;
            }
        }
        if (c == '"') {
            v.type = JsonValue::Type::string;
            v.text = string();
            return v;
        }
        if (literal("true")) return v.type = JsonValue::Type::boolean, v.boolean = true, v;
        if (literal("false")) return v.type = JsonValue::Type::boolean, v;
        if (literal("null")) return v;
        if (c == '-' || (c >= '0' && c <= '9')) return number();
        fail("a value expected");
    }
    JsonValue number() {
        const size_t start = i_;
        if (peek() == '-') ++i_;
        auto digits = [&] {
            const size_t from = i_;
            while (i_ < s_.size() && s_[i_] >= '0' && s_[i_] <= '9') ++i_;
            if (i_ == from) fail("a digit expected");
        };
        digits();
        if (peek() == '.') ++i_, digits();
        if (peek() == 'e' || peek() == 'E') {
            ++i_;
            if (peek() == '+' || peek() == '-') ++i_;
            digits();
        }
        JsonValue v;
        v.type = JsonValue::Type::number;
        v.text = std::string(s_.substr(start, i_ - start));
        v.number = std::strtod(v.text.c_str(), nullptr);
        return v;
    }
    uint32_t hex4() {
        if (i_ + 4 > s_.size()) fail("a short \\u escape");
        uint32_t v = 0;
        for (int k = 0; k < 4; ++k) {
            const char c = s_[i_++];
            v <<= 4;
            if (c >= '0' && c <= '9')
                v |= static_cast<uint32_t>(c - '0');
            else if (c >= 'a' && c <= 'f')
                v |= static_cast<uint32_t>(c - 'a' + 10);
            else if (c >= 'A' && c <= 'F')
                v |= static_cast<uint32_t>(c - 'A' + 10);
            else
                fail("a bad \\u escape");
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

    std::string_view s_;
    const std::string& where_;
    size_t i_ = 0;
};

}  // namespace

JsonValue::JsonValue() = default;
JsonValue::JsonValue(const JsonValue&) = default;
JsonValue::JsonValue(JsonValue&&) noexcept = default;
JsonValue& JsonValue::operator=(const JsonValue&) = default;
JsonValue& JsonValue::operator=(JsonValue&&) noexcept = default;
JsonValue::~JsonValue() = default;

const JsonValue* JsonValue::find(std::string_view key) const {
    for (const auto& [k, v] : members)
        if (k == key) return &v;
    return nullptr;
}

JsonValue parse_json(std::string_view text, const std::string& where) { return Parser(text, where).document(); }

std::string json_quote(std::string_view s) {
    std::string out = "\"";
    for (const char c : s) {
        switch (c) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        default:
            if (static_cast<uint8_t>(c) < 0x20) {
                char buf[8];
                std::snprintf(buf, sizeof buf, "\\u%04x", c);
                out += buf;
            } else {
                out += c;
            }
        }
    }
    return out + "\"";
}

}  // namespace flexrt::text
