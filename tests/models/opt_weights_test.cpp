// Bad weight files: each error names the tensor, the file and what was expected, and fails before the run.
#include "test_util.hpp"

#include "engine/engine.hpp"
#include "models/opt/opt_weights.hpp"

#include <flexrt/scheduler.hpp>

namespace flexrt::test {
namespace {

const std::string kVictim = "decoder.layers.1.fc1.weight";  // (ffn, hidden) = (256, 64)

class BadWeights : public ::testing::Test {
protected:
    void SetUp() override {
        fs::create_directories(weights_);
        for (const auto& e : fs::directory_iterator(fixture_dir() / "weights")) fs::copy(e.path(), weights_ / e.path().filename());
    }
    // Builds an engine over the (damaged) directory and returns the error text.
    std::string error() {
        Tiers t;
        opt::NumpyDirWeights w(weights_, t.disk);
        try {
            Engine e(tiny_config(), Policy{}, 8, 4, {*t.ops, t.compute, t.host, t.disk, t.transfers}, w);
        } catch (const Error& e) {
            EXPECT_EQ(count_files(t.dir.path() / "offload"), 0u) << "a failed start left files behind";
            return e.what();
        }
        return "";
    }
    TempDir dir_;
    fs::path weights_ = dir_ / "weights";
};

TEST_F(BadWeights, MissingFile) {
    fs::remove(weights_ / kVictim);
    const std::string e = error();
    EXPECT_NE(e.find("weight " + kVictim), std::string::npos) << e;
    EXPECT_NE(e.find("no file"), std::string::npos) << e;
}

TEST_F(BadWeights, TruncatedFile) {
    fs::resize_file(weights_ / kVictim, fs::file_size(weights_ / kVictim) - 100);
    const std::string e = error();
    EXPECT_NE(e.find(kVictim), std::string::npos) << e;
    EXPECT_NE(e.find("truncated"), std::string::npos) << e;
}

TEST_F(BadWeights, WrongShapeNamesBothShapes) {
    std::vector<uint16_t> data(64 * 256, 0);
    write_npy((weights_ / kVictim).string(), DType::f16, {64, 256}, data.data());
    const std::string e = error();
    EXPECT_NE(e.find(kVictim), std::string::npos) << e;
    EXPECT_NE(e.find("shape (64, 256)"), std::string::npos) << e;
    EXPECT_NE(e.find("expected (256, 64)"), std::string::npos) << e;
}

TEST_F(BadWeights, WrongDtype) {
    std::vector<float> data(256 * 64, 0);
    write_npy((weights_ / kVictim).string(), DType::f32, {256, 64}, data.data());
    const std::string e = error();
    EXPECT_NE(e.find("dtype float32"), std::string::npos) << e;
    EXPECT_NE(e.find("expected float16"), std::string::npos) << e;
}

TEST_F(BadWeights, NotANpyFile) {
    write_file(weights_ / kVictim, "hello, I am not an array");
    const std::string e = error();
    EXPECT_NE(e.find(kVictim), std::string::npos) << e;
    EXPECT_NE(e.find("NUMPY"), std::string::npos) << e;
}

TEST_F(BadWeights, NpyExtensionIsAccepted) {
    fs::rename(weights_ / kVictim, weights_ / (kVictim + ".npy"));
    EXPECT_EQ(error(), "");
}

TEST(WeightDirectory, NotADirectory) {
    Tiers t;
    try {
        opt::NumpyDirWeights w(t.dir / "nope", t.disk);
        FAIL() << "no error";
    } catch (const Error& e) { EXPECT_NE(std::string(e.what()).find("is not a directory"), std::string::npos) << e.what(); }
}

// A full disk during placement (the 4th offload file cannot be created): a clear error, no file survives.
TEST(FaultyDisk, WriteFailureDuringPlacementIsReported) {
    TempDir dir;
    auto storage = make_storage("faulty", {{FLEXRT_TEST_PLUGIN_DIR, "test"}}, toml::table{{"fail_create_after", 3}});
    {
        MemoryDevice compute(TierKind::compute, "c"), host(TierKind::host, "h");
        auto cpu_ops = ops::make_cpu_compute();
        DiskDevice disk(*storage, dir / "offload");
        TransferEngine xfer(2);
        opt::DummyWeights w(1);
        Policy p;
        p.weights = {0, 0};  // everything on disk: materialised through the plugin, whose writes fail
        try {
            Engine e(tiny_config(), p, 8, 4, {*cpu_ops, compute, host, disk, xfer}, w);
            FAIL() << "no error";
        } catch (const Error& e) { EXPECT_EQ(e.status(), FLEXRT_STATUS_NO_SPACE) << e.what(); }
    }
    EXPECT_EQ(count_files(dir / "offload"), 0u);
}

// The disk fails in the middle of a run (KV cache writes): generate() reports the plugin's error with the
// file, and nothing is left on disk once the engine and its tiers are gone.
TEST(FaultyDisk, WriteFailureMidRunStopsTheRunCleanly) {
    TempDir dir;
    auto storage = make_storage("faulty", {{FLEXRT_TEST_PLUGIN_DIR, "test"}}, toml::table{{"fail_write_after", 20000}});
    auto schedule = create_plugin<IScheduler>(find_plugin(FLEXRT_PLUGIN_KIND_SCHEDULE, "normal", plugin_search_path({})), {});
    {
        MemoryDevice compute(TierKind::compute, "c"), host(TierKind::host, "h");
        auto cpu_ops = ops::make_cpu_compute();
        DiskDevice disk(*storage, dir / "offload");
        TransferEngine xfer(2);
        opt::DummyWeights w(1);
        Policy p;
        p.cache = {0, 0};  // the KV cache on disk: every step writes it
        Engine e(tiny_config(), p, 8, 4, {*cpu_ops, compute, host, disk, xfer}, w);
        std::vector<std::vector<int32_t>> prompts(4, std::vector<int32_t>{5, 6, 7});
        try {
            e.generate(prompts, {}, *schedule);
            FAIL() << "no error";
        } catch (const Error& err) {
            EXPECT_EQ(err.status(), FLEXRT_STATUS_IO_ERROR) << err.what();
            EXPECT_NE(std::string(err.what()).find("writing "), std::string::npos) << err.what();
            EXPECT_NE(std::string(err.what()).find("errno 5"), std::string::npos) << err.what();
        }
    }
    EXPECT_EQ(count_files(dir / "offload"), 0u);
}

}  // namespace
}  // namespace flexrt::test
