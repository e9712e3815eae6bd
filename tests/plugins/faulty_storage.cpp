// storage.faulty: an in-memory storage back-end that fails on purpose, for fault-handling tests.
// Options: fail_create_after (files created successfully before creation fails with ENOSPC),
// fail_write_after (bytes written successfully before writes fail with EIO). -1 = never.
#include <flexrt/sdk.hpp>
#include <flexrt/storage.hpp>

#include <cerrno>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace {

class FaultyStorage final : public flexrt::IStorage {
public:
    FaultyStorage(const flexrt_host* host, int64_t fail_create_after, int64_t fail_write_after)
        : host_(host), creates_left_(fail_create_after), write_budget_(fail_write_after) {}
    uint64_t required_alignment() const noexcept override { return 1; }
    flexrt_status open(const char* path, uint32_t flags, uint64_t size, uint64_t* file) noexcept override {
        return flexrt::sdk::guard(host_, [&] {
            std::lock_guard lock(m_);
            if (flags & FLEXRT_OPEN_CREATE) {
                if (creates_left_ == 0)
                    FLEXRT_THROW(FLEXRT_STATUS_NO_SPACE, std::string("creating ") + path + ": " + flexrt::errno_text(ENOSPC));
                if (creates_left_ > 0) --creates_left_;
                files_[next_] = std::vector<std::byte>(size);
            } else {
                FLEXRT_THROW(FLEXRT_STATUS_NOT_FOUND, std::string(path) + ": the faulty plugin only creates files");
            }
            *file = next_++;
            return FLEXRT_STATUS_OK;
        });
    }
    flexrt_status file_size(uint64_t file, uint64_t* bytes) noexcept override {
        std::lock_guard lock(m_);
        *bytes = files_.at(file).size();
        return FLEXRT_STATUS_OK;
    }
    flexrt_status flush(uint64_t) noexcept override { return FLEXRT_STATUS_OK; }
    flexrt_status close(uint64_t file) noexcept override {
        std::lock_guard lock(m_);
        files_.erase(file);
        return FLEXRT_STATUS_OK;
    }
    flexrt_status remove(const char*) noexcept override { return FLEXRT_STATUS_OK; }
    flexrt_status rename(const char*, const char*) noexcept override { return FLEXRT_STATUS_OK; }
    flexrt_status submit(flexrt_io_request* const* reqs, uint32_t n) noexcept override {
        std::lock_guard lock(m_);
        for (uint32_t i = 0; i < n; ++i) {
            flexrt_io_request& r = *reqs[i];
            auto& f = files_.at(r.file);
            r.bytes_done = 0;
            r.sys_errno = 0;
            if (r.offset + r.bytes > f.size()) {
                r.status = FLEXRT_STATUS_IO_ERROR;
                continue;
            }
            if (r.op == FLEXRT_IO_OP_WRITE) {
                if (write_budget_ >= 0 && static_cast<int64_t>(r.bytes) > write_budget_) {
                    r.status = FLEXRT_STATUS_IO_ERROR;
                    r.sys_errno = EIO;
                    continue;
                }
                if (write_budget_ >= 0) write_budget_ -= static_cast<int64_t>(r.bytes);
                std::memcpy(f.data() + r.offset, r.buffer, r.bytes);
            } else {
                std::memcpy(r.buffer, f.data() + r.offset, r.bytes);
            }
            r.bytes_done = r.bytes;
            r.status = FLEXRT_STATUS_OK;
        }
        return FLEXRT_STATUS_OK;
    }
    flexrt_status wait(flexrt_io_request* const*, uint32_t) noexcept override { return FLEXRT_STATUS_OK; }
    void release() noexcept override { delete this; }

private:
    const flexrt_host* host_;
    std::mutex m_;
    std::map<uint64_t, std::vector<std::byte>> files_;
    uint64_t next_ = 1;
    int64_t creates_left_, write_budget_;
};

const flexrt_option_desc kOptions[] = {
    {"fail_create_after", FLEXRT_FIELD_TYPE_INT, "-1", "files created before creation fails with ENOSPC", -1, 1e9},
    {"fail_write_after", FLEXRT_FIELD_TYPE_INT, "-1", "bytes written before writes fail with EIO", -1, 1e15},
};

flexrt_status create(const flexrt_host* host, const flexrt_field* f, uint32_t n, void** out) {
    return flexrt::sdk::guard(host, [&] {
        *out = static_cast<flexrt::IStorage*>(new FaultyStorage(host, flexrt::sdk::get<int64_t>(f, n, "fail_create_after"),
                                                                flexrt::sdk::get<int64_t>(f, n, "fail_write_after")));
        return FLEXRT_STATUS_OK;
    });
}

}  // namespace

FLEXRT_PLUGINS(flexrt::sdk::describe(FLEXRT_PLUGIN_KIND_STORAGE, "faulty", "0.1.0", "fails on purpose (tests)", kOptions, 2, &create))
