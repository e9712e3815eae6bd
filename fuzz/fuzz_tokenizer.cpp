// libFuzzer: the tokenizer (tests/data/tokenizer's vocabulary) on arbitrary bytes. Valid UTF-8 encodes, and
// decodes back to the same text; anything else is flexrt::Error. The bytes as token ids decode without a crash.
#include "text/gpt2_tokenizer.hpp"
#include "text/utf8.hpp"

#include <flexrt/status.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static const flexrt::text::Gpt2Tokenizer tok =
        flexrt::text::Gpt2Tokenizer::from_files(FLEXRT_FUZZ_TOKENIZER_DIR "/vocab.json", FLEXRT_FUZZ_TOKENIZER_DIR "/merges.txt");
    const std::string_view s(reinterpret_cast<const char*>(data), size);
    try {
        const auto ids = tok.encode(s, /*add_bos=*/false);
        if (tok.decode(ids) != s) std::abort();  // byte-level BPE loses nothing
    } catch (const flexrt::Error&) {
        if (flexrt::text::invalid_utf8_at(s) == std::string_view::npos) std::abort();  // valid text must encode
    }
    std::vector<int32_t> ids;
    for (size_t i = 0; i + 1 < size; i += 2) ids.push_back(static_cast<int32_t>((data[i] | (data[i + 1] << 8)) % tok.vocab_size()));
    (void)tok.decode(ids);
    return 0;
}
