#include "rank_place.hpp"

#include <flexrt/status.hpp>

#include <cstdlib>
#include <sstream>
#include <vector>

namespace flexrt::app {
namespace {

const char* env(const char* name) {
    const char* v = std::getenv(name);
    return v && *v ? v : nullptr;
}

int integer_of(const std::string& text, const std::string& what, int lo, int hi) {
    size_t used = 0;
    long v = 0;
    try {
        v = std::stol(text, &used);
    } catch (const std::exception&) { used = 0; }
    if (used != text.size() || used == 0 || v < lo || v > hi)
        FLEXRT_THROW(FLEXRT_STATUS_INVALID_ARGUMENT,
                     what + " = \"" + text + "\": expected an integer from " + std::to_string(lo) + " to " + std::to_string(hi));
    return static_cast<int>(v);
}

}  // namespace

RankPlace find_rank_place(std::optional<int> rank, std::optional<int> world, std::optional<int> local_rank) {
    RankPlace p;
    if (rank || world) {
        if (!rank || !world) FLEXRT_THROW(FLEXRT_STATUS_INVALID_ARGUMENT, "--rank and --world go together: give both or neither");
        p.world = integer_of(std::to_string(*world), "--world", 1, 1 << 16);
        p.rank = integer_of(std::to_string(*rank), "--rank", 0, p.world - 1);
        p.local_rank = p.rank;
        if (local_rank)
            p.local_rank = integer_of(std::to_string(*local_rank), "--local-rank", 0, 1 << 16);
        else if (const char* l = env("LOCAL_RANK"))
            p.local_rank = integer_of(l, "LOCAL_RANK", 0, 1 << 16);
        p.from = "--rank/--world";
        return p;
    }
    struct Launcher {
        const char *size, *rank, *local, *name;
    };
    for (const Launcher& l : {Launcher{"OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_LOCAL_RANK", "mpirun (Open MPI)"},
                              Launcher{"PMI_SIZE", "PMI_RANK", "MPI_LOCALRANKID", "mpirun (MPICH / Intel MPI)"},
                              Launcher{"WORLD_SIZE", "RANK", "LOCAL_RANK", "torchrun"}}) {
        const char* size = env(l.size);
        if (!size) continue;
        p.world = integer_of(size, l.size, 1, 1 << 16);
        const char* r = env(l.rank);
        if (!r) FLEXRT_THROW(FLEXRT_STATUS_INVALID_ARGUMENT, std::string(l.size) + " is set, but " + l.rank + " is not");
        p.rank = integer_of(r, l.rank, 0, p.world - 1);
        p.local_rank = env(l.local) ? integer_of(env(l.local), l.local, 0, 1 << 16) : p.rank;
        p.from = l.name;
        return p;
    }
    p.from = "one process";
    return p;
}

void pin_gpu_of(const RankPlace& place) {
    std::string chosen = std::to_string(place.local_rank);
    const char* set = std::getenv("CUDA_VISIBLE_DEVICES");
    if (set && !*set) return;  // set empty: no GPU for this process, as its launcher wants
    if (const char* visible = env("CUDA_VISIBLE_DEVICES")) {
        std::vector<std::string> list;
        std::istringstream in(visible);
        for (std::string item; std::getline(in, item, ',');) list.push_back(item);
        if (list.size() == 1) return;  // the launcher gave each process its GPU already
        if (static_cast<size_t>(place.local_rank) >= list.size())
            FLEXRT_THROW(FLEXRT_STATUS_INVALID_ARGUMENT, "local rank " + std::to_string(place.local_rank) + " (from " + place.from +
                                                             ") has no GPU: CUDA_VISIBLE_DEVICES lists " + std::to_string(list.size()));
        chosen = list[static_cast<size_t>(place.local_rank)];
    }
    ::setenv("CUDA_VISIBLE_DEVICES", chosen.c_str(), 1);
}

}  // namespace flexrt::app
