// A whole file read into memory: the config, a tokenizer's vocab.json and merges.txt, a checkpoint's index, a
// .npy, a result file. One place that says what failed and why.
#pragma once

#include <filesystem>
#include <string>

namespace flexrt::text {

// The bytes of `path`. Throws flexrt::Error - NOT_FOUND when it cannot be opened, IO_ERROR when reading
// fails - with `what` ("config file", "the tokenizer's vocabulary"), the path and the OS's reason.
std::string read_whole_file(const std::filesystem::path& path, const std::string& what);

}  // namespace flexrt::text
