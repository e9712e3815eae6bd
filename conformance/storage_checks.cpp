// The storage conformance checks: round trips of random data at aligned and unaligned sizes and offsets
// (through the core, which bounces what the plugin cannot take), compressed blocks, files that are not a
// multiple of the alignment, reads past the end, concurrent and many small or few large requests, rename,
// and the faults a plugin must report as statuses (a missing file, a bad directory, an unknown or closed
// handle) rather than crash on.
#include "check.hpp"

#include "core/src/device.hpp"
#include "core/src/transfer.hpp"
#include "ops/f16.hpp"
#include "ops/group4.hpp"

#include <flexrt/storage.hpp>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <optional>
#include <random>
#include <thread>

namespace flexrt::conformance {
namespace {

namespace fs = std::filesystem;

std::vector<std::byte> random_bytes(size_t n, unsigned seed) {
    std::vector<std::byte> v(n);
    std::mt19937_64 rng(seed);
    for (size_t i = 0; i < n; i += 8) {
        const uint64_t x = rng();
        std::memcpy(v.data() + i, &x, std::min<size_t>(8, n - i));
    }
    return v;
}

using AlignedBytes = std::unique_ptr<std::byte, decltype(&std::free)>;
AlignedBytes aligned_bytes(uint64_t align, uint64_t bytes) {
    return AlignedBytes(static_cast<std::byte*>(std::aligned_alloc(align, (bytes + align - 1) / align * align)), &std::free);
}

// The plugin's object and a disk tier on it, in the check's directory.
struct Disk {
    Disk(const Subject& s, const fs::path& dir) : storage(create<IStorage>(s, "storage")), device(*storage, dir / "offload") {}
    PluginPtr<IStorage> storage;
    DiskDevice device;
    uint64_t alignment() const { return std::max<uint64_t>(1, storage->required_alignment()); }
};

DiskBuffer& file_of(std::unique_ptr<Buffer>& b) { return static_cast<DiskBuffer&>(*b); }

void write_at(DiskBuffer& f, uint64_t offset, const std::vector<std::byte>& data) {
    const Status s = disk_write(f, offset, data.data(), data.size());
    expect(s.is_ok(), "writing " + std::to_string(data.size()) + " bytes at offset " + std::to_string(offset) + ": " + s.message());
}
std::vector<std::byte> read_at(DiskBuffer& f, uint64_t offset, uint64_t bytes) {
    std::vector<std::byte> back(bytes);
    const Status s = disk_read(f, offset, back.data(), bytes);
    expect(s.is_ok(), "reading " + std::to_string(bytes) + " bytes at offset " + std::to_string(offset) + ": " + s.message());
    return back;
}
// Writes `data` at `offset` through the core and reads it back from the same place.
void round_trip(DiskBuffer& f, uint64_t offset, const std::vector<std::byte>& data) {
    write_at(f, offset, data);
    expect(read_at(f, offset, data.size()) == data,
           std::to_string(data.size()) + " bytes written at offset " + std::to_string(offset) + " read back different");
}

// One request straight to the plugin (no bouncing), waited for.
flexrt_io_request direct(IStorage& st, flexrt_io_op op, uint64_t file, uint64_t offset, uint64_t bytes, void* buf) {
    flexrt_io_request r{};
    r.struct_size = sizeof r;
    r.op = op, r.file = file, r.offset = offset, r.bytes = bytes, r.buffer = buf;
    flexrt_io_request* rp = &r;
    expect_ok(st.submit(&rp, 1), "submit");
    expect_ok(st.wait(&rp, 1), "wait");
    return r;
}

void round_trip_aligned_and_unaligned(const Subject& s, const fs::path& dir, std::string&) {
    Disk d(s, dir);
    auto file = d.device.allocate(3 << 20, "rt");
    const uint64_t align = d.alignment();
    unsigned seed = 1;
    for (uint64_t offset : {uint64_t{0}, align, uint64_t{1}, uint64_t{4095}, uint64_t{4097}, uint64_t{1} << 20})
        for (uint64_t size : {uint64_t{1}, uint64_t{511}, align, uint64_t{4096} * 3, uint64_t{100001}, uint64_t{1} << 20})
            round_trip(file_of(file), offset, random_bytes(size, seed++));
    // Neighbours of an unaligned write keep their bytes (read-modify-write does not clobber them).
    auto a = random_bytes(1000, 90), b = random_bytes(1000, 91);
    round_trip(file_of(file), 10000, a);
    round_trip(file_of(file), 11000, b);
    const auto both = read_at(file_of(file), 10000, 2000);
    expect(std::equal(a.begin(), a.end(), both.begin()) && std::equal(b.begin(), b.end(), both.begin() + 1000),
           "two adjacent unaligned writes: the second clobbered the first");
}

// Compressed tensors (group4 blocks: codes, then fp16 scale/min pairs) go to disk and back as bytes, at
// aligned and unaligned offsets, and dequantize to exactly what they dequantized to before.
void compressed_blocks_round_trip(const Subject& s, const fs::path& dir, std::string&) {
    Disk d(s, dir);
    auto file = d.device.allocate(4 << 20, "compressed");
    uint64_t offset = 0;
    unsigned seed = 40;
    for (const std::vector<int64_t>& shape : {std::vector<int64_t>{300, 96}, std::vector<int64_t>{7, 7168}, std::vector<int64_t>{1000}}) {
        const auto layout = ops::Group4Layout::of(shape, 0, 64, false);
        std::vector<uint16_t> x(static_cast<size_t>(layout.elements()));
        std::mt19937 rng(seed++);
        std::uniform_real_distribution<float> u(-1.0f, 1.0f);
        for (auto& v : x) v = ops::float_to_half(u(rng));
        std::vector<std::byte> packed(layout.bytes());
        ops::quantize_group4(x.data(), layout, reinterpret_cast<uint8_t*>(packed.data()));
        std::vector<uint16_t> want(x.size()), got(x.size());
        ops::dequantize_group4(reinterpret_cast<const uint8_t*>(packed.data()), layout, want.data());
        round_trip(file_of(file), offset, packed);
        const auto back = read_at(file_of(file), offset, packed.size());
        ops::dequantize_group4(reinterpret_cast<const uint8_t*>(back.data()), layout, got.data());
        expect(got == want, "a compressed block at offset " + std::to_string(offset) + " dequantizes differently after the round trip");
        offset += packed.size() + 13;  // the next one unaligned
    }
}

void file_not_a_multiple_of_the_alignment(const Subject& s, const fs::path& dir, std::string&) {
    Disk d(s, dir);
    const uint64_t size = 10000 + 7;
    auto file = d.device.allocate(size, "odd");
    uint64_t reported = 0;
    expect_ok(d.storage->file_size(file_of(file).file(), &reported), "file_size");
    expect(reported == size, "file_size reports " + std::to_string(reported) + " bytes for a file created with " + std::to_string(size) +
                                 " (the true length, whatever the padding on disk)");
    const uint64_t align = d.alignment();
    expect((align & (align - 1)) == 0, "required_alignment " + std::to_string(align) + " is not a power of two");
    round_trip(file_of(file), 0, random_bytes(size, 5));
    round_trip(file_of(file), size - 3, random_bytes(3, 6));  // the last bytes, inside a partial block
}

void existing_file_read_to_its_end(const Subject& s, const fs::path& dir, std::string&) {
    Disk d(s, dir);
    const fs::path p = dir / "existing.bin";
    const auto data = random_bytes(12345, 7);
    std::ofstream(p, std::ios::binary).write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size()));
    auto file = d.device.open_existing(p);
    expect(file->bytes() == data.size(), "an existing file of 12345 bytes opens as " + std::to_string(file->bytes()));
    expect(read_at(file_of(file), 0, data.size()) == data, "an existing file reads back different");
    const auto tail = read_at(file_of(file), 12300, 45);
    expect(std::equal(tail.begin(), tail.end(), data.begin() + 12300), "the last 45 bytes of an existing file read back different");
    // A direct aligned read running past the end returns what exists, and completes OK.
    const uint64_t align = std::max<uint64_t>(4096, d.alignment());
    auto buf = aligned_bytes(align, 4 * align);
    const auto r = direct(*d.storage, FLEXRT_IO_OP_READ, file_of(file).file(), 8192, 8192, buf.get());
    expect(r.status == FLEXRT_STATUS_OK, std::string("a read past the end of the file completed ") + flexrt_status_name(r.status));
    expect(r.bytes_done == 12345u - 8192u, "a read past the end counted " + std::to_string(r.bytes_done) + " bytes, the file has " +
                                               std::to_string(12345u - 8192u) + " there");
    expect(std::memcmp(buf.get(), data.data() + 8192, 12345 - 8192) == 0, "a read past the end returned other bytes");
}

void concurrent_requests(const Subject& s, const fs::path& dir, std::string&) {
    Disk d(s, dir);
    auto file = d.device.allocate(8 << 20, "concurrent");
    std::atomic<int> failures{0};
    {
        std::vector<std::jthread> threads;
        for (int t = 0; t < 8; ++t)
            threads.emplace_back([&, t] {
                for (int round = 0; round < 4; ++round) {
                    const auto data = random_bytes((1 << 20) - 3 * t, 100 * t + round);  // unaligned sizes too
                    const uint64_t off = static_cast<uint64_t>(t) << 20;
                    std::vector<std::byte> back(data.size());
                    if (!disk_write(file_of(file), off, data.data(), data.size()).is_ok() ||
                        !disk_read(file_of(file), off, back.data(), back.size()).is_ok() || back != data)
                        ++failures;
                }
            });
    }
    expect(failures == 0, std::to_string(failures.load()) + " of 32 round trips from 8 threads at once failed or read back different");
}

void many_small_and_few_large_requests(const Subject& s, const fs::path& dir, std::string&) {
    Disk d(s, dir);
    const uint64_t align = std::max<uint64_t>(4096, d.alignment());
    auto file = d.device.allocate(48 << 20, "sizes");
    const auto small = random_bytes(1000 * align, 11);
    auto buf = aligned_bytes(align, small.size());
    std::memcpy(buf.get(), small.data(), small.size());
    // 1000 aligned requests of one block each, submitted together.
    std::vector<flexrt_io_request> reqs(1000);
    std::vector<flexrt_io_request*> ptrs;
    for (size_t i = 0; i < reqs.size(); ++i) {
        reqs[i] = {};
        reqs[i].struct_size = sizeof(flexrt_io_request);
        reqs[i].op = FLEXRT_IO_OP_WRITE;
        reqs[i].file = file_of(file).file();
        reqs[i].offset = i * align;
        reqs[i].bytes = align;
        reqs[i].buffer = buf.get() + i * align;
        ptrs.push_back(&reqs[i]);
    }
    expect_ok(d.storage->submit(ptrs.data(), 1000), "submit of 1000 requests");
    expect_ok(d.storage->wait(ptrs.data(), 1000), "wait for 1000 requests");
    for (size_t i = 0; i < reqs.size(); ++i)
        expect(reqs[i].status == FLEXRT_STATUS_OK && reqs[i].bytes_done == align, "request " + std::to_string(i) + " of 1000 completed " +
                                                                                      flexrt_status_name(reqs[i].status) + " with " +
                                                                                      std::to_string(reqs[i].bytes_done) + " bytes");
    expect(read_at(file_of(file), 0, small.size()) == small, "1000 one-block writes submitted together read back different");
    // Three large ones, and a large ragged one at an unaligned offset: a plugin that splits large requests
    // must cover the odd tail exactly.
    const auto large = random_bytes(48 << 20, 12);
    for (int i = 0; i < 3; ++i)
        round_trip(file_of(file), static_cast<uint64_t>(i) * (16 << 20),
                   std::vector<std::byte>(large.begin() + i * (16 << 20), large.begin() + (i + 1) * (16 << 20)));
    round_trip(file_of(file), 4097, std::vector<std::byte>(large.begin(), large.begin() + (9 << 20) + 12345));
}

void rename_makes_the_file_visible_under_its_name(const Subject& s, const fs::path& dir, std::string&) {
    auto st = create<IStorage>(s, "storage");
    const fs::path tmp = dir / "out.tmp", final_path = dir / "out.bin";
    uint64_t h = 0;
    expect_ok(st->open(tmp.c_str(), FLEXRT_OPEN_WRITE | FLEXRT_OPEN_CREATE, 5000, &h), "open(CREATE) " + tmp.string());
    expect_ok(st->flush(h), "flush");
    expect_ok(st->rename(tmp.c_str(), final_path.c_str()), "rename");
    expect_ok(st->close(h), "close");
    expect(!fs::exists(tmp), "after rename the temporary name " + tmp.string() + " still exists");
    expect(fs::exists(final_path), "after rename " + final_path.string() + " does not exist");
    expect_ok(st->remove(final_path.c_str()), "remove");
    expect(!fs::exists(final_path), "after remove " + final_path.string() + " still exists");
}

// Faults are statuses, never crashes: a missing file, a directory that is not there, a handle never opened
// or already closed.
void faults_are_statuses(const Subject& s, const fs::path& dir, std::string&) {
    auto st = create<IStorage>(s, "storage");
    uint64_t h = 0, size = 0;
    const fs::path missing = dir / "missing.bin";
    const flexrt_status m = st->open(missing.c_str(), FLEXRT_OPEN_READ, 0, &h);
    expect(m == FLEXRT_STATUS_NOT_FOUND, std::string("open of a missing file returned ") + flexrt_status_name(m) + ", expected NOT_FOUND");
    const fs::path no_dir = dir / "no" / "such" / "dir" / "f.bin";
    expect(st->open(no_dir.c_str(), FLEXRT_OPEN_WRITE | FLEXRT_OPEN_CREATE, 4096, &h) != FLEXRT_STATUS_OK,
           "open(CREATE) in a directory that does not exist returned OK");
    expect(st->file_size(987654, &size) != FLEXRT_STATUS_OK, "file_size of a handle never opened returned OK");
    const fs::path p = dir / "closed.bin";
    expect_ok(st->open(p.c_str(), FLEXRT_OPEN_READ | FLEXRT_OPEN_WRITE | FLEXRT_OPEN_CREATE, 4096, &h), "open(CREATE)");
    expect_ok(st->close(h), "close");
    expect(st->file_size(h, &size) != FLEXRT_STATUS_OK, "file_size of a closed handle returned OK");
    expect(st->remove(missing.c_str()) != FLEXRT_STATUS_OK, "remove of a missing file returned OK");
    take_last_plugin_error();
}

}  // namespace

const std::vector<CheckSpec>& storage_checks() {
    static const std::vector<CheckSpec> checks = {
        {"round_trip", "random bytes at aligned and unaligned offsets and sizes read back equal; neighbours untouched",
         &round_trip_aligned_and_unaligned},
        {"compressed_blocks", "group4 blocks round-trip and dequantize to the same values", &compressed_blocks_round_trip},
        {"odd_file_size", "a file of 10007 bytes: file_size is exact, its last bytes round-trip", &file_not_a_multiple_of_the_alignment},
        {"existing_file", "an existing file reads to its end; a read past the end completes OK with the bytes that exist",
         &existing_file_read_to_its_end},
        {"concurrent", "8 threads of round trips at once", &concurrent_requests},
        {"request_sizes", "1000 one-block requests in one submit; 16 MiB requests; a ragged 9 MiB one", &many_small_and_few_large_requests},
        {"rename", "rename replaces atomically; remove deletes", &rename_makes_the_file_visible_under_its_name},
        {"faults", "missing file NOT_FOUND; bad directory, unknown or closed handle: an error status, no crash", &faults_are_statuses},
    };
    return checks;
}

}  // namespace flexrt::conformance
