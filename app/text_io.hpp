// Text prompts in, completions out: the prompt files a user hands flexrt (JSONL or a prompt a line) and the
// JSONL results, written whole or not at all.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace flexrt::app {

// A .jsonl file holds an object a line with a "prompt" string (other members ignored); any other file a
// prompt a line (a trailing \r dropped, blank lines skipped). Throws naming the file and line: not UTF-8 (and
// the byte), not JSON, no "prompt" string; and when the file has no prompt at all.
std::vector<std::string> read_prompts(const std::filesystem::path& file);

struct Completion {
    std::string prompt;
    int64_t prompt_tokens = 0;  // with the BOS
    std::vector<int32_t> ids;   // generated, without the stop token
    bool stopped = false;       // the stop token ended it; else run.gen_len did
    std::string text;           // ids decoded
    int64_t block = 0;          // the block of prompts it ran in; its timings are the block's
    double prefill_s = 0, decode_s = 0;
};

// One JSONL line (no newline): prompt, text, token_ids, finish_reason ("stop" / "length"), prompt_tokens,
// block, prefill_s, decode_s.
std::string jsonl_line(const Completion& c);

// Throws INVALID_ARGUMENT naming `what` when `file`'s directory cannot take it: checked before a run, not after.
void check_writable(const std::filesystem::path& file, const std::string& what);

}  // namespace flexrt::app
