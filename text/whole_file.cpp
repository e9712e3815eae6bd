#include "whole_file.hpp"

#include <flexrt/status.hpp>

#include <cerrno>
#include <fstream>
#include <sstream>

namespace flexrt::text {

std::string read_whole_file(const std::filesystem::path& path, const std::string& what) {
    std::ifstream in(path, std::ios::binary);
    if (!in)
        FLEXRT_THROW(status_from_errno(errno) == FLEXRT_STATUS_IO_ERROR ? FLEXRT_STATUS_NOT_FOUND : status_from_errno(errno),
                     what + " " + path.string() + " cannot be read: " + errno_text(errno));
    std::ostringstream ss;
    ss << in.rdbuf();
    if (in.bad()) FLEXRT_THROW(FLEXRT_STATUS_IO_ERROR, "reading " + what + " " + path.string() + " failed: " + errno_text(errno));
    return ss.str();
}

void write_whole_file(const std::filesystem::path& path, const std::string& what, const std::function<void(std::ostream&)>& write) {
    const std::filesystem::path partial = path.string() + ".partial";
    std::error_code ec;
    auto fail = [&](int err, const std::string& doing) {
        std::filesystem::remove(partial, ec);
        FLEXRT_THROW(err == ENOSPC ? FLEXRT_STATUS_NO_SPACE : FLEXRT_STATUS_IO_ERROR, what + ": " + doing + ": " + errno_text(err));
    };
    {
        std::ofstream out(partial, std::ios::binary | std::ios::trunc);
        if (!out) fail(errno, "cannot write " + partial.string());
        try {
            write(out);
        } catch (...) {
            out.close();
            std::filesystem::remove(partial, ec);
            throw;
        }
        out.flush();
        if (!out) fail(errno, "writing " + partial.string() + " failed");
    }
    std::filesystem::rename(partial, path, ec);
    if (ec) fail(ec.value(), "cannot rename " + partial.string() + " to " + path.string());
}

}  // namespace flexrt::text
