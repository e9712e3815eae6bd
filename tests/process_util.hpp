// Helpers for tests that run several processes: the ranks of a pipeline or a communicator, forked.
#pragma once

#include <flexrt/status.hpp>

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <string>
#include <thread>
#include <vector>

namespace flexrt::test {

// A port nothing listens on now (bound to 0, then closed).
inline int free_port() {
    const int s = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET, a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a);
    socklen_t len = sizeof a;
    ::getsockname(s, reinterpret_cast<sockaddr*>(&a), &len);
    ::close(s);
    return ntohs(a.sin_port);
}

// Runs body(rank) in `world` child processes; returns their exit codes (a thrown Error exits 10 + its status).
inline std::vector<int> run_ranks(int world, const std::function<int(int)>& body, int start_delay_ms = 0) {
    std::vector<pid_t> pids;
    for (int r = world - 1; r >= 0; --r) {  // the highest first: rank 0 comes last
        const pid_t pid = ::fork();
        if (pid == 0) {
            int code = 0;
            try {
                code = body(r);
            } catch (const Error& e) {
                std::fprintf(stderr, "rank %d: %s\n", r, e.what());
                code = 10 + static_cast<int>(e.status());
            } catch (...) { code = 99; }
            ::_exit(code);
        }
        pids.push_back(pid);
        std::this_thread::sleep_for(std::chrono::milliseconds(start_delay_ms));
    }
    std::vector<int> codes(static_cast<size_t>(world));
    for (int i = 0; i < world; ++i) {
        int status = 0;
        ::waitpid(pids[static_cast<size_t>(i)], &status, 0);
        codes[static_cast<size_t>(world - 1 - i)] = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    return codes;
}

}  // namespace flexrt::test
