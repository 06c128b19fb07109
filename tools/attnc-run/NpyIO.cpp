//===- NpyIO.cpp - NumPy .npy files for attnc-run -------------------------===//
//
// The format (numpy.lib.format): the magic "\x93NUMPY", a major and a minor
// version byte, the header length (2 bytes little-endian in 1.0, 4 bytes in
// 2.0), then the header: a Python dict literal with exactly the keys
// 'descr', 'fortran_order' and 'shape', padded with spaces and ending in a
// newline; the raw element bytes follow.
//
//===----------------------------------------------------------------------===//

#include "NpyIO.h"

#include "attnc_cpu.h"

#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <sstream>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "NpyIO reads and writes little-endian element bytes in place: a little-endian host is needed"
#endif

namespace attnc::npy {

namespace {

constexpr char kMagic[] = "\x93NUMPY";
constexpr size_t kMagicSize = 6;
constexpr const char *kSupportedTypes = "use float32, float16 or uint16 (bfloat16 bits)";

/// A cursor over the header dict literal.
class HeaderParser {
public:
  explicit HeaderParser(const std::string &text) : text_(text) {}

  void skipSpace() {
    while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\t' ||
                                   text_[pos_] == '\n' || text_[pos_] == '\r'))
      ++pos_;
  }
  bool atEnd() {
    skipSpace();
    return pos_ >= text_.size();
  }
  bool consume(char c) {
    skipSpace();
    if (pos_ < text_.size() && text_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }
  char peek() {
    skipSpace();
    return pos_ < text_.size() ? text_[pos_] : '\0';
  }
  /// A Python string literal in single or double quotes (no escapes needed
  /// for the values NumPy writes).
  bool string(std::string &out) {
    skipSpace();
    if (pos_ >= text_.size() || (text_[pos_] != '\'' && text_[pos_] != '"'))
      return false;
    const char quote = text_[pos_];
    const size_t end = text_.find(quote, pos_ + 1);
    if (end == std::string::npos)
      return false;
    out = text_.substr(pos_ + 1, end - pos_ - 1);
    pos_ = end + 1;
    return true;
  }
  /// A bare word: True, False, or an integer (digits, an optional sign and
  /// Python 2's long suffix L).
  std::string word() {
    skipSpace();
    size_t start = pos_;
    while (pos_ < text_.size() && (std::isalnum(static_cast<unsigned char>(text_[pos_])) ||
                                   text_[pos_] == '-' || text_[pos_] == '+' || text_[pos_] == '_'))
      ++pos_;
    return text_.substr(start, pos_ - start);
  }
  /// The raw text of any value up to the next top-level ',' or '}'
  /// (brackets balanced), for messages about unexpected values.
  std::string rawValue() {
    skipSpace();
    size_t start = pos_;
    int depth = 0;
    char quote = 0;
    for (; pos_ < text_.size(); ++pos_) {
      char c = text_[pos_];
      if (quote) {
        if (c == quote)
          quote = 0;
        continue;
      }
      if (c == '\'' || c == '"')
        quote = c;
      else if (c == '(' || c == '[' || c == '{')
        ++depth;
      else if (c == ')' || c == ']' || c == '}') {
        if (depth == 0)
          break;
        --depth;
      } else if (c == ',' && depth == 0)
        break;
    }
    std::string raw = text_.substr(start, pos_ - start);
    while (!raw.empty() && raw.back() == ' ')
      raw.pop_back();
    return raw;
  }

private:
  const std::string &text_;
  size_t pos_ = 0;
};

bool parseInteger(const std::string &text, int64_t &value) {
  std::string digits = text;
  if (!digits.empty() && (digits.back() == 'L' || digits.back() == 'l'))
    digits.pop_back();
  if (digits.empty())
    return false;
  for (char c : digits)
    if (c < '0' || c > '9')
      return false;
  errno = 0;
  char *end = nullptr;
  long long v = std::strtoll(digits.c_str(), &end, 10);
  if (errno == ERANGE || *end != '\0')
    return false;
  value = v;
  return true;
}

bool elementTypeOf(const std::string &descr, ElementType &type) {
  if (descr == "<f4")
    type = ElementType::Float32;
  else if (descr == "<f2")
    type = ElementType::Float16;
  else if (descr == "<u2")
    type = ElementType::BFloat16Bits;
  else
    return false;
  return true;
}

const char *typeName(ElementType type) {
  switch (type) {
  case ElementType::Float32:
    return "float32";
  case ElementType::Float16:
    return "float16";
  case ElementType::BFloat16Bits:
    return "uint16";
  }
  return "?";
}

uint32_t readLittleEndian(const std::string &bytes, size_t at, int size) {
  uint32_t v = 0;
  for (int i = size - 1; i >= 0; --i)
    v = (v << 8) | static_cast<unsigned char>(bytes[at + i]);
  return v;
}

/// "[0, 3, 1, 7]": the multi-index of flat element `flat`.
std::string indexString(const std::vector<int64_t> &shape, int64_t flat) {
  std::vector<int64_t> index(shape.size(), 0);
  for (size_t d = shape.size(); d-- > 0;) {
    if (shape[d] > 0) {
      index[d] = flat % shape[d];
      flat /= shape[d];
    }
  }
  return shapeString(index);
}

std::string formatFloat(float v) {
  std::ostringstream os;
  os.precision(9);
  os << v;
  return os.str();
}

} // namespace

const char *descr(ElementType type) {
  switch (type) {
  case ElementType::Float32:
    return "<f4";
  case ElementType::Float16:
    return "<f2";
  case ElementType::BFloat16Bits:
    return "<u2";
  }
  return "?";
}

int64_t elementSize(ElementType type) { return type == ElementType::Float32 ? 4 : 2; }

int64_t Array::numElements() const {
  int64_t n = 1;
  for (int64_t d : shape)
    n *= d;
  return n;
}

std::string shapeString(const std::vector<int64_t> &shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i)
    s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

bool parse(const std::string &bytes, const std::string &name, Array &out, std::string &error) {
  auto fail = [&](const std::string &message) {
    error = name + ": " + message;
    return false;
  };
  if (bytes.size() < kMagicSize + 2 || bytes.compare(0, kMagicSize, kMagic, kMagicSize) != 0)
    return fail("not a NumPy file");
  const int major = static_cast<unsigned char>(bytes[6]);
  const int minor = static_cast<unsigned char>(bytes[7]);
  if ((major != 1 && major != 2) || minor != 0)
    return fail("unsupported .npy format version " + std::to_string(major) + "." +
                std::to_string(minor) + " (supported: 1.0, 2.0)");
  const int lengthSize = major == 1 ? 2 : 4;
  const size_t headerStart = kMagicSize + 2 + lengthSize;
  if (bytes.size() < headerStart)
    return fail("truncated header");
  const uint64_t headerLength = readLittleEndian(bytes, kMagicSize + 2, lengthSize);
  if (bytes.size() - headerStart < headerLength)
    return fail("truncated header (" + std::to_string(headerLength) + " bytes announced, " +
                std::to_string(bytes.size() - headerStart) + " present)");
  const std::string header = bytes.substr(headerStart, headerLength);

  // The dict literal.
  HeaderParser p(header);
  auto malformed = [&](const std::string &what) { return fail("malformed header: " + what); };
  if (!p.consume('{')) {
    std::string start = header.substr(0, 40);
    while (!start.empty() && std::isspace(static_cast<unsigned char>(start.back())))
      start.pop_back();
    return malformed("expected a dict, got '" + start + "'");
  }
  bool haveDescr = false, haveOrder = false, haveShape = false;
  std::string descrText;
  bool fortran = false;
  std::vector<int64_t> shape;
  while (!p.consume('}')) {
    std::string key;
    if (!p.string(key))
      return malformed("expected a quoted key");
    if (!p.consume(':'))
      return malformed("expected ':' after '" + key + "'");
    if (key == "descr") {
      if (haveDescr)
        return malformed("duplicate key 'descr'");
      haveDescr = true;
      if (!p.string(descrText)) {
        // A structured dtype (a list of fields) or anything else.
        std::string raw = p.rawValue();
        return fail("dtype " + raw + " not supported; " + kSupportedTypes);
      }
    } else if (key == "fortran_order") {
      if (haveOrder)
        return malformed("duplicate key 'fortran_order'");
      haveOrder = true;
      std::string w = p.word();
      if (w == "True")
        fortran = true;
      else if (w == "False")
        fortran = false;
      else
        return malformed("fortran_order must be True or False, got '" + w + "'");
    } else if (key == "shape") {
      if (haveShape)
        return malformed("duplicate key 'shape'");
      haveShape = true;
      if (!p.consume('('))
        return malformed("shape must be a tuple, got '" + p.rawValue() + "'");
      while (!p.consume(')')) {
        std::string w = p.word();
        int64_t dim = 0;
        if (!parseInteger(w, dim))
          return malformed("shape entries must be non-negative integers, got '" +
                           (w.empty() ? std::string(1, p.peek()) : w) + "'");
        shape.push_back(dim);
        if (!p.consume(',') && p.peek() != ')')
          return malformed("expected ',' or ')' in shape");
      }
    } else {
      return malformed("unexpected key '" + key + "' (expected descr, fortran_order, shape)");
    }
    if (!p.consume(',') && p.peek() != '}')
      return malformed("expected ',' or '}' after '" + key + "'");
  }
  if (!p.atEnd())
    return malformed("text after the dict");
  if (!haveDescr)
    return malformed("missing key 'descr'");
  if (!haveOrder)
    return malformed("missing key 'fortran_order'");
  if (!haveShape)
    return malformed("missing key 'shape'");

  ElementType type;
  if (!elementTypeOf(descrText, type))
    return fail("dtype '" + descrText + "' not supported; " + kSupportedTypes);
  if (fortran)
    return fail("Fortran order not supported; save a C-ordered array "
                "(numpy.ascontiguousarray)");

  // The data: exactly count * size bytes.
  const int64_t size = elementSize(type);
  int64_t count = 1;
  for (int64_t dim : shape) {
    if (dim != 0 && count > std::numeric_limits<int64_t>::max() / size / dim)
      return fail("shape " + shapeString(shape) + " is too large");
    count *= dim;
  }
  const uint64_t dataStart = headerStart + headerLength;
  const uint64_t present = bytes.size() - dataStart;
  const uint64_t needed = static_cast<uint64_t>(count * size);
  if (present < needed)
    return fail("truncated data: shape " + shapeString(shape) + " of " + typeName(type) +
                " needs " + std::to_string(needed) + " bytes, the file holds " +
                std::to_string(present));
  if (present > needed)
    return fail(std::to_string(present - needed) + " bytes of trailing data after the array");

  out.type = type;
  out.shape = std::move(shape);
  out.data.assign(bytes.begin() + static_cast<std::ptrdiff_t>(dataStart), bytes.end());
  return true;
}

bool readFile(const std::string &path, const std::string &name, Array &out, std::string &error) {
  const std::string shown = name.empty() ? path : name;
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    error = shown + ": cannot read: " + std::strerror(errno);
    return false;
  }
  if (S_ISDIR(st.st_mode)) {
    error = shown + ": cannot read: " + std::strerror(EISDIR);
    return false;
  }
  std::FILE *f = std::fopen(path.c_str(), "rb");
  if (!f) {
    error = shown + ": cannot read: " + std::strerror(errno);
    return false;
  }
  std::string bytes;
  char buffer[1 << 16];
  size_t n;
  while ((n = std::fread(buffer, 1, sizeof buffer, f)) > 0)
    bytes.append(buffer, n);
  const bool failed = std::ferror(f);
  const int savedErrno = errno;
  std::fclose(f);
  if (failed) {
    error = shown + ": cannot read: " + std::strerror(savedErrno);
    return false;
  }
  return parse(bytes, shown, out, error);
}

std::string encode(const Array &array) {
  std::string dict =
      std::string("{'descr': '") + descr(array.type) + "', 'fortran_order': False, 'shape': (";
  for (size_t i = 0; i < array.shape.size(); ++i)
    dict += (i ? ", " : "") + std::to_string(array.shape[i]);
  if (array.shape.size() == 1)
    dict += ",";
  dict += "), }";
  // Pad with spaces so that magic + version + length + header is a multiple
  // of 64, the header ending in '\n'.
  auto padded = [&](size_t prefix) {
    std::string header = dict;
    const size_t total = prefix + header.size() + 1;
    header.append((64 - total % 64) % 64, ' ');
    header += '\n';
    return header;
  };
  std::string header = padded(kMagicSize + 2 + 2);
  int major = 1;
  if (header.size() > 0xffff) {
    major = 2;
    header = padded(kMagicSize + 2 + 4);
  }
  std::string bytes(kMagic, kMagicSize);
  bytes += static_cast<char>(major);
  bytes += '\0';
  const uint32_t length = static_cast<uint32_t>(header.size());
  for (int i = 0; i < (major == 1 ? 2 : 4); ++i)
    bytes += static_cast<char>((length >> (8 * i)) & 0xff);
  bytes += header;
  bytes.append(reinterpret_cast<const char *>(array.data.data()), array.data.size());
  return bytes;
}

bool writeFile(const std::string &path, const Array &array, std::string &error) {
  const std::string bytes = encode(array);
  std::string tmp = path + ".tmp.XXXXXX";
  std::vector<char> name(tmp.begin(), tmp.end());
  name.push_back('\0');
  const int fd = ::mkstemp(name.data());
  if (fd < 0) {
    error = path + ": cannot write: " + std::strerror(errno);
    return false;
  }
  size_t written = 0;
  while (written < bytes.size()) {
    ssize_t n = ::write(fd, bytes.data() + written, bytes.size() - written);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      break;
    }
    written += static_cast<size_t>(n);
  }
  int savedErrno = errno;
  if (written != bytes.size() || ::fsync(fd) != 0) {
    savedErrno = written != bytes.size() ? savedErrno : errno;
    ::close(fd);
    ::unlink(name.data());
    error = path + ": cannot write: " + std::strerror(savedErrno);
    return false;
  }
  // mkstemp creates 0600 files; give the output the usual permissions.
  mode_t mask = ::umask(0);
  ::umask(mask);
  ::fchmod(fd, 0666 & ~mask);
  if (::close(fd) != 0 || ::rename(name.data(), path.c_str()) != 0) {
    savedErrno = errno;
    ::unlink(name.data());
    error = path + ": cannot write: " + std::strerror(savedErrno);
    return false;
  }
  return true;
}

Array fromFloats(const std::vector<int64_t> &shape, const std::vector<float> &values) {
  Array a;
  a.type = ElementType::Float32;
  a.shape = shape;
  a.data.resize(values.size() * sizeof(float));
  std::memcpy(a.data.data(), values.data(), a.data.size());
  return a;
}

float halfToFloat(uint16_t bits, HalfType type) {
  return type == HalfType::BF16 ? attnc_cpu::bf16ToFloat(bits) : attnc_cpu::fp16ToFloat(bits);
}

uint16_t floatToHalf(float value, HalfType type) {
  return type == HalfType::BF16 ? attnc_cpu::floatToBf16(value) : attnc_cpu::floatToFp16(value);
}

bool toHalf(const Array &array, HalfType target, const std::string &name,
            std::vector<uint16_t> &out, std::string &error) {
  const int64_t n = array.numElements();
  out.resize(static_cast<size_t>(n));
  const char *targetName = target == HalfType::BF16 ? "bfloat16" : "float16";
  for (int64_t i = 0; i < n; ++i) {
    float source; // the element's exact value
    uint16_t bits;
    if (array.type == ElementType::Float32) {
      std::memcpy(&source, array.data.data() + 4 * i, 4);
    } else {
      uint16_t raw;
      std::memcpy(&raw, array.data.data() + 2 * i, 2);
      source = array.type == ElementType::Float16 ? attnc_cpu::fp16ToFloat(raw)
                                                  : attnc_cpu::bf16ToFloat(raw);
    }
    if (!std::isfinite(source)) {
      error = name + ": element " + indexString(array.shape, i) + " is " +
              (std::isnan(source) ? "nan"
               : source > 0       ? "inf"
                                  : "-inf") +
              "; inputs must be finite";
      return false;
    }
    bits = floatToHalf(source, target);
    if (!std::isfinite(halfToFloat(bits, target))) {
      error = name + ": element " + indexString(array.shape, i) + " (" + formatFloat(source) +
              ") is out of " + targetName + "'s range";
      return false;
    }
    out[static_cast<size_t>(i)] = bits;
  }
  return true;
}

} // namespace attnc::npy
