//===- NpyIO.h - NumPy .npy files for attnc-run -----------------*- C++ -*-===//
//
// A small reader and writer of NumPy's .npy format (format versions 1.0 and
// 2.0, little-endian, C order), enough for attention tensors:
//
//   '<f4' float32, '<f2' float16, '<u2' uint16 holding bfloat16 bits
//
// (NumPy has no bfloat16 dtype: `x.view(np.uint16)` of an ml_dtypes /
// torch bfloat16 array gives the accepted form). Every error message starts
// with the file's display name: "q.npy: not a NumPy file". Free of MLIR and
// exception-free at its interface.
//
//===----------------------------------------------------------------------===//

#ifndef ATTNC_TOOLS_ATTNC_RUN_NPYIO_H
#define ATTNC_TOOLS_ATTNC_RUN_NPYIO_H

#include <cstdint>
#include <string>
#include <vector>

namespace attnc::npy {

/// The element types attnc-run reads and writes.
enum class ElementType { Float32, Float16, BFloat16Bits };

/// The .npy `descr` of a type: "<f4", "<f2", "<u2".
const char *descr(ElementType type);
/// Bytes per element.
int64_t elementSize(ElementType type);

/// An array in memory: raw little-endian element bytes in C order.
struct Array {
  ElementType type = ElementType::Float32;
  std::vector<int64_t> shape;
  std::vector<uint8_t> data;

  int64_t numElements() const;
};

/// "[2, 100, 4, 64]".
std::string shapeString(const std::vector<int64_t> &shape);

/// Parses the bytes of a .npy file. On failure returns false and sets
/// `error` to "NAME: what is wrong" (`name` is how the file is named in
/// messages, e.g. "q.npy").
bool parse(const std::string &bytes, const std::string &name, Array &out, std::string &error);

/// Reads and parses `path`; messages name it as `name` (the path if empty).
bool readFile(const std::string &path, const std::string &name, Array &out, std::string &error);

/// The bytes of a .npy file holding `array` (format 1.0, or 2.0 when the
/// header does not fit 1.0). The header is padded so the data starts at a
/// multiple of 64 bytes, as NumPy writes it.
std::string encode(const Array &array);

/// Writes `array` to `path` atomically (a temporary file in the same
/// directory, renamed over `path`). On failure returns false with a message
/// naming the path and leaves nothing behind.
bool writeFile(const std::string &path, const Array &array, std::string &error);

/// A float32 array of `shape` holding `values`.
Array fromFloats(const std::vector<int64_t> &shape, const std::vector<float> &values);

/// The half type of an attention spec.
enum class HalfType { BF16, FP16 };

/// Converts the elements of `array` to `target` bits:
///  - float32: rounded to nearest even;
///  - float16: taken as is for FP16; for BF16 converted exactly to float and
///    rounded to bfloat16;
///  - uint16 (bfloat16 bits): taken as is for BF16; for FP16 converted
///    exactly to float and rounded to float16.
/// Every value must be finite after the conversion (a float32 or bfloat16
/// value beyond float16's range is an error, as are NaN and inf): the error
/// names the element by index, e.g. "q.npy: element [0, 3, 1, 7] is nan;
/// inputs must be finite".
bool toHalf(const Array &array, HalfType target, const std::string &name,
            std::vector<uint16_t> &out, std::string &error);

/// The value of half bits as float (exact).
float halfToFloat(uint16_t bits, HalfType type);
/// A float rounded to nearest even half bits.
uint16_t floatToHalf(float value, HalfType type);

} // namespace attnc::npy

#endif // ATTNC_TOOLS_ATTNC_RUN_NPYIO_H
