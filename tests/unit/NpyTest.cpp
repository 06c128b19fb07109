//===- NpyTest.cpp - attnc-run's .npy reader and writer -------------------===//
//
// Round trips of every supported element type and rank, files as NumPy
// writes them (byte for byte), format 2.0, the dtype conversions of --inputs,
// and one case per error message.
//
//===----------------------------------------------------------------------===//

#include "NpyIO.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <dirent.h>
#include <limits>
#include <string>
#include <unistd.h>

using namespace attnc;
using npy::Array;
using npy::ElementType;
using npy::HalfType;

namespace {

/// A .npy file's bytes from a header dict and raw data, as NumPy 1.0 lays it
/// out (padding so the data starts at a multiple of 64).
std::string npyBytes(const std::string &dict, const std::string &data, int major = 1) {
  std::string header = dict;
  const size_t prefix = major == 1 ? 10 : 12;
  header.append((64 - (prefix + header.size() + 1) % 64) % 64, ' ');
  header += '\n';
  std::string bytes = "\x93NUMPY";
  bytes += static_cast<char>(major);
  bytes += '\0';
  for (int i = 0; i < (major == 1 ? 2 : 4); ++i)
    bytes += static_cast<char>((header.size() >> (8 * i)) & 0xff);
  return bytes + header + data;
}

std::string floatBytes(std::initializer_list<float> values) {
  std::string s;
  for (float f : values)
    s.append(reinterpret_cast<const char *>(&f), 4);
  return s;
}

std::string parseError(const std::string &bytes) {
  Array a;
  std::string error;
  EXPECT_FALSE(npy::parse(bytes, "q.npy", a, error));
  return error;
}

std::string tempDir() {
  char dir[] = "/tmp/attnc-npytest-XXXXXX";
  EXPECT_NE(::mkdtemp(dir), nullptr);
  return dir;
}

int countFiles(const std::string &dir) {
  int n = 0;
  if (DIR *d = ::opendir(dir.c_str())) {
    while (dirent *e = ::readdir(d))
      n += std::strcmp(e->d_name, ".") && std::strcmp(e->d_name, "..");
    ::closedir(d);
  }
  return n;
}

} // namespace

TEST(Npy, RoundTripEveryTypeAndRank) {
  for (ElementType type : {ElementType::Float32, ElementType::Float16, ElementType::BFloat16Bits})
    for (std::vector<int64_t> shape :
         std::vector<std::vector<int64_t>>{{2, 3, 4, 5}, {7}, {}, {3, 0, 2}, {1, 1, 1, 1}}) {
      Array a;
      a.type = type;
      a.shape = shape;
      a.data.resize(static_cast<size_t>(a.numElements() * npy::elementSize(type)));
      for (size_t i = 0; i < a.data.size(); ++i)
        a.data[i] = static_cast<uint8_t>(i * 37 + 11);
      const std::string bytes = npy::encode(a);
      // The data starts at a multiple of 64, after a header ending in '\n'.
      const size_t headerLength =
          static_cast<unsigned char>(bytes[8]) | static_cast<unsigned char>(bytes[9]) << 8;
      EXPECT_EQ((10 + headerLength) % 64, 0u);
      EXPECT_EQ(bytes[10 + headerLength - 1], '\n');
      Array b;
      std::string error;
      ASSERT_TRUE(npy::parse(bytes, "x.npy", b, error)) << error;
      EXPECT_EQ(b.type, type);
      EXPECT_EQ(b.shape, shape);
      EXPECT_EQ(b.data, a.data);
    }
}

TEST(Npy, HeaderAsNumpyWritesIt) {
  Array a = npy::fromFloats({2, 3}, {1, 2, 3, 4, 5, 6});
  const std::string bytes = npy::encode(a);
  // numpy.save(f, np.arange(1, 7, dtype=np.float32).reshape(2, 3)), 1.x/2.x.
  EXPECT_EQ(
      bytes.substr(0, 128),
      npyBytes("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", "").substr(0, 128));
  EXPECT_EQ(bytes.size(), 128u + 24u);
  // A 1-d shape is written as a one-element tuple.
  Array one = npy::fromFloats({3}, {1, 2, 3});
  EXPECT_NE(npy::encode(one).find("'shape': (3,), }"), std::string::npos);
  Array scalar = npy::fromFloats({}, {5});
  EXPECT_NE(npy::encode(scalar).find("'shape': (), }"), std::string::npos);
}

TEST(Npy, ParsesHeaderVariants) {
  const std::string data = floatBytes({1.5f, -2.0f});
  for (const char *dict : {
           "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }",
           "{'descr':'<f4','fortran_order':False,'shape':(2,)}",
           "{\"shape\": (2,), \"fortran_order\": False, \"descr\": \"<f4\"}",
           "{'descr': '<f4', 'fortran_order': False, 'shape': (2L,), }", // Python 2
           "{ 'descr' : '<f4' , 'fortran_order' : False , 'shape' : ( 2 , ) }",
       }) {
    Array a;
    std::string error;
    ASSERT_TRUE(npy::parse(npyBytes(dict, data), "x.npy", a, error)) << dict << ": " << error;
    EXPECT_EQ(a.shape, std::vector<int64_t>{2});
    float v[2];
    std::memcpy(v, a.data.data(), 8);
    EXPECT_EQ(v[0], 1.5f);
    EXPECT_EQ(v[1], -2.0f);
  }
}

TEST(Npy, Format2) {
  // Written by hand as 2.0.
  Array a;
  std::string error;
  ASSERT_TRUE(npy::parse(npyBytes("{'descr': '<f2', 'fortran_order': False, 'shape': (1,), }",
                                  std::string("\x00\x3c", 2), 2),
                         "x.npy", a, error))
      << error;
  EXPECT_EQ(a.type, ElementType::Float16);
  // A header too long for 1.0 (over 65535 bytes) is written as 2.0.
  Array big;
  big.type = ElementType::Float32;
  big.shape.assign(30000, 1);
  big.data.resize(4);
  const std::string bytes = npy::encode(big);
  EXPECT_EQ(bytes[6], 2);
  const size_t headerLength = static_cast<unsigned char>(bytes[8]) |
                              static_cast<unsigned char>(bytes[9]) << 8 |
                              static_cast<unsigned char>(bytes[10]) << 16;
  EXPECT_EQ((12 + headerLength) % 64, 0u);
  Array back;
  ASSERT_TRUE(npy::parse(bytes, "x.npy", back, error)) << error;
  EXPECT_EQ(back.shape.size(), 30000u);
}

TEST(Npy, NotNumpy) {
  EXPECT_EQ(parseError(""), "q.npy: not a NumPy file");
  EXPECT_EQ(parseError("\x93NUMP"), "q.npy: not a NumPy file");
  EXPECT_EQ(parseError("PK\x03\x04 a zip archive, e.g. an .npz"), "q.npy: not a NumPy file");
  EXPECT_EQ(parseError("{\"attnc\": 1}"), "q.npy: not a NumPy file");
}

TEST(Npy, Version) {
  std::string bytes =
      npyBytes("{'descr': '<f4', 'fortran_order': False, 'shape': (), }", floatBytes({1}));
  bytes[6] = 3;
  EXPECT_EQ(parseError(bytes), "q.npy: unsupported .npy format version 3.0 (supported: 1.0, 2.0)");
  bytes[6] = 1;
  bytes[7] = 1;
  EXPECT_EQ(parseError(bytes), "q.npy: unsupported .npy format version 1.1 (supported: 1.0, 2.0)");
}

TEST(Npy, TruncatedHeader) {
  const std::string full =
      npyBytes("{'descr': '<f4', 'fortran_order': False, 'shape': (), }", floatBytes({1}));
  EXPECT_EQ(parseError(full.substr(0, 9)), "q.npy: truncated header");
  EXPECT_EQ(parseError(full.substr(0, 40)),
            "q.npy: truncated header (118 bytes announced, 30 present)");
}

TEST(Npy, MalformedHeader) {
  auto err = [](const std::string &dict) { return parseError(npyBytes(dict, "")); };
  EXPECT_EQ(err("[1, 2]"), "q.npy: malformed header: expected a dict, got '[1, 2]'");
  EXPECT_EQ(err("{descr: '<f4'}"), "q.npy: malformed header: expected a quoted key");
  EXPECT_EQ(err("{'descr' '<f4'}"), "q.npy: malformed header: expected ':' after 'descr'");
  EXPECT_EQ(err("{'descr': '<f4', 'fortran_order': False}"),
            "q.npy: malformed header: missing key 'shape'");
  EXPECT_EQ(err("{'descr': '<f4', 'shape': ()}"),
            "q.npy: malformed header: missing key 'fortran_order'");
  EXPECT_EQ(err("{'fortran_order': False, 'shape': ()}"),
            "q.npy: malformed header: missing key 'descr'");
  EXPECT_EQ(err("{'descr': '<f4', 'fortran_order': False, 'shape': (), 'extra': 1}"),
            "q.npy: malformed header: unexpected key 'extra' (expected descr, fortran_order, "
            "shape)");
  EXPECT_EQ(err("{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': ()}"),
            "q.npy: malformed header: duplicate key 'descr'");
  EXPECT_EQ(err("{'descr': '<f4', 'fortran_order': 0, 'shape': ()}"),
            "q.npy: malformed header: fortran_order must be True or False, got '0'");
  EXPECT_EQ(err("{'descr': '<f4', 'fortran_order': False, 'shape': [2]}"),
            "q.npy: malformed header: shape must be a tuple, got '[2]'");
  EXPECT_EQ(err("{'descr': '<f4', 'fortran_order': False, 'shape': (2, -1)}"),
            "q.npy: malformed header: shape entries must be non-negative integers, got '-1'");
  EXPECT_EQ(err("{'descr': '<f4', 'fortran_order': False, 'shape': (2 3)}"),
            "q.npy: malformed header: expected ',' or ')' in shape");
  EXPECT_EQ(err("{'descr': '<f4' 'fortran_order': False, 'shape': ()}"),
            "q.npy: malformed header: expected ',' or '}' after 'descr'");
  EXPECT_EQ(err("{'descr': '<f4', 'fortran_order': False, 'shape': ()} x"),
            "q.npy: malformed header: text after the dict");
}

TEST(Npy, UnsupportedDtype) {
  auto err = [](const std::string &descr) {
    return parseError(
        npyBytes("{'descr': " + descr + ", 'fortran_order': False, 'shape': (1,), }", "12345678"));
  };
  const std::string use = " not supported; use float32, float16 or uint16 (bfloat16 bits)";
  EXPECT_EQ(err("'<f8'"), "q.npy: dtype '<f8'" + use);
  EXPECT_EQ(err("'>f4'"), "q.npy: dtype '>f4'" + use); // big-endian
  EXPECT_EQ(err("'<i4'"), "q.npy: dtype '<i4'" + use);
  EXPECT_EQ(err("'|u1'"), "q.npy: dtype '|u1'" + use);
  EXPECT_EQ(err("'|O'"), "q.npy: dtype '|O'" + use);
  EXPECT_EQ(err("[('a', '<f4'), ('b', '<f4')]"), "q.npy: dtype [('a', '<f4'), ('b', '<f4')]" + use);
}

TEST(Npy, FortranOrder) {
  EXPECT_EQ(parseError(npyBytes("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }",
                                floatBytes({1, 2, 3, 4}))),
            "q.npy: Fortran order not supported; save a C-ordered array "
            "(numpy.ascontiguousarray)");
}

TEST(Npy, DataSize) {
  const std::string dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }";
  EXPECT_EQ(parseError(npyBytes(dict, floatBytes({1, 2, 3}))),
            "q.npy: truncated data: shape [2, 2] of float32 needs 16 bytes, the file holds 12");
  EXPECT_EQ(parseError(npyBytes(dict, floatBytes({1, 2, 3, 4, 5}))),
            "q.npy: 4 bytes of trailing data after the array");
  EXPECT_EQ(parseError(npyBytes("{'descr': '<u2', 'fortran_order': False, 'shape': "
                                "(4611686018427387904, 4), }",
                                "")),
            "q.npy: shape [4611686018427387904, 4] is too large");
}

TEST(Npy, Files) {
  const std::string dir = tempDir();
  Array a = npy::fromFloats({1, 2, 1, 2}, {0.25f, -1, 3, 1e-3f});
  std::string error;
  ASSERT_TRUE(npy::writeFile(dir + "/q.npy", a, error)) << error;
  EXPECT_EQ(countFiles(dir), 1); // no temporary left behind
  Array b;
  ASSERT_TRUE(npy::readFile(dir + "/q.npy", "", b, error)) << error;
  EXPECT_EQ(b.data, a.data);
  EXPECT_EQ(b.shape, a.shape);

  // Messages name the file as asked (the path by default).
  EXPECT_FALSE(npy::readFile(dir + "/missing.npy", "", b, error));
  EXPECT_EQ(error, dir + "/missing.npy: cannot read: No such file or directory");
  EXPECT_FALSE(npy::readFile(dir, "q.npy", b, error));
  EXPECT_EQ(error, "q.npy: cannot read: Is a directory");
  {
    std::FILE *f = std::fopen((dir + "/bad.npy").c_str(), "wb");
    std::fputs("not numpy", f);
    std::fclose(f);
  }
  EXPECT_FALSE(npy::readFile(dir + "/bad.npy", "", b, error));
  EXPECT_EQ(error, dir + "/bad.npy: not a NumPy file");

  // Writing into a missing directory fails, naming the path.
  EXPECT_FALSE(npy::writeFile(dir + "/no/such/o.npy", a, error));
  EXPECT_EQ(error, dir + "/no/such/o.npy: cannot write: No such file or directory");
  EXPECT_EQ(countFiles(dir), 2);
  ::unlink((dir + "/q.npy").c_str());
  ::unlink((dir + "/bad.npy").c_str());
  ::rmdir(dir.c_str());
}

TEST(Npy, ToHalfFromFloat32) {
  // 1 + 2^-8 is a tie between bf16 1 and 1 + 2^-7: rounds to even (1);
  // 1 + 3 * 2^-9 rounds up. float16 keeps both (10 mantissa bits).
  const float tie = 1.0f + std::ldexp(1.0f, -8), up = 1.0f + 3 * std::ldexp(1.0f, -9);
  Array a = npy::fromFloats({3}, {tie, up, -2.5f});
  std::vector<uint16_t> bits;
  std::string error;
  ASSERT_TRUE(npy::toHalf(a, HalfType::BF16, "q.npy", bits, error)) << error;
  EXPECT_EQ(npy::halfToFloat(bits[0], HalfType::BF16), 1.0f);
  EXPECT_EQ(npy::halfToFloat(bits[1], HalfType::BF16), 1.0f + std::ldexp(1.0f, -7));
  EXPECT_EQ(npy::halfToFloat(bits[2], HalfType::BF16), -2.5f);
  ASSERT_TRUE(npy::toHalf(a, HalfType::FP16, "q.npy", bits, error)) << error;
  EXPECT_EQ(npy::halfToFloat(bits[0], HalfType::FP16), tie);
  EXPECT_EQ(npy::halfToFloat(bits[1], HalfType::FP16), up);
  EXPECT_EQ(bits[2], 0xc100); // -2.5
}

TEST(Npy, ToHalfFromHalfTypes) {
  // float16 data: taken as is for fp16; for bf16 converted exactly and
  // rounded (1 + 2^-10 is a float16 but not a bfloat16).
  Array f16;
  f16.type = ElementType::Float16;
  f16.shape = {2};
  const uint16_t halfBits[2] = {0x3c01 /* 1 + 2^-10 */, 0x0001 /* 2^-24 */};
  f16.data.resize(4);
  std::memcpy(f16.data.data(), halfBits, 4);
  std::vector<uint16_t> bits;
  std::string error;
  ASSERT_TRUE(npy::toHalf(f16, HalfType::FP16, "q.npy", bits, error)) << error;
  EXPECT_EQ(bits, (std::vector<uint16_t>{0x3c01, 0x0001}));
  ASSERT_TRUE(npy::toHalf(f16, HalfType::BF16, "q.npy", bits, error)) << error;
  EXPECT_EQ(npy::halfToFloat(bits[0], HalfType::BF16), 1.0f);
  EXPECT_EQ(npy::halfToFloat(bits[1], HalfType::BF16), std::ldexp(1.0f, -24));

  // uint16 data holds bfloat16 bits: as is for bf16, rounded for fp16.
  Array u16 = f16;
  u16.type = ElementType::BFloat16Bits;
  const uint16_t bfBits[2] = {0x3f81 /* 1 + 2^-7 */, 0xc0a0 /* -5 */};
  std::memcpy(u16.data.data(), bfBits, 4);
  ASSERT_TRUE(npy::toHalf(u16, HalfType::BF16, "q.npy", bits, error)) << error;
  EXPECT_EQ(bits, (std::vector<uint16_t>{0x3f81, 0xc0a0}));
  ASSERT_TRUE(npy::toHalf(u16, HalfType::FP16, "q.npy", bits, error)) << error;
  EXPECT_EQ(npy::halfToFloat(bits[0], HalfType::FP16), 1.0f + std::ldexp(1.0f, -7));
  EXPECT_EQ(npy::halfToFloat(bits[1], HalfType::FP16), -5.0f);
}

TEST(Npy, ToHalfErrors) {
  std::vector<uint16_t> bits;
  std::string error;
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  Array a = npy::fromFloats({1, 2, 1, 2}, {0, 1, nan, 3});
  EXPECT_FALSE(npy::toHalf(a, HalfType::BF16, "q.npy", bits, error));
  EXPECT_EQ(error, "q.npy: element [0, 1, 0, 0] is nan; inputs must be finite");
  a = npy::fromFloats({3}, {0, 1, -inf});
  EXPECT_FALSE(npy::toHalf(a, HalfType::FP16, "k.npy", bits, error));
  EXPECT_EQ(error, "k.npy: element [2] is -inf; inputs must be finite");
  a = npy::fromFloats({2}, {65504, 70000});
  EXPECT_FALSE(npy::toHalf(a, HalfType::FP16, "v.npy", bits, error));
  EXPECT_EQ(error, "v.npy: element [1] (70000) is out of float16's range");
  EXPECT_TRUE(npy::toHalf(a, HalfType::BF16, "v.npy", bits, error)) << error;
  a = npy::fromFloats({1}, {std::numeric_limits<float>::max()});
  EXPECT_FALSE(npy::toHalf(a, HalfType::BF16, "v.npy", bits, error));
  EXPECT_EQ(error, "v.npy: element [0] (3.40282347e+38) is out of bfloat16's range");
  // bfloat16 bits beyond float16's range.
  Array u16;
  u16.type = ElementType::BFloat16Bits;
  u16.shape = {1};
  const uint16_t big = 0x4780; // 65536
  u16.data.resize(2);
  std::memcpy(u16.data.data(), &big, 2);
  EXPECT_FALSE(npy::toHalf(u16, HalfType::FP16, "q.npy", bits, error));
  EXPECT_EQ(error, "q.npy: element [0] (65536) is out of float16's range");
}
