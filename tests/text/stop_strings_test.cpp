// run.stop_strings checked on the text's tail only (text::StopStrings) against the definition, decoding every
// prefix: the same first stopping token on random id sequences of the fixture vocabulary, built to split
// multi-byte characters across tokens (lossy U+FFFD decoding in between), with ASCII, multi-byte and U+FFFD
// stop strings; and each check decodes a bounded tail, not the whole sequence.
#include "text/stop_strings.hpp"

#include <flexrt/status.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <random>

namespace flexrt::text {
namespace {

const Gpt2Tokenizer& tok() {
    static const Gpt2Tokenizer t = Gpt2Tokenizer::from_files(std::filesystem::path(FLEXRT_TEST_DATA_DIR) / "tokenizer" / "vocab.json",
                                                             std::filesystem::path(FLEXRT_TEST_DATA_DIR) / "tokenizer" / "merges.txt");
    return t;
}

// The definition: the first prefix whose whole decoding contains a stop string.
int64_t by_every_prefix(const std::vector<int32_t>& ids, const std::vector<std::string>& stops) {
    for (size_t k = 1; k <= ids.size(); ++k) {
        const std::string text = tok().decode(std::vector<int32_t>(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(k)));
        for (const auto& s : stops)
            if (!s.empty() && text.find(s) != std::string::npos) return static_cast<int64_t>(k);
    }
    return -1;
}

TEST(StopStrings, TailChecksStopWhereEveryPrefixDoes) {
    // Tokens of single bytes split characters: each multi-byte character's bytes as tokens of their own, so
    // prefixes end inside a character.
    std::vector<int32_t> byte_id(256, -1);  // the token of each single byte (a byte-level vocabulary has all 256)
    for (int32_t id = 0; id < static_cast<int32_t>(tok().vocab_size()); ++id)
        if (tok().token_bytes(id).size() == 1) byte_id[static_cast<unsigned char>(tok().token_bytes(id)[0])] = id;
    std::vector<int32_t> pool;
    for (const char* text : {"é", "€", "日本", "😀", " the", " quick", "ab", "stop", "STOP", "\n", " ", "s", "to", "p"})
        for (int32_t id : tok().encode(text, false)) pool.push_back(id);
    for (int b : {0xc3, 0xa9, 0xe2, 0x82, 0xac, 0xf0, 0x9f, 0x98, 0x80, 0xbf}) {  // lead and continuation bytes alone
        ASSERT_GE(byte_id[b], 0) << "no token for byte " << b;
        pool.push_back(byte_id[b]);
    }
    const std::vector<std::vector<std::string>> stop_sets = {
        {"stop"}, {"é"}, {"€", "quick"}, {"\xef\xbf\xbd"}, {"日本"}, {"😀", "STOP", ""}, {"p\n"}, {"a" + std::string("é")}};
    std::mt19937 rng(7);
    int stopped = 0, runs = 0;
    for (const auto& stops : stop_sets) {
        const StopStrings matcher(tok(), stops);
        for (int trial = 0; trial < 150; ++trial) {
            std::vector<int32_t> ids(std::uniform_int_distribution<size_t>(1, 40)(rng));
            for (auto& id : ids) id = pool[std::uniform_int_distribution<size_t>(0, pool.size() - 1)(rng)];
            const int64_t want = by_every_prefix(ids, stops);
            ASSERT_EQ(matcher.tokens_to_first(ids), want) << "stop set " << stops[0] << ", trial " << trial;
            stopped += want >= 0, ++runs;
        }
    }
    EXPECT_GT(stopped, runs / 10) << "too few sequences stop: the comparison says little";
    EXPECT_LT(stopped, runs) << "every sequence stops: the comparison says little";
}

// The two edges of the tail, built on purpose: a match that ends inside a long last token and starts before it
// (the tail reaches back the string's length before the last token's start, not its end), and a multi-byte
// character split over two tokens right where the tail would begin (the tail starts at its first byte, else its
// continuation byte would decode as U+FFFD and match that stop string where the whole text has none).
TEST(StopStrings, TheTailReachesFarEnoughAndStartsOnACharacter) {
    std::vector<int32_t> byte_id(256, -1);
    for (int32_t id = 0; id < static_cast<int32_t>(tok().vocab_size()); ++id)
        if (tok().token_bytes(id).size() == 1) byte_id[static_cast<unsigned char>(tok().token_bytes(id)[0])] = id;
    int32_t long_id = -1;  // the vocabulary's longest token of letters (with a leading space, often)
    for (int32_t id = 0; id < static_cast<int32_t>(tok().vocab_size()); ++id) {
        const std::string& b = tok().token_bytes(id);
        const bool letters =
            !b.empty() && std::all_of(b.begin(), b.end(), [](char c) { return c == ' ' || std::isalpha(static_cast<unsigned char>(c)); });
        if (letters && (long_id < 0 || b.size() > tok().token_bytes(long_id).size())) long_id = id;
    }
    const std::string& word = tok().token_bytes(long_id);
    ASSERT_GE(word.size(), 6u);
    const std::vector<int32_t> ends_in_last = {byte_id['#'], long_id};  // "#" + word: "#" and its first two bytes end in it
    const std::string across = "#" + word.substr(0, 2);
    EXPECT_EQ(by_every_prefix(ends_in_last, {across}), 2);
    EXPECT_EQ(StopStrings(tok(), {across}).tokens_to_first(ends_in_last), 2);

    // U+FFFD then 5 x: 8 bytes. Walking back from the word, 10 x and the 0xa9 make its length + 8 + 3 bytes, the need.
    const std::string replaced = "\xef\xbf\xbdxxxxx";
    std::vector<int32_t> split = {byte_id[0xc3], byte_id[0xa9]};  // "é" in two tokens
    for (int i = 0; i < 10; ++i) split.push_back(byte_id['x']);
    split.push_back(long_id);
    EXPECT_EQ(by_every_prefix(split, {replaced}), -1);
    EXPECT_EQ(StopStrings(tok(), {replaced}).tokens_to_first(split), -1);
}

TEST(StopStrings, CutsTheTextAtTheFirstString) {
    const StopStrings matcher(tok(), {"quick", "the", ""});
    EXPECT_EQ(matcher.cut("a quick brown the"), 2u);
    EXPECT_EQ(matcher.cut("no match here"), std::string::npos);
    EXPECT_TRUE(StopStrings(tok(), {"", ""}).empty());
    EXPECT_EQ(StopStrings(tok(), {""}).tokens_to_first(tok().encode("anything", false)), -1);
}

TEST(StopStrings, EachCheckDecodesABoundedTail) {
    // A long sequence with the stop string only at its very end: found there, and a check of the long prefix
    // before it does not depend on the prefix's start (tokens before the tail are never decoded: an id outside
    // the vocabulary there would throw if they were).
    std::vector<int32_t> ids = tok().encode(std::string(2000, 'x') + " stop", false);
    const StopStrings matcher(tok(), {"stop"});
    EXPECT_TRUE(matcher.newly_in(ids.data(), static_cast<int64_t>(ids.size())));
    ids[0] = static_cast<int32_t>(tok().vocab_size()) + 5;  // never read by a tail check
    EXPECT_TRUE(matcher.newly_in(ids.data(), static_cast<int64_t>(ids.size())));
    EXPECT_FALSE(matcher.newly_in(ids.data(), static_cast<int64_t>(ids.size()) - 1));
    EXPECT_THROW(tok().decode(ids), Error);
}

}  // namespace
}  // namespace flexrt::text
