#include "trace.hpp"

#include "text/json.hpp"
#include "text/whole_file.hpp"

#include <flexrt/status.hpp>

#include <atomic>
#include <cstdio>
#include <map>
#include <mutex>
#include <vector>

namespace flexrt::trace {
namespace {

struct Record {
    const char* category;
    std::string name;
    int track;
    double begin_us, duration_us;
};

struct State {
    std::atomic<bool> on{false};
    std::mutex m;
    Clock::time_point origin;
    std::vector<Record> records;
    std::map<int, std::string> track_names;
    std::atomic<int> next_track{1};
};
State& state() {
    static State s;
    return s;
}
int track() {
    thread_local const int id = state().next_track.fetch_add(1);
    return id;
}

}  // namespace

void start() {
    State& s = state();
    std::lock_guard lock(s.m);
    s.records.clear();
    s.origin = Clock::now();
    s.on.store(true, std::memory_order_relaxed);
}

bool on() noexcept { return state().on.load(std::memory_order_relaxed); }

void name_thread(const std::string& name) {
    State& s = state();
    std::lock_guard lock(s.m);
    s.track_names[track()] = name;
}

void name_thread_once(const char* kind) {
    State& s = state();
    const int t = track();
    std::lock_guard lock(s.m);
    if (!s.track_names.count(t)) s.track_names[t] = std::string(kind) + " " + std::to_string(t);
}

std::string point_name(const char* what, int i, int j, int k) {
    return std::string(what) + " (" + std::to_string(i) + ", " + std::to_string(j) + ", " + std::to_string(k) + ")";
}

int new_track(const std::string& name) {
    State& s = state();
    const int t = s.next_track.fetch_add(1);
    std::lock_guard lock(s.m);
    s.track_names[t] = name;
    return t;
}

void complete(const char* category, std::string name, Clock::time_point begin, Clock::time_point end) {
    complete_on(track(), category, std::move(name), begin, end);
}

void complete_on(int t, const char* category, std::string name, Clock::time_point begin, Clock::time_point end) {
    State& s = state();
    std::lock_guard lock(s.m);
    const auto us = [&](Clock::time_point p) { return std::chrono::duration<double, std::micro>(p - s.origin).count(); };
    s.records.push_back({category, std::move(name), t, us(begin), us(end) - us(begin)});
}

void write(const std::filesystem::path& file) {
    State& s = state();
    std::lock_guard lock(s.m);
    text::write_whole_file(file, "--trace", [&](std::ostream& out) {
        out << "{\"displayTimeUnit\": \"ms\", \"traceEvents\": [\n";
        bool first = true;
        auto sep = [&] {
            if (!first) out << ",\n";
            first = false;
        };
        for (const auto& [t, name] : s.track_names) {
            sep();
            out << "{\"ph\": \"M\", \"name\": \"thread_name\", \"pid\": 1, \"tid\": " << t
                << ", \"args\": {\"name\": " << text::json_quote(name) << "}}";
        }
        for (const Record& r : s.records) {
            sep();
            char times[96];
            std::snprintf(times, sizeof times, "\"ts\": %.3f, \"dur\": %.3f", r.begin_us, r.duration_us);
            out << "{\"ph\": \"X\", \"pid\": 1, \"tid\": " << r.track << ", \"cat\": " << text::json_quote(r.category)
                << ", \"name\": " << text::json_quote(r.name) << ", " << times << "}";
        }
        out << "\n]}\n";
    });
}

}  // namespace flexrt::trace
