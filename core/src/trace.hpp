// The run's timeline (`flexrt --trace out.json`): spans on one track per thread - the thread that runs the
// schedule and the host's compute, and each transfer worker - written as a Chrome trace (Perfetto,
// chrome://tracing) so a user sees whether the transfers overlap the compute. Off unless started: a span
// then costs one relaxed load.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>

namespace flexrt::trace {

using Clock = std::chrono::steady_clock;

// Starts recording (again, from nothing).
void start();
bool on() noexcept;
// Names the calling thread's track ("schedule and compute", "transfer worker", ...); the _once form only
// when it has no name yet (numbered, so that tracks of one kind stay apart).
void name_thread(const std::string& name);
void name_thread_once(const char* kind);
// Records a finished span on the calling thread's track.
void complete(const char* category, std::string name, Clock::time_point begin, Clock::time_point end);
// A track of its own, not a thread's: a GPU stream, whose spans are timed by the device and placed on the
// host's clock by whoever records them.
int new_track(const std::string& name);
void complete_on(int track, const char* category, std::string name, Clock::time_point begin, Clock::time_point end);
// Writes what was recorded as Chrome trace JSON, to a temporary name renamed when complete. Throws naming
// the file when it cannot.
void write(const std::filesystem::path& file);

std::string point_name(const char* what, int i, int j, int k);

// A span from construction to destruction, on the constructing thread's track; nothing when off.
class Span {
public:
    Span(const char* category, std::string name) : on_(on()) {
        if (on_) category_ = category, name_ = std::move(name), begin_ = Clock::now();
    }
    // "what (i, j, k)", formatted only when recording: a primitive of the generation grid.
    Span(const char* category, const char* what, int i, int j, int k) : on_(on()) {
        if (on_) category_ = category, name_ = point_name(what, i, j, k), begin_ = Clock::now();
    }
    ~Span() {
        if (on_) complete(category_, std::move(name_), begin_, Clock::now());
    }
    Span(const Span&) = delete;
    Span& operator=(const Span&) = delete;

private:
    bool on_;
    const char* category_ = nullptr;
    std::string name_;
    Clock::time_point begin_;
};

}  // namespace flexrt::trace
