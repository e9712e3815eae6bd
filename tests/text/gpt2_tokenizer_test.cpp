// OPT's tokenizer against HF transformers' GPT2Tokenizer (configured as OPT's) on the fixture that
// tools/make_tokenizer_fixture.py made: a byte-level BPE vocabulary trained on this repository's Markdown,
// varied texts (unicode of several scripts, emoji sequences, whitespace runs of every kind, numbers, very
// long words, contractions, special tokens inside the text) and random id sequences. Ids must be equal and
// decoded text byte for byte equal; bad files and bad input give errors that name them.
#include "text/gpt2_tokenizer.hpp"

#include <flexrt/status.hpp>

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

namespace flexrt::text {
namespace {

const std::filesystem::path kDir = std::filesystem::path(FLEXRT_TEST_DATA_DIR) / "tokenizer";

std::string unhex(const std::string& h) {
    std::string out;
    for (size_t i = 0; i + 1 < h.size(); i += 2) out += static_cast<char>(std::stoi(h.substr(i, 2), nullptr, 16));
    return out;
}
std::vector<int32_t> ids_of(const std::string& s) {
    std::vector<int32_t> v;
    std::istringstream in(s);
    for (int32_t x; in >> x;) v.push_back(x);
    return v;
}
std::vector<std::vector<std::string>> cases() {
    std::ifstream in(kDir / "cases.tsv");
    std::vector<std::vector<std::string>> out;
    for (std::string line; std::getline(in, line);) {
        std::vector<std::string> f;
        std::istringstream ss(line);
        for (std::string field; std::getline(ss, field, '\t');) f.push_back(field);
        if (line.back() == '\t') f.push_back("");  // an empty last field
        out.push_back(f);
    }
    return out;
}

const Gpt2Tokenizer& tok() {
    static const Gpt2Tokenizer t = Gpt2Tokenizer::from_files(kDir / "vocab.json", kDir / "merges.txt");
    return t;
}

TEST(Gpt2Tokenizer, EncodesAndDecodesAsTransformers) {
    EXPECT_EQ(tok().bos_id(), 2);
    EXPECT_EQ(tok().pad_id(), 1);
    int encodes = 0, decodes = 0;
    for (const auto& f : cases()) {
        if (f[0] == "encode") {
            ASSERT_EQ(f.size(), 5u);
            const std::string text = unhex(f[1]);
            EXPECT_EQ(tok().encode(text), ids_of(f[2])) << "text: " << text;
            EXPECT_EQ(tok().decode(ids_of(f[2])), unhex(f[3])) << "text: " << text;
            EXPECT_EQ(tok().decode(ids_of(f[2]), /*skip_special=*/true), unhex(f[4])) << "text: " << text;
            ++encodes;
        } else {
            ASSERT_EQ(f[0], "decode");
            EXPECT_EQ(tok().decode(ids_of(f[1])), unhex(f[2])) << "ids: " << f[1];
            ++decodes;
        }
    }
    EXPECT_GE(encodes, 30);
    EXPECT_GE(decodes, 5);
}

TEST(Gpt2Tokenizer, RoundTripsWithoutBos) {
    for (const std::string text : {"plain words", "\xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80  x", "  \t\n"}) {
        const auto ids = tok().encode(text, /*add_bos=*/false);
        EXPECT_TRUE(ids.empty() || ids.front() != tok().bos_id() || text.rfind("</s>", 0) == 0);
        EXPECT_EQ(tok().decode(ids), text);
    }
}

TEST(Gpt2Tokenizer, BadInputNamesWhatIsWrong) {
    try {
        tok().encode("valid then \xff invalid");
        FAIL() << "invalid UTF-8 accepted";
    } catch (const Error& e) { EXPECT_NE(std::string(e.what()).find("not valid UTF-8 at byte 11 (0xff)"), std::string::npos) << e.what(); }
    EXPECT_THROW(tok().decode({static_cast<int32_t>(tok().vocab_size())}), Error);
    const auto tmp = std::filesystem::temp_directory_path() / "flexrt_tokenizer_test";
    std::filesystem::create_directories(tmp);
    auto write = [&](const char* name, const std::string& body) {
        std::ofstream(tmp / name) << body;
        return tmp / name;
    };
    auto message = [&](const std::filesystem::path& v, const std::filesystem::path& m) {
        try {
            Gpt2Tokenizer::from_files(v, m);
        } catch (const Error& e) { return std::string(e.what()); }
        return std::string("(no error)");
    };
    const auto merges = kDir / "merges.txt", vocab = kDir / "vocab.json";
    EXPECT_NE(
        message(tmp / "missing.json", merges).find("the tokenizer's vocabulary " + (tmp / "missing.json").string() + " cannot be read"),
        std::string::npos);
    EXPECT_NE(message(write("trunc.json", "{\"a\": 0, \"b\""), merges).find("trunc.json: not valid JSON: ':' expected at byte 12"),
              std::string::npos)
        << message(write("trunc.json", "{\"a\": 0, \"b\""), merges);
    EXPECT_NE(message(write("notbytes.json", "{\"a\": 0}"), merges).find("lacks the token of byte 0"), std::string::npos);
    EXPECT_NE(message(vocab, write("bad_merges.txt", "#version: 0.2\nonly_one_token\n")).find("bad_merges.txt line 2"), std::string::npos);
    EXPECT_NE(message(vocab, write("unknown_merge.txt", "#version: 0.2\n\xc4\xa0 zzzzqq\n")).find("is not in the vocabulary"),
              std::string::npos);
    std::filesystem::remove_all(tmp);
}

}  // namespace
}  // namespace flexrt::text
