// The JSON reader and quoting behind vocab.json, JSONL prompts and JSONL results: values of every type,
// every escape (surrogate pairs included), errors that say where, and quoting that reads back.
#include "text/json.hpp"

#include <flexrt/status.hpp>

#include <gtest/gtest.h>

namespace flexrt::text {
namespace {

std::string error_of(std::string_view s) {
    try {
        parse_json(s, "t.json");
    } catch (const Error& e) { return e.what(); }
    return "(no error)";
}

TEST(Json, ReadsEveryKindOfValue) {
    const JsonValue v = parse_json(R"( {"a": [1, -2.5e3, true, false, null], "b": {"c": "d\n\"\\\/\u00e9\ud83d\ude00"}, "":0} )", "t");
    ASSERT_EQ(v.type, JsonValue::Type::object);
    ASSERT_EQ(v.members.size(), 3u);
    const JsonValue* a = v.find("a");
    ASSERT_TRUE(a && a->items.size() == 5);
    EXPECT_EQ(a->items[0].text, "1");
    EXPECT_DOUBLE_EQ(a->items[1].number, -2500.0);
    EXPECT_TRUE(a->items[2].boolean);
    EXPECT_EQ(a->items[3].type, JsonValue::Type::boolean);
    EXPECT_EQ(a->items[4].type, JsonValue::Type::null);
    EXPECT_EQ(v.find("b")->find("c")->text, "d\n\"\\/\xc3\xa9\xf0\x9f\x98\x80");
    EXPECT_EQ(v.find("missing"), nullptr);
}

TEST(Json, ErrorsSayWhereAndWhat) {
    EXPECT_NE(error_of(R"({"a": 1,})").find("t.json: not valid JSON: '\"' expected at byte 8"), std::string::npos)
        << error_of(R"({"a": 1,})");
    EXPECT_NE(error_of(R"("abc)").find("an unterminated string"), std::string::npos);
    EXPECT_NE(error_of(R"("\ud800x")").find("a lone high surrogate"), std::string::npos);
    EXPECT_NE(error_of(R"("\q")").find("an unknown escape"), std::string::npos);
    EXPECT_NE(error_of("[1] 2").find("text after the value at byte 4"), std::string::npos);
    EXPECT_NE(error_of("\"tab\there\"").find("a control character"), std::string::npos);
    EXPECT_NE(error_of(std::string(10000, '[')).find("nesting deeper than"), std::string::npos);  // no stack overflow
    EXPECT_NE(error_of("").find("a value expected at byte 0"), std::string::npos);
}

TEST(Json, QuotedStringsReadBack) {
    const std::string s = "line\nbreak \"quoted\" back\\slash \x01 tab\t \xe6\x97\xa5";
    const std::string q = json_quote(s);
    EXPECT_EQ(q.find('\n'), std::string::npos);
    EXPECT_EQ(parse_json(q, "q").text, s);
}

}  // namespace
}  // namespace flexrt::text
