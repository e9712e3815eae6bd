#include "npy.hpp"

#include "text/whole_file.hpp"

#include <flexrt/status.hpp>

#include <cstring>
#include <fstream>
#include <regex>

namespace flexrt {

namespace {
[[noreturn]] void bad(const std::string& name, const std::string& what) {
    FLEXRT_THROW(FLEXRT_STATUS_BAD_DATA, name + ": not a usable .npy file: " + what);
}

const char* descr_of(DType t) {
    switch (t) {
    case DType::f16: return "<f2";
    case DType::f32: return "<f4";
    case DType::f64: return "<f8";
    case DType::i32: return "<i4";
    case DType::i64: return "<i8";
    case DType::u8: return "|u1";
    }
    return "?";
}
}  // namespace

NpyHeader parse_npy_header(const void* bytes, uint64_t n, const std::string& name) {
    const auto* p = static_cast<const unsigned char*>(bytes);
    if (n < 10 || std::memcmp(p, "\x93NUMPY", 6) != 0) bad(name, "missing the \\x93NUMPY magic");
    const int major = p[6];
    uint64_t header_len = 0, prefix = 0;
    if (major == 1) {
        header_len = p[8] | (p[9] << 8);
        prefix = 10;
    } else if (major == 2 || major == 3) {
        if (n < 12) bad(name, "truncated header");
        header_len = p[8] | (p[9] << 8) | (uint64_t(p[10]) << 16) | (uint64_t(p[11]) << 24);
        prefix = 12;
    } else {
        bad(name, "unknown format version " + std::to_string(major));
    }
    if (prefix + header_len > n) bad(name, "header of " + std::to_string(header_len) + " bytes is truncated");
    std::string h(reinterpret_cast<const char*>(p + prefix), header_len);

    std::smatch m;
    if (!std::regex_search(h, m, std::regex(R"('descr'\s*:\s*'([^']*)')"))) bad(name, "no 'descr' in the header");
    const std::string descr = m[1];
    NpyHeader out;
    if (descr == "<f2")
        out.dtype = DType::f16;
    else if (descr == "<f4")
        out.dtype = DType::f32;
    else if (descr == "<f8")
        out.dtype = DType::f64;
    else if (descr == "<i4")
        out.dtype = DType::i32;
    else if (descr == "<i8")
        out.dtype = DType::i64;
    else if (descr == "|u1" || descr == "<u1")
        out.dtype = DType::u8;
    else
        bad(name, "unsupported dtype '" + descr + "'");
    if (std::regex_search(h, m, std::regex(R"('fortran_order'\s*:\s*True)"))) bad(name, "Fortran order is not supported");
    if (!std::regex_search(h, m, std::regex(R"('shape'\s*:\s*\(([^)]*)\))"))) bad(name, "no 'shape' in the header");
    std::string dims = m[1];
    std::regex num(R"(\d+)");
    for (auto it = std::sregex_iterator(dims.begin(), dims.end(), num); it != std::sregex_iterator(); ++it)
        out.shape.push_back(std::stoll(it->str()));
    out.data_offset = prefix + header_len;
    return out;
}

void write_npy(const std::string& path, DType dtype, const Shape& shape, const void* data) {
    std::string dims;
    for (size_t i = 0; i < shape.size(); ++i) dims += std::to_string(shape[i]) + (shape.size() == 1 || i + 1 < shape.size() ? "," : "");
    std::string h = "{'descr': '" + std::string(descr_of(dtype)) + "', 'fortran_order': False, 'shape': (" + dims + "), }";
    while ((10 + h.size() + 1) % 64) h += ' ';
    h += '\n';
    std::ofstream out(path, std::ios::binary);
    if (!out) FLEXRT_THROW(FLEXRT_STATUS_IO_ERROR, "cannot create " + path + ": " + errno_text(errno));
    unsigned char pre[10] = {
        0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, static_cast<unsigned char>(h.size() & 0xff), static_cast<unsigned char>(h.size() >> 8)};
    out.write(reinterpret_cast<const char*>(pre), 10);
    out.write(h.data(), static_cast<std::streamsize>(h.size()));
    out.write(static_cast<const char*>(data), static_cast<std::streamsize>(numel(shape) * dtype_size(dtype)));
    // The stream's last buffered bytes are written here, not in its destructor, where a full disk would go
    // unnoticed and a short file would pass as whole.
    out.close();
    if (!out) {
        const int err = errno;
        FLEXRT_THROW(status_from_errno(err), "cannot write " + path + ": " + errno_text(err));
    }
}

std::string read_npy(const std::string& path, DType expect, Shape* shape) {
    const std::string all = text::read_whole_file(path, "weight file");
    NpyHeader h = parse_npy_header(all.data(), all.size(), path);
    if (h.dtype != expect)
        FLEXRT_THROW(FLEXRT_STATUS_BAD_DATA, path + ": dtype " + dtype_name(h.dtype) + ", expected " + dtype_name(expect));
    if (all.size() < h.data_offset + h.data_bytes())
        FLEXRT_THROW(FLEXRT_STATUS_BAD_DATA, path + ": truncated (" + std::to_string(all.size()) + " bytes, needs " +
                                                 std::to_string(h.data_offset + h.data_bytes()) + ")");
    if (shape) *shape = h.shape;
    return all.substr(h.data_offset, h.data_bytes());
}

}  // namespace flexrt
