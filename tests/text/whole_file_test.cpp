// Files written whole or not at all (text::write_whole_file, behind results, traces, hardware profiles and
// stored compressed weights): the file appears only complete, and a failure - a full disk, an exception
// from the writer, a directory that is not there - leaves no partial file and says what failed.
#include "text/whole_file.hpp"

#include <flexrt/status.hpp>

#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <stdexcept>
#include <string>

namespace flexrt::text {
namespace {

namespace fs = std::filesystem;

struct Dir {
    fs::path path = fs::temp_directory_path() / ("flexrt_whole_file_" + std::to_string(::getpid()));
    Dir() { fs::create_directories(path); }
    ~Dir() { fs::remove_all(path); }
};

TEST(WholeFile, WritesTheFileAndNoPartial) {
    Dir d;
    const fs::path f = d.path / "out.json";
    write_whole_file(f, "results", [](std::ostream& out) { out << "{\"a\": 1}\n"; });
    EXPECT_EQ(read_whole_file(f, "results"), "{\"a\": 1}\n");
    EXPECT_FALSE(fs::exists(f.string() + ".partial"));
    write_whole_file(f, "results", [](std::ostream& out) { out << "second"; });  // replaces it whole
    EXPECT_EQ(read_whole_file(f, "results"), "second");
}

TEST(WholeFile, AnExceptionFromTheWriterKeepsTheOldFileAndLeavesNoPartial) {
    Dir d;
    const fs::path f = d.path / "profile.toml";
    write_whole_file(f, "profile", [](std::ostream& out) { out << "old"; });
    EXPECT_THROW(write_whole_file(f, "profile",
                                  [](std::ostream& out) {
                                      out << "half of it";
                                      throw std::runtime_error("the writer failed");
                                  }),
                 std::runtime_error);
    EXPECT_EQ(read_whole_file(f, "profile"), "old");
    EXPECT_FALSE(fs::exists(f.string() + ".partial"));
}

TEST(WholeFile, AFullDiskIsNoSpaceAndLeavesNothing) {
    Dir d;
    const fs::path f = d.path / "weights.group4";
    fs::create_symlink("/dev/full", f.string() + ".partial");  // every write to the partial file fails with ENOSPC
    try {
        write_whole_file(f, "compressed weights", [](std::ostream& out) { out << std::string(1 << 20, 'x'); });
        FAIL() << "no error";
    } catch (const Error& e) {
        EXPECT_EQ(e.status(), FLEXRT_STATUS_NO_SPACE) << e.what();
        EXPECT_NE(std::string(e.what()).find("compressed weights"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find(f.string() + ".partial"), std::string::npos) << e.what();
    }
    EXPECT_FALSE(fs::exists(f));
    EXPECT_FALSE(fs::is_symlink(f.string() + ".partial"));
}

TEST(WholeFile, AMissingDirectoryNamesTheFile) {
    Dir d;
    const fs::path f = d.path / "no" / "such" / "dir" / "trace.json";
    try {
        write_whole_file(f, "--trace", [](std::ostream& out) { out << "{}"; });
        FAIL() << "no error";
    } catch (const Error& e) {
        EXPECT_EQ(e.status(), FLEXRT_STATUS_IO_ERROR) << e.what();
        EXPECT_NE(std::string(e.what()).find("--trace"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find(f.string()), std::string::npos) << e.what();
    }
}

}  // namespace
}  // namespace flexrt::text
