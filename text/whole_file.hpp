// A whole file read into memory (the config, a tokenizer's vocab.json and merges.txt, a checkpoint's index, a
// .npy, a result file) or written at once (results, a trace, a hardware profile, stored compressed weights).
// One place that says what failed and why.
#pragma once

#include <filesystem>
#include <functional>
#include <ostream>
#include <string>

namespace flexrt::text {

// The bytes of `path`. Throws flexrt::Error - NOT_FOUND when it cannot be opened, IO_ERROR when reading
// fails - with `what` ("config file", "the tokenizer's vocabulary"), the path and the OS's reason.
std::string read_whole_file(const std::filesystem::path& path, const std::string& what);

// Writes `path` whole or not at all: `write` fills path.partial, which is flushed and then renamed over `path`,
// so that no reader (and no later run) takes a half-written file for a complete one. On failure the partial
// file is removed and flexrt::Error names `what`, the file and the OS's reason: NO_SPACE when the disk is full,
// else IO_ERROR. An exception from `write` removes the partial file too and goes on.
void write_whole_file(const std::filesystem::path& path, const std::string& what, const std::function<void(std::ostream&)>& write);

}  // namespace flexrt::text
