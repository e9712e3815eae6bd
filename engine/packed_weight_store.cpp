#include "packed_weight_store.hpp"

#include "text/whole_file.hpp"

#include <flexrt/status.hpp>

#include <fstream>
#include <vector>

namespace flexrt {
namespace {

constexpr char kMagic[8] = {'F', 'L', 'X', 'R', 'T', 'G', '4', '\0'};
constexpr uint32_t kVersion = 1;

// The header as a byte string: magic, version, layout, identity length and text, payload size.
std::string header(const ops::Group4Layout& L, const std::string& identity, uint64_t payload) {
    std::string h(kMagic, sizeof kMagic);
    auto put = [&](auto v) { h.append(reinterpret_cast<const char*>(&v), sizeof v); };
    put(kVersion);
    for (int64_t v : {L.outer, L.dim, L.inner, L.group_size, static_cast<int64_t>(L.symmetric), L.slab_bytes}) put(v);
    put(static_cast<uint64_t>(identity.size()));
    h += identity;
    put(payload);
    return h;
}

}  // namespace

PackedWeightStore::PackedWeightStore(std::filesystem::path dir) : dir_(std::move(dir)) {
    std::error_code ec;
    std::filesystem::create_directories(dir_, ec);
    if (ec || !std::filesystem::is_directory(dir_))
        FLEXRT_THROW(FLEXRT_STATUS_IO_ERROR, "compress.store_dir '" + dir_.string() + "': cannot create the directory" +
                                                 (ec ? ": " + ec.message() : std::string()));
}

bool PackedWeightStore::load(const std::string& tensor, const ops::Group4Layout& L, const std::string& identity, std::byte* out) {
    std::ifstream f(file(tensor), std::ios::binary);
    if (!f) return false;
    const std::string want = header(L, identity, L.bytes());
    std::string have(want.size(), '\0');
    if (!f.read(have.data(), static_cast<std::streamsize>(have.size())) || have != want) return false;
    if (!f.read(reinterpret_cast<char*>(out), static_cast<std::streamsize>(L.bytes()))) return false;  // truncated
    ++loaded_;
    return true;
}

void PackedWeightStore::save(const std::string& tensor, const ops::Group4Layout& L, const std::string& identity, const std::byte* data) {
    text::write_whole_file(file(tensor), "compressed weights of " + tensor, [&](std::ostream& f) {
        const std::string h = header(L, identity, L.bytes());
        f.write(h.data(), static_cast<std::streamsize>(h.size()));
        f.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(L.bytes()));
    });
    ++saved_;
}

}  // namespace flexrt
