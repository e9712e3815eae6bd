#include "pipeline_stage.hpp"

#include <flexrt/status.hpp>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <sstream>
#include <thread>

namespace flexrt {
namespace {

constexpr uint64_t kAgreementTag = 0x50495045;  // "PIPE"
constexpr uint64_t kTokensTag = 1ull << 62;     // or'ed with the (step, micro-batch) index
constexpr uint64_t kMaxAgreement = 1 << 20;

// Sends from a thread of its own, in order: the caller never waits on a peer that may be waiting on it. A failed
// send aborts both links (the caller's blocked receive then fails) and is what the caller reports.
class ControlSender {
public:
    explicit ControlSender(PipelineLinks links) : links_(links), thread_([this] { loop(); }) {}
    ~ControlSender() {
        {
            std::lock_guard lock(mutex_);
            stop_ = true;
        }
        wake_.notify_all();
        thread_.join();
    }
    ControlSender(const ControlSender&) = delete;
    ControlSender& operator=(const ControlSender&) = delete;

    void post(int peer, uint64_t tag, std::vector<std::byte> bytes) {
        std::lock_guard lock(mutex_);
        throw_if_failed();
        queue_.push_back({peer, tag, std::move(bytes)});
        wake_.notify_all();
    }
    // Returns when every message posted has been sent.
    void drain() {
        std::unique_lock lock(mutex_);
        idle_.wait(lock, [&] { return (queue_.empty() && !busy_) || failed_; });
        throw_if_failed();
    }
    // Whether a send has failed, and if one has, throws its error: the cause of whatever the caller saw next.
    bool failed() {
        std::lock_guard lock(mutex_);
        return failed_;
    }
    void rethrow_failure() {
        std::lock_guard lock(mutex_);
        throw_if_failed();
    }

private:
    void fail(flexrt_status status, const std::string& what) {
        std::lock_guard lock(mutex_);
        failed_ = true, status_ = status, error_ = what;
        queue_.clear();
    }
    void throw_if_failed() const {
        if (failed_) throw Error(status_, error_);
    }
    struct Message {
        int peer;
        uint64_t tag;
        std::vector<std::byte> bytes;
    };
    void loop() {
        for (;;) {
            Message m;
            {
                std::unique_lock lock(mutex_);
                wake_.wait(lock, [&] { return stop_ || !queue_.empty(); });
                if (queue_.empty()) return;
                m = std::move(queue_.front());
                queue_.pop_front();
                busy_ = true;
            }
            try {
                links_.control.send(m.peer, m.bytes.data(), m.bytes.size(), m.tag);
            } catch (const Error& e) { fail(e.status(), e.what()); } catch (const std::exception& e) {
                fail(FLEXRT_STATUS_INTERNAL, e.what());
            }
            std::lock_guard lock(mutex_);
            busy_ = false;
            if (failed_) {
                links_.data.abort();
                links_.control.abort();
            }
            idle_.notify_all();
            if (failed_) return;
        }
    }
    PipelineLinks links_;
    std::mutex mutex_;
    std::condition_variable wake_, idle_;
    std::deque<Message> queue_;
    bool stop_ = false, busy_ = false, failed_ = false;
    flexrt_status status_ = FLEXRT_STATUS_OK;
    std::string error_;
    std::thread thread_;  // last: it starts once the rest is built
};

std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> lines;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);)
        if (!line.empty()) lines.push_back(line);
    return lines;
}

std::string key_of(const std::string& line) { return line.substr(0, line.find(" = ")); }

}  // namespace

void check_pipeline_agreement(ICommunicator& control, const std::string& terms) {
    const int rank = control.rank(), world = control.world();
    if (world == 1) return;
    if (terms.size() > kMaxAgreement) FLEXRT_THROW(FLEXRT_STATUS_INVALID_ARGUMENT, "the pipeline's agreement text is too long");
    std::string verdict;
    if (rank == 0) {
        const auto mine = lines_of(terms);
        for (int r = 1; r < world; ++r) {
            uint64_t size = 0;
            control.recv(r, &size, sizeof size, kAgreementTag);
            if (size > kMaxAgreement) FLEXRT_THROW(FLEXRT_STATUS_INTERNAL, "rank " + std::to_string(r) + " sent a malformed agreement");
            std::string theirs(size, '\0');
            control.recv(r, theirs.data(), size, kAgreementTag);
            const auto other = lines_of(theirs);
            for (size_t n = 0; n < std::max(mine.size(), other.size()) && verdict.empty(); ++n) {
                const std::string a = n < mine.size() ? mine[n] : "(nothing)", b = n < other.size() ? other[n] : "(nothing)";
                if (a != b)
                    verdict = "the ranks of the pipeline must run the same job, and " + key_of(n < mine.size() ? a : b) +
                              " differs: rank 0 has `" + a + "`, rank " + std::to_string(r) + " has `" + b + "`";
            }
        }
        const uint64_t size = verdict.size();
        for (int r = 1; r < world; ++r) {
            control.send(r, &size, sizeof size, kAgreementTag);
            control.send(r, verdict.data(), size, kAgreementTag);
        }
    } else {
        const uint64_t size = terms.size();
        control.send(0, &size, sizeof size, kAgreementTag);
        control.send(0, terms.data(), size, kAgreementTag);
        uint64_t verdict_size = 0;
        control.recv(0, &verdict_size, sizeof verdict_size, kAgreementTag);
        if (verdict_size > kMaxAgreement) FLEXRT_THROW(FLEXRT_STATUS_INTERNAL, "rank 0 sent a malformed verdict");
        verdict.resize(verdict_size);
        control.recv(0, verdict.data(), verdict_size, kAgreementTag);
    }
    if (!verdict.empty()) FLEXRT_THROW(FLEXRT_STATUS_INVALID_ARGUMENT, verdict);
}

GenerationResult run_pipeline_stage(Engine& engine, const std::vector<std::vector<int32_t>>& prompts, const GenerateOptions& options,
                                    IScheduler& scheduler, PipelineLinks links, int64_t micro_batches, const ProgressFn& progress) {
    const int rank = links.control.rank(), world = links.control.world(), last = world - 1;
    const int64_t M = micro_batches, block = static_cast<int64_t>(prompts.size()) / M;
    const int64_t ngb = engine.dims().num_gpu_batches;
    GenerationResult result;
    engine.begin_run(prompts, options, result);
    const int64_t G = result.gen_len;
    const bool stops = options.stop_token >= 0 || static_cast<bool>(options.stop_when);
    // Whether every sequence of micro-batch t has stopped, by the tokens this rank has so far.
    auto stopped = [&](int64_t t) { return stops && result.all_stopped(t * block, block); };
    auto tokens_tag = [&](int64_t i, int64_t t) { return kTokensTag | static_cast<uint64_t>(i * M + t); };
    // The tokens of (i, t) and the stop flags after them: block int32 ids, then block bytes.
    const uint64_t tokens_bytes = static_cast<uint64_t>(block) * (sizeof(int32_t) + 1);
    std::vector<std::byte> incoming(tokens_bytes);
    auto receive_tokens = [&](int64_t i, int64_t t) {
        links.control.recv(last, incoming.data(), tokens_bytes, tokens_tag(i, t));
        for (int64_t b = 0; b < block; ++b) {
            const int64_t n = t * block + b;
            std::memcpy(&result.tokens[n * G + i], incoming.data() + b * sizeof(int32_t), sizeof(int32_t));
            result.stopped[n] = static_cast<uint8_t>(incoming[block * sizeof(int32_t) + b]);
        }
    };
    ControlSender sender(links);
    using Clock = std::chrono::steady_clock;
    std::vector<double> step_seconds;
    try {
        auto mark = Clock::now();
        for (int64_t i = 0; i < G; ++i) {
            for (int64_t t = 0; t < M; ++t) {
                // The tokens of step i - 1, unless this micro-batch had stopped before it (then none were sent).
                if (rank != last && i > 0 && !stopped(t)) receive_tokens(i - 1, t);
                if (stopped(t)) continue;
                const auto step = static_cast<int32_t>(i);
                if (rank > 0)
                    for (int64_t kk = 0; kk < ngb; ++kk) {
                        links.data.recv(rank - 1, engine.stage_message().data(), engine.stage_message_bytes(step),
                                        static_cast<uint64_t>((i * M + t) * ngb + kk));
                        engine.import_hidden(step, t * ngb + kk);
                    }
                engine.run_window(scheduler, step, 1, t);
                if (rank < last) {
                    for (int64_t kk = 0; kk < ngb; ++kk) {
                        engine.export_hidden(step, t * ngb + kk);
                        links.data.send(rank + 1, engine.stage_message().data(), engine.stage_message_bytes(step),
                                        static_cast<uint64_t>((i * M + t) * ngb + kk));
                    }
                } else if (world > 1) {
                    std::vector<std::byte> out(tokens_bytes);
                    for (int64_t b = 0; b < block; ++b) {
                        const int64_t n = t * block + b;
                        std::memcpy(out.data() + b * sizeof(int32_t), &result.tokens[n * G + i], sizeof(int32_t));
                        out[block * sizeof(int32_t) + b] = static_cast<std::byte>(result.stopped[n]);
                    }
                    for (int r = 0; r < last; ++r) sender.post(r, tokens_tag(i, t), out);
                }
            }
            const auto now = Clock::now();
            step_seconds.push_back(std::chrono::duration<double>(now - mark).count());
            mark = now;
            if (progress && (i == 0 || i + 1 == G || i % std::max<int64_t>(1, G / 8) == 0))
                progress(i == 0 ? "prefill of " + std::to_string(M) +
                                      " micro-batches: " + std::to_string(step_seconds.back()).substr(0, 5) + " s"
                                : "decode step " + std::to_string(i) + "/" + std::to_string(G - 1) + ": " +
                                      std::to_string(step_seconds.back()).substr(0, 5) + " s");
        }
        if (rank != last)  // the last step's tokens
            for (int64_t t = 0; t < M; ++t)
                if (!stopped(t)) receive_tokens(G - 1, t);
        sender.drain();
    } catch (...) {
        // A send that failed before this is the cause; one that fails after it, of the aborts below, is not.
        const bool sender_first = sender.failed();
        links.data.abort();
        links.control.abort();
        engine.end_run();
        if (sender_first) sender.rethrow_failure();
        throw;
    }
    engine.end_run();
    result.step_seconds = std::move(step_seconds);  // not the engine's, per window
    return result;
}

}  // namespace flexrt
