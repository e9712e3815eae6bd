// OPT's tokenizer: GPT-2's byte-level BPE, read from a checkpoint's vocab.json and merges.txt. Text is split
// on the special tokens first (OPT's </s>, <pad>, <unk> where they occur in the text), each piece by GPT-2's
// pre-tokenizer pattern ('s 't 're 've 'm 'll 'd, letters, numbers, other symbols - each with one optional
// leading space - and whitespace runs), each pre-token's UTF-8 bytes become printable stand-ins (bytes_to_unicode)
// and merge by rank. The same ids as HF transformers' GPT2Tokenizer configured as OPT's (BOS </s> prepended, no
// clean-up of spaces): tests/text/gpt2_tokenizer_test.cpp checks both directions on a fixture made with it.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace flexrt::text {

class Gpt2Tokenizer {
public:
    // Throws naming the file and the line or byte where either file is not what GPT-2's format expects.
    static Gpt2Tokenizer from_files(const std::filesystem::path& vocab_json, const std::filesystem::path& merges_txt);

    // Throws INVALID_ARGUMENT naming the byte offset when `utf8` is not valid UTF-8.
    std::vector<int32_t> encode(std::string_view utf8, bool add_bos = true) const;
    // Invalid UTF-8 from partial byte sequences becomes U+FFFD, one per maximal invalid subpart (as Python's
    // and Rust's lossy decoders do). Throws INVALID_ARGUMENT for an id outside the vocabulary.
    std::string decode(const std::vector<int32_t>& ids, bool skip_special = false) const {
        return decode(ids.data(), static_cast<int64_t>(ids.size()), skip_special);
    }
    std::string decode(const int32_t* ids, int64_t count, bool skip_special = false) const;
    // The bytes token `id` stands for (decoding is their concatenation, then the lossy UTF-8 pass). Throws
    // INVALID_ARGUMENT for an id outside the vocabulary.
    const std::string& token_bytes(int32_t id) const;

    int32_t bos_id() const { return bos_; }
    int32_t eos_id() const { return eos_; }
    int32_t pad_id() const { return pad_; }
    size_t vocab_size() const { return tokens_.size(); }

private:
    Gpt2Tokenizer() = default;
    using WordCache = std::unordered_map<std::string, std::vector<int32_t>>;  // pre-token -> ids, per call: words repeat
    void encode_piece(std::string_view utf8, WordCache& cache, std::vector<int32_t>& out) const;
    void bpe(const std::string& word, std::vector<int32_t>& out) const;

    std::unordered_map<std::string, int32_t> ids_;           // token (byte stand-ins, UTF-8) -> id
    std::vector<std::string> tokens_;                        // id -> token
    std::vector<std::string> bytes_;                         // id -> the bytes it stands for
    std::unordered_map<std::string, int32_t> ranks_;         // "left right" -> rank (lower merges first)
    std::vector<std::pair<std::string, int32_t>> specials_;  // split out of the text before BPE
    std::vector<bool> is_special_;
    std::string byte_symbol_[256];  // byte -> its stand-in, UTF-8
    int32_t bos_ = -1, eos_ = -1, pad_ = -1, unk_ = -1;
};

}  // namespace flexrt::text
