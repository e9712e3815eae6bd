// `flexrt calibrate` (measure this machine into a hardware profile) and `flexrt plan` (the fastest policy that
// fits, from that profile), and the same search for a run whose config says `policy = "auto"`.
#pragma once

#include "core/src/config.hpp"
#include "models/opt/opt_config.hpp"

#include <functional>
#include <string>
#include <vector>

namespace flexrt {

// argv without the subcommand. Return the process exit code; throw flexrt::Error on bad input.
int calibrate_main(const std::vector<std::string>& args);
int plan_main(const std::vector<std::string>& args);

// For `policy = "auto"`: replaces cfg.policy and the schedule by the planner's best for this run, against
// the tiers' capacities (`gpu_pool`: the compute device's pool, 0 on the CPU path). `max_block`: the
// sequences there are (0: any). Calibrates first when no profile of this machine exists.
void plan_policy_for_run(Config& cfg, const opt::OptConfig& model, bool use_gpu, uint64_t gpu_pool, int64_t max_block,
                         const std::function<void(const std::string&)>& say);

}  // namespace flexrt
