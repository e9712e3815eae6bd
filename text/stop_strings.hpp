// run.stop_strings over generated token ids: whether a sequence's text contains one yet, how many of its tokens
// a completion keeps, and where its text is cut. The text is the tokenizer's lossy decoding of the ids.
//
// Checked after every new token, a string can first appear only near the end of the text: decoding the whole
// sequence at each step (as a first version did) costs O(n^2) in its length, so each check decodes only the
// tail a new match can lie in. The tail starts at a token boundary whose first byte is not a UTF-8 continuation
// byte: lossy UTF-8 decoding starts a new unit at such a byte whatever came before, so the tail's text is the end
// of the whole text, bit for bit.
#pragma once

#include "gpt2_tokenizer.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace flexrt::text {

class StopStrings {
public:
    StopStrings(const Gpt2Tokenizer& tokenizer, const std::vector<std::string>& strings);  // empty strings never match
    bool empty() const { return strings_.empty(); }

    // Whether decode(ids[0, count)) contains a stop string, given that decode(ids[0, count - 1)) did not: the
    // check after each new token. Decodes the last token, the longest string's length of bytes before it and
    // the few bytes an unfinished UTF-8 character may span.
    bool newly_in(const int32_t* ids, int64_t count) const;
    // The tokens up to and including the one that completed the first stop string (what a completion keeps);
    // -1 when no stop string appears.
    int64_t tokens_to_first(const std::vector<int32_t>& ids) const;
    // Where the first stop string begins in `text`; std::string::npos when none is in it.
    size_t cut(const std::string& text) const;

private:
    const Gpt2Tokenizer& tokenizer_;
    std::vector<std::string> strings_;
    size_t longest_ = 0;
};

}  // namespace flexrt::text
