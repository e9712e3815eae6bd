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

}  // namespace flexrt::text
