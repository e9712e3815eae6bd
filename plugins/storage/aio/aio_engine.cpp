#include "aio_engine.hpp"

#include <fcntl.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <unistd.h>
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <system_error>

namespace flexrt::aio {

namespace {
int real_open(const char* path, int flags, mode_t mode) { return ::open(path, flags, mode); }
int real_setup(int n, io_context_t* ctx) { return io_setup(n, ctx); }
int real_destroy(io_context_t ctx) { return io_destroy(ctx); }
int real_submit(io_context_t ctx, long n, struct iocb** cbs) { return io_submit(ctx, n, cbs); }
int real_getevents(io_context_t ctx, long min_nr, long nr, struct io_event* ev, struct timespec* t) {
    return io_getevents(ctx, min_nr, nr, ev, t);
}
bool transient(int err) { return err == EAGAIN || err == EINTR; }
}  // namespace

Syscalls Syscalls::real() { return {&real_open, &real_setup, &real_destroy, &real_submit, &real_getevents}; }

std::string file_system_name(const std::string& path) {
    struct statfs s {};
    const std::string dir = path.substr(0, path.find_last_of('/') + 1);
    if (::statfs(path.c_str(), &s) != 0 && ::statfs(dir.empty() ? "." : dir.c_str(), &s) != 0) return "unknown";
    switch (static_cast<unsigned long>(s.f_type)) {
    case TMPFS_MAGIC: return "tmpfs";
    case EXT4_SUPER_MAGIC: return "ext4";
    case XFS_SUPER_MAGIC: return "xfs";
    case BTRFS_SUPER_MAGIC: return "btrfs";
    case NFS_SUPER_MAGIC: return "nfs";
    case OVERLAYFS_SUPER_MAGIC: return "overlayfs";
    case FUSE_SUPER_MAGIC: return "fuse";
    case 0x2fc12fc1: return "zfs";
    case 0xff534d42: return "cifs";
    case V9FS_MAGIC: return "9p";
    }
    char buf[32];
    std::snprintf(buf, sizeof buf, "type 0x%lx", static_cast<unsigned long>(s.f_type));
    return buf;
}

namespace {

// The logical block size of the device under `fd` (sysfs), or 0 when it cannot be found.
uint64_t logical_block_size(int fd) {
    struct stat st {};
    if (::fstat(fd, &st) != 0) return 0;
    const std::string base = "/sys/dev/block/" + std::to_string(major(st.st_dev)) + ":" + std::to_string(minor(st.st_dev));
    for (const char* rel : {"/queue/logical_block_size", "/../queue/logical_block_size"}) {  // a disk, or a partition
        std::ifstream in(base + rel);
        uint64_t v = 0;
        if (in >> v && v) return v;
    }
    return 0;
}

// 0: the file cannot do direct I/O after all (statx says so).
uint64_t dio_alignment(int fd) {
    struct statx sx {};
    if (::statx(fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &sx) == 0 && (sx.stx_mask & STATX_DIOALIGN))
        return sx.stx_dio_offset_align ? std::max<uint64_t>(sx.stx_dio_offset_align, sx.stx_dio_mem_align) : 0;
    if (uint64_t lbs = logical_block_size(fd)) return lbs;
    struct stat st {};
    return ::fstat(fd, &st) == 0 && st.st_blksize > 0 ? static_cast<uint64_t>(st.st_blksize) : 4096;
}

}  // namespace

OpenedFile open_file(const std::string& path, int flags, bool allow_buffered, std::string* refusal, const Syscalls& sys) {
    OpenedFile f;
    f.fd = sys.open(path.c_str(), flags | O_DIRECT, 0644);
    if (f.fd < 0 && errno != EINVAL) throw std::system_error(errno, std::generic_category(), "open " + path);
    f.align = f.fd >= 0 ? dio_alignment(f.fd) : 0;
    if (f.align) {
        f.direct = true;
        return f;
    }
    // O_DIRECT refused at open (EINVAL), or accepted by a file that cannot do it.
    if (f.fd >= 0) ::close(f.fd);
    const std::string why = "O_DIRECT is refused by " + path + " (a " + file_system_name(path) + " file system)";
    if (!allow_buffered) {
        if (flags & O_CREAT) ::unlink(path.c_str());
        throw std::system_error(EINVAL, std::generic_category(), why);
    }
    if (refusal) *refusal = why;
    f.fd = sys.open(path.c_str(), flags, 0644);
    if (f.fd < 0) throw std::system_error(errno, std::generic_category(), "open " + path);
    f.align = 1;
    return f;
}

Engine::Engine(const Options& options, const Syscalls& sys) : opt_(options), sys_(sys) {
    opt_.threads = std::max(1u, opt_.threads);
    opt_.queue_depth = std::max(1u, opt_.queue_depth);
    for (unsigned i = 0; i < opt_.threads; ++i) {
        auto w = std::make_unique<Worker>();
        int r;
        while ((r = sys_.setup(static_cast<int>(opt_.queue_depth), &w->ctx)) == -EAGAIN || r == -EINTR) {}
        if (r < 0) {
            stop_ = true;
            for (auto& done : workers_) {
                done->cv.notify_all();
                done->thread.join();
                sys_.destroy(done->ctx);
            }
            throw std::system_error(-r, std::generic_category(),
                                    "io_setup(" + std::to_string(opt_.queue_depth) + ") (see /proc/sys/fs/aio-max-nr)");
        }
        workers_.push_back(std::move(w));
        Worker& ref = *workers_.back();
        ref.thread = std::thread([this, &ref] { run(ref); });
    }
}

Engine::~Engine() {
    stop_ = true;
    for (auto& w : workers_) {
        { std::lock_guard lock(w->m); }
        w->cv.notify_all();
    }
    for (auto& w : workers_) {
        w->thread.join();
        sys_.destroy(w->ctx);
    }
}

void Engine::submit(Operation& op) {
    op.error_ = 0;
    op.done_ = 0;
    const uint64_t align = std::max<uint64_t>(1, op.align);
    const uint64_t block = std::max(align, opt_.block_size / align * align);
    const uint64_t n = op.bytes ? (op.bytes + block - 1) / block : 0;
    if (n == 0) {
        op.on_done(op, op.ctx);
        return;
    }
    op.pending_ = static_cast<uint32_t>(n);
    // Chunks go to the workers in turn, so one large operation uses every thread.
    unsigned wi = next_worker_.fetch_add(1);
    for (uint64_t i = 0; i < n; ++i, ++wi) {
        auto* c = new Chunk{&op, op.offset + i * block, std::min(block, op.bytes - i * block)};
        Worker& w = *workers_[wi % workers_.size()];
        {
            std::lock_guard lock(w.m);
            w.queue.push_back(c);
        }
        w.cv.notify_one();
    }
}

void Engine::requeue(Worker& w, Chunk* c) {
    std::lock_guard lock(w.m);
    w.queue.push_front(c);
}

void Engine::finish(Chunk* c, int error) {
    Operation& op = *c->op;
    op.done_ += c->done;
    if (error) {
        int expected = 0;
        op.error_.compare_exchange_strong(expected, error);
    }
    delete c;
    if (--op.pending_ == 0) op.on_done(op, op.ctx);  // the last touch of op
}

void Engine::run(Worker& w) {
    const long qd = static_cast<long>(opt_.queue_depth);
    std::vector<struct io_event> events(qd);
    std::vector<struct iocb*> batch;
    long inflight = 0;
    for (;;) {
        std::vector<Chunk*> take;
        {
            std::unique_lock lock(w.m);
            if (inflight == 0) w.cv.wait(lock, [&] { return !w.queue.empty() || stop_.load(); });
            if (inflight == 0 && w.queue.empty() && stop_) return;
            // Overlapped: top the window up. Sequential: a new wave only once the last one is reaped.
            const long room = opt_.overlapped ? qd - inflight : (inflight == 0 ? qd : 0);
            while (static_cast<long>(take.size()) < room && !w.queue.empty()) {
                take.push_back(w.queue.front());
                w.queue.pop_front();
            }
        }
        batch.clear();
        for (Chunk* c : take) {
            Operation& op = *c->op;
            std::byte* buf = op.buffer + (c->offset - op.offset) + c->done;
            const uint64_t len = c->bytes - c->done;
            if (op.write)
                io_prep_pwrite(&c->cb, op.fd, buf, len, static_cast<long long>(c->offset + c->done));
            else
                io_prep_pread(&c->cb, op.fd, buf, len, static_cast<long long>(c->offset + c->done));
            c->cb.data = c;
            batch.push_back(&c->cb);
        }
        size_t sent = 0;
        while (sent < batch.size()) {
            const int r = sys_.submit(w.ctx, static_cast<long>(batch.size() - sent), batch.data() + sent);
            if (r > 0) {
                sent += static_cast<size_t>(r);  // a partial submit: the rest goes again
                inflight += r;
                continue;
            }
            Chunk* c = static_cast<Chunk*>(batch[sent]->data);
            if ((r == 0 || transient(-r)) && ++c->retries <= opt_.max_retries) {
                if (inflight > 0) break;  // reap first: the queue may be full
                std::this_thread::sleep_for(std::chrono::microseconds(50));
                continue;
            }
            finish(c, r < 0 ? -r : EAGAIN);  // this iocb was refused; the ones after it are tried again
            ++sent;
        }
        for (size_t i = sent; i < batch.size(); ++i) requeue(w, static_cast<Chunk*>(batch[i]->data));
        if (inflight == 0) continue;

        const long min_nr = opt_.overlapped ? 1 : inflight;
        const int got = sys_.getevents(w.ctx, min_nr, qd, events.data(), nullptr);
        if (got < 0) {
            if (transient(-got)) continue;
            // EFAULT/EINVAL: a broken context is a bug, and nothing in flight can be trusted any more.
            std::fprintf(stderr, "flexrt: storage.aio: io_getevents failed with errno %d\n", -got);
            std::abort();
        }
        inflight -= got;
        for (int e = 0; e < got; ++e) {
            Chunk* c = static_cast<Chunk*>(events[e].data);
            const long res = static_cast<long>(events[e].res);
            Operation& op = *c->op;
            if (res < 0) {
                if (transient(static_cast<int>(-res)) && ++c->retries <= opt_.max_retries)
                    requeue(w, c);
                else
                    finish(c, static_cast<int>(-res));
                continue;
            }
            c->done += static_cast<uint64_t>(res);
            const uint64_t pos = c->offset + c->done;
            if (c->done == c->bytes || (!op.write && pos >= op.file_end)) {
                finish(c, 0);
            } else if (res == 0) {  // no progress: end of file for a read (before file_end), no space for a write
                finish(c, op.write ? ENOSPC : (pos >= op.file_end ? 0 : EIO));
            } else {
                requeue(w, c);  // short transfer: the remainder goes again (it made progress, so this ends)
            }
        }
    }
}

}  // namespace flexrt::aio
