// Where this process sits in a pipeline: its rank, the world's size and its rank on its host, from
// `--rank R --world N` or from the launcher's environment (mpirun: OMPI_COMM_WORLD_*; MPICH / Intel MPI: PMI_*;
// torchrun: RANK, WORLD_SIZE, LOCAL_RANK), in that order. One process (world 1) when none says otherwise.
#pragma once

#include <optional>
#include <string>

namespace flexrt::app {

struct RankPlace {
    int rank = 0, world = 1, local_rank = 0;
    std::string from;  // what said so: "--rank/--world", "mpirun (OMPI_COMM_WORLD_RANK/SIZE)", ...
};

// Throws naming the flag or variable when a value is not an integer in range, or when only one of --rank and
// --world is given. With --rank/--world the local rank is --local-rank, else LOCAL_RANK, else the rank (right on
// one host; on several, give one of the others).
RankPlace find_rank_place(std::optional<int> rank, std::optional<int> world, std::optional<int> local_rank = std::nullopt);

// Makes the local rank's GPU the only one this process sees (CUDA_VISIBLE_DEVICES, the local_rank-th of the
// ones it lists, or GPU local_rank), before anything asks CUDA: every thread then uses it as device 0. A local
// rank beyond the list is an error naming it; a list of one, or an empty one (no GPU), is left as it is.
void pin_gpu_of(const RankPlace& place);

}  // namespace flexrt::app
