// The example's own claim, checked: a byte flipped on the disk behind storage.crc32c's back makes the read of
// its block fail with BAD_DATA, naming the file and the block, while the other blocks still read. Drives the
// plugin through its C entry point, as flexrt does. Usage: crc32c_corruption_test <plugin.so> <scratch dir>
#include <flexrt/sdk.hpp>
#include <flexrt/storage.hpp>

#include <dlfcn.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

namespace {

std::string last_error;
void on_log(void*, flexrt_log_level level, const char* message) {
    if (level == FLEXRT_LOG_LEVEL_ERROR) last_error = message;
}

int fail(const std::string& what) {
    std::fprintf(stderr, "crc32c_corruption_test: FAIL: %s\n", what.c_str());
    return 1;
}

flexrt_status io(flexrt::IStorage& st, flexrt_io_op op, uint64_t file, uint64_t offset, uint64_t bytes, void* buf) {
    flexrt_io_request r{};
    r.struct_size = sizeof r;
    r.op = op, r.file = file, r.offset = offset, r.bytes = bytes, r.buffer = buf;
    flexrt_io_request* rp = &r;
    if (st.submit(&rp, 1) != FLEXRT_STATUS_OK || st.wait(&rp, 1) != FLEXRT_STATUS_OK) return FLEXRT_STATUS_INTERNAL;
    return r.status;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 3) return fail("usage: crc32c_corruption_test <plugin.so> <scratch dir>");
    std::unique_ptr<void, int (*)(void*)> lib(::dlopen(argv[1], RTLD_NOW | RTLD_LOCAL), &::dlclose);
    if (!lib) return fail(std::string("dlopen: ") + ::dlerror());
    auto list = reinterpret_cast<flexrt_plugin_list_fn>(::dlsym(lib.get(), FLEXRT_PLUGIN_ENTRY));
    uint32_t count = 0;
    const flexrt_plugin_desc* desc = list ? list(&count) : nullptr;
    if (!desc || count != 1 || desc->abi_major != FLEXRT_ABI_MAJOR) return fail("not a flexrt plugin of this ABI");
    const flexrt_host host{sizeof(flexrt_host), FLEXRT_ABI_MAJOR, FLEXRT_ABI_MINOR, nullptr, &on_log};
    void* obj = nullptr;
    if (desc->create(&host, nullptr, 0, &obj) != FLEXRT_STATUS_OK) return fail("create: " + last_error);
    const auto release = [](flexrt::IStorage* p) { p->release(); };
    std::unique_ptr<flexrt::IStorage, decltype(release)> st(static_cast<flexrt::IStorage*>(obj), release);

    const std::string path = std::string(argv[2]) + "/victim.bin";
    constexpr uint64_t kBytes = 3 * 4096;
    std::unique_ptr<unsigned char, decltype(&std::free)> mem(static_cast<unsigned char*>(std::aligned_alloc(4096, kBytes)), &std::free);
    unsigned char* buf = mem.get();
    for (uint64_t i = 0; i < kBytes; ++i) buf[i] = static_cast<unsigned char>(i * 7 + 1);
    uint64_t h = 0;
    int rc = 0;
    if (st->open(path.c_str(), FLEXRT_OPEN_READ | FLEXRT_OPEN_WRITE | FLEXRT_OPEN_CREATE, kBytes, &h) != FLEXRT_STATUS_OK ||
        io(*st, FLEXRT_IO_OP_WRITE, h, 0, kBytes, buf) != FLEXRT_STATUS_OK || st->close(h) != FLEXRT_STATUS_OK) {
        rc = fail("writing the file: " + last_error);
    } else {
        // One byte of block 1 flipped behind the plugin's back.
        const int fd = ::open(path.c_str(), O_WRONLY);
        const unsigned char flipped = static_cast<unsigned char>(buf[4096 + 100] ^ 0x10);
        if (fd < 0 || ::pwrite(fd, &flipped, 1, 4096 + 100) != 1) rc = fail("flipping a byte");
        if (fd >= 0) ::close(fd);
        if (st->open(path.c_str(), FLEXRT_OPEN_READ, 0, &h) != FLEXRT_STATUS_OK) return fail("reopening: " + last_error);
        if (io(*st, FLEXRT_IO_OP_READ, h, 0, 4096, buf) != FLEXRT_STATUS_OK) rc = fail("block 0, untouched, failed: " + last_error);
        last_error.clear();
        const flexrt_status s = io(*st, FLEXRT_IO_OP_READ, h, 0, kBytes, buf);
        if (s != FLEXRT_STATUS_BAD_DATA) rc = fail(std::string("reading the flipped block returned ") + flexrt_status_name(s));
        if (last_error.find("victim.bin: block 1 ") == std::string::npos) rc = fail("the error does not name the block: " + last_error);
        if (io(*st, FLEXRT_IO_OP_READ, h, 8192, 4096, buf) != FLEXRT_STATUS_OK) rc = fail("block 2, untouched, failed: " + last_error);
        st->close(h);
        if (rc == 0) std::printf("crc32c_corruption_test: a flipped byte was caught: %s\n", last_error.c_str());
    }
    st->remove(path.c_str());
    return rc;
}
