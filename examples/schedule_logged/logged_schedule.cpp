// schedule.logged: FlexLLMGen's plain order (load weight, cache, hidden; compute; store cache, hidden: each
// layer of each batch in turn, no overlap), writing every primitive it calls, one a line, to the file named
// by its option `log`. An example of a plugin built outside flexrt's tree against the installed SDK: one
// exported symbol (FLEXRT_PLUGINS), an option declared with its type and default, errors as status codes.
#include <flexrt/scheduler.hpp>
#include <flexrt/sdk.hpp>

#include <cstdio>
#include <memory>
#include <string>

namespace {

class LoggedSchedule final : public flexrt::IScheduler {
public:
    LoggedSchedule(const flexrt_host* host, std::string path) : host_(host), path_(std::move(path)) {}

    flexrt_status run(flexrt::IExecutor* ex) noexcept override {
        return flexrt::sdk::guard(host_, [&] {
            std::unique_ptr<std::FILE, int (*)(std::FILE*)> log(std::fopen(path_.c_str(), "w"), &std::fclose);
            if (!log) FLEXRT_THROW(FLEXRT_STATUS_IO_ERROR, "schedule.logged: cannot write its log " + path_);
            const flexrt_schedule_dims d = ex->dims();
            const auto n = static_cast<int32_t>(d.gen_len), layers = static_cast<int32_t>(d.num_layers),
                       batches = static_cast<int32_t>(d.num_gpu_batches);
            // Each call logged, then made; the first status that is not OK ends the run unchanged.
            auto call = [&](const char* what, flexrt_status (flexrt::IExecutor::*fn)(int32_t, int32_t, int32_t) noexcept, int32_t i,
                            int32_t j, int32_t k) {
                std::fprintf(log.get(), "%s %d %d %d\n", what, i, j, k);
                return (ex->*fn)(i, j, k);
            };
            for (int32_t i = 0; i < n; ++i) {
                if (flexrt_status s = ex->begin_step(i); s != FLEXRT_STATUS_OK) return s;
                for (int32_t j = 0; j < layers; ++j)
                    for (int32_t k = 0; k < batches; ++k) {
                        for (auto [what, fn] : {std::pair{"load_weight", &flexrt::IExecutor::load_weight},
                                                std::pair{"load_cache", &flexrt::IExecutor::load_cache},
                                                std::pair{"load_hidden", &flexrt::IExecutor::load_hidden},
                                                std::pair{"compute_layer", &flexrt::IExecutor::compute_layer},
                                                std::pair{"store_cache", &flexrt::IExecutor::store_cache},
                                                std::pair{"store_hidden", &flexrt::IExecutor::store_hidden}})
                            if (flexrt_status s = call(what, fn, i, j, k); s != FLEXRT_STATUS_OK) return s;
                        if (flexrt_status s = ex->sync(); s != FLEXRT_STATUS_OK) return s;
                    }
                int32_t stopped = 0;
                if (flexrt_status s = ex->end_step(i, &stopped); s != FLEXRT_STATUS_OK) return s;
                std::fprintf(log.get(), "end_step %d\n", i);
                if (stopped) break;
            }
            return FLEXRT_STATUS_OK;
        });
    }
    void release() noexcept override { delete this; }

private:
    const flexrt_host* host_;
    std::string path_;
};

const flexrt_option_desc kOptions[] = {
    {"log", FLEXRT_FIELD_TYPE_STRING, "\"flexrt-schedule.log\"", "file the primitives are written to, one a line", 1, 0},
};

flexrt_status create(const flexrt_host* host, const flexrt_field* fields, uint32_t n, void** out) {
    return flexrt::sdk::guard(host, [&] {
        *out = static_cast<flexrt::IScheduler*>(new LoggedSchedule(host, flexrt::sdk::get<std::string>(fields, n, "log")));
        return FLEXRT_STATUS_OK;
    });
}

}  // namespace

FLEXRT_PLUGINS(flexrt::sdk::describe(FLEXRT_PLUGIN_KIND_SCHEDULE, "logged", "0.1.0",
                                     "the plain order, every primitive written to a log file (an example plugin)", kOptions, 1, &create))
