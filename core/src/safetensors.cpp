#include "safetensors.hpp"

#include "text/json.hpp"

#include <flexrt/status.hpp>

#include <fstream>

namespace flexrt {

uint64_t safetensors_dtype_bytes(const std::string& d) {
    if (d == "F64" || d == "I64" || d == "U64") return 8;
    if (d == "F32" || d == "I32" || d == "U32") return 4;
    if (d == "F16" || d == "BF16" || d == "I16" || d == "U16") return 2;
    if (d == "I8" || d == "U8" || d == "BOOL") return 1;
    return 0;
}

SafetensorsFile read_safetensors_header(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) FLEXRT_THROW(FLEXRT_STATUS_NOT_FOUND, "cannot open the safetensors file " + path.string());
    SafetensorsFile f;
    f.path = path;
    std::error_code ec;
    f.file_bytes = std::filesystem::file_size(path, ec);
    const std::string where = "safetensors file " + path.string();
    auto bad = [&](const std::string& what) { FLEXRT_THROW(FLEXRT_STATUS_BAD_DATA, where + ": " + what); };
    unsigned char len_bytes[8];
    if (ec || f.file_bytes < 8 || !in.read(reinterpret_cast<char*>(len_bytes), 8)) bad("shorter than its 8-byte header length");
    uint64_t header_len = 0;
    for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | len_bytes[i];
    if (header_len > f.file_bytes - 8 || header_len > (100ull << 20))
        bad("a header of " + std::to_string(header_len) + " bytes, more than the file's " + std::to_string(f.file_bytes - 8) +
            " after the length (truncated, or not safetensors)");
    std::string header(header_len, '\0');
    if (!in.read(header.data(), static_cast<std::streamsize>(header_len))) bad("the header could not be read");
    const text::JsonValue doc = text::parse_json(header, where + " header");
    if (doc.type != text::JsonValue::Type::object) bad("the header is not a JSON object");
    const uint64_t data_start = 8 + header_len, data_bytes = f.file_bytes - data_start;
    for (const auto& [name, v] : doc.members) {
        if (name == "__metadata__") continue;
        const std::string t = where + ", tensor " + name + ": ";
        const text::JsonValue* dtype = v.find("dtype");
        const text::JsonValue* shape = v.find("shape");
        const text::JsonValue* offsets = v.find("data_offsets");
        if (!dtype || dtype->type != text::JsonValue::Type::string || !shape || shape->type != text::JsonValue::Type::array || !offsets ||
            offsets->type != text::JsonValue::Type::array || offsets->items.size() != 2)
            FLEXRT_THROW(FLEXRT_STATUS_BAD_DATA, t + "expected \"dtype\", \"shape\" and two \"data_offsets\"");
        SafetensorsTensor s;
        s.dtype = dtype->text;
        const uint64_t item = safetensors_dtype_bytes(s.dtype);
        if (!item) FLEXRT_THROW(FLEXRT_STATUS_BAD_DATA, t + "unknown dtype " + s.dtype);
        uint64_t elements = 1;
        auto whole = [&](const text::JsonValue& x, const char* what) {
            if (x.type != text::JsonValue::Type::number || x.text.find_first_not_of("0123456789") != std::string::npos ||
                x.text.size() > 18)
                FLEXRT_THROW(FLEXRT_STATUS_BAD_DATA, t + what + " " + x.text + " is not a non-negative integer");
            return std::stoull(x.text);
        };
        for (const auto& d : shape->items) {
            const uint64_t n = whole(d, "a dimension");
            s.shape.push_back(static_cast<int64_t>(n));
            elements *= n;
        }
        const uint64_t begin = whole(offsets->items[0], "an offset"), end = whole(offsets->items[1], "an offset");
        if (begin > end || end > data_bytes)
            FLEXRT_THROW(FLEXRT_STATUS_BAD_DATA, t + "bytes [" + std::to_string(begin) + ", " + std::to_string(end) +
                                                     ") of data, but the file holds " + std::to_string(data_bytes) + " (truncated?)");
        if (end - begin != elements * item)
            FLEXRT_THROW(FLEXRT_STATUS_BAD_DATA, t + std::to_string(end - begin) + " bytes for " + std::to_string(elements) + " " +
                                                     s.dtype + " values (" + std::to_string(elements * item) + " expected)");
        s.offset = data_start + begin, s.bytes = end - begin;
        f.tensors.emplace(name, std::move(s));
    }
    return f;
}

}  // namespace flexrt
