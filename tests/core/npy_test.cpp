#include "test_util.hpp"

namespace flexrt::test {
namespace {

TEST(Npy, WriteThenParse) {
    TempDir dir;
    std::vector<float> data(6);
    std::iota(data.begin(), data.end(), 0.5f);
    write_npy((dir / "a.npy").string(), DType::f32, {2, 3}, data.data());
    Shape s;
    std::string bytes = read_npy((dir / "a.npy").string(), DType::f32, &s);
    EXPECT_EQ(s, (Shape{2, 3}));
    EXPECT_EQ(std::memcmp(bytes.data(), data.data(), 24), 0);
    const std::string all = read_file(dir / "a.npy");
    NpyHeader h = parse_npy_header(all.data(), all.size(), "a");
    EXPECT_EQ(h.data_offset % 64, 0u);  // numpy pads the header to 64 bytes
}

TEST(Npy, ReadsTheFixtureWrittenByNumpy) {
    const std::string all = read_file(fixture_dir() / "weights" / "decoder.embed_tokens.weight");
    NpyHeader h = parse_npy_header(all.data(), all.size(), "embed");
    EXPECT_EQ(h.dtype, DType::f16);
    EXPECT_EQ(h.shape, (Shape{512, 64}));
    EXPECT_EQ(all.size(), h.data_offset + h.data_bytes());
}

TEST(Npy, RejectsGarbageAndFortranOrder) {
    EXPECT_THROW(parse_npy_header("not numpy at all", 16, "x"), Error);
    std::string fortran = std::string("\x93NUMPY\x01\x00", 8);
    std::string dict = "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }";
    fortran += static_cast<char>(dict.size());
    fortran += '\0';
    fortran += dict;
    EXPECT_THROW(parse_npy_header(fortran.data(), fortran.size(), "x"), Error);
    std::string complex = std::string("\x93NUMPY\x01\x00", 8);
    dict = "{'descr': '<c8', 'fortran_order': False, 'shape': (2,), }";
    complex += static_cast<char>(dict.size());
    complex += '\0';
    complex += dict;
    try {
        parse_npy_header(complex.data(), complex.size(), "x.npy");
        FAIL();
    } catch (const Error& e) { EXPECT_NE(std::string(e.what()).find("unsupported dtype '<c8'"), std::string::npos); }
}

TEST(Npy, TruncatedHeader) {
    std::string s = std::string("\x93NUMPY\x01\x00\xff\x00", 10) + "{'descr'";
    EXPECT_THROW(parse_npy_header(s.data(), s.size(), "x"), Error);
}

}  // namespace
}  // namespace flexrt::test
