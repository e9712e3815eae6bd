// `flexrt iobench`: reads and writes a file through a storage plugin config and prints what the disk tier
// delivers (GB/s, request latency p50/p99, CPU use); A/B of two configs on the same file; a sweep over
// block_size x queue_depth x threads x submission that prints the best as a TOML snippet; fio beside it
// when installed.
#pragma once

#include <string>
#include <vector>

namespace flexrt {

// argv without the subcommand. Returns the process exit code; throws flexrt::Error on bad input.
int iobench_main(const std::vector<std::string>& args);

}  // namespace flexrt
