//===- SpecLoader.cpp - Load, validate and print attention specs ----------===//
//
// Implements Spec.h with nlohmann/json; specs/README.md is the language
// reference this file enforces.
//
// Locations. nlohmann's parser tells a SAX handler nothing about positions,
// so parsing goes through sax_parse with DocumentBuilder, a handler that
// builds the DOM and follows the lexer through the text with a TokenCursor:
// SAX events arrive in source order and each one stands for exactly one token
// the lexer has already accepted, so skipping whitespace and separators from
// the end of the previous token finds the first byte of the current one. The
// builder records, per JSON pointer, where each value starts and, for object
// members, where the key starts. Syntax errors take the byte position that
// nlohmann reports. Lines and columns are 1-based; columns count bytes.
//
// Validation collects every error it can find rather than stopping at the
// first one, but never reports a consequence of another error: a field of the
// wrong type is not also checked against its neighbours.
//
// No exception leaves this file: nlohmann throws, LLVM tools do not catch.
//
//===----------------------------------------------------------------------===//

#include "attnc/Spec/Spec.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>

namespace attnc::spec {

const char *dtypeName(DType t) { return t == DType::FP16 ? "fp16" : "bf16"; }

Location Spec::locationOf(const std::string &pointer) const {
  auto it = fieldLocs.find(pointer);
  return it == fieldLocs.end() ? loc : it->second;
}

std::string Diagnostic::format() const {
  std::string out = loc.file;
  if (loc.line > 0) {
    out += ":" + std::to_string(loc.line);
    if (loc.column > 0)
      out += ":" + std::to_string(loc.column);
  }
  out += severity == Severity::Error ? ": error: " : ": warning: ";
  if (!pointer.empty())
    out += pointer + ": ";
  return out + message;
}

namespace {

/// Keys keep their source order, so errors and toJson follow a stable order.
using Json = nlohmann::ordered_json;
using Layout = std::vector<std::vector<int64_t>>;

constexpr int64_t kFormatVersion = 1;
/// Deeper documents are rejected: validation recurses, and every value keeps
/// its JSON pointer.
constexpr size_t kMaxNesting = 512;

const std::vector<std::string> kSpecKeys = {"attnc",   "name",  "dtype", "head_dim", "heads",
                                            "seq_len", "scale", "mask",  "backward",
                                            "deterministic"};
const std::vector<std::string> kMaskKinds = {"full",         "causal", "window",   "global",
                                             "block_sparse", "union",  "intersect"};
const std::vector<std::string> kGlobalForms = {"tokens", "ranges", "stride", "runtime"};
const std::vector<std::string> kGlobalKeys = {"tokens", "ranges", "stride", "offset", "runtime"};
const std::vector<std::string> kBlockSparseForms = {"layout", "file", "bigbird"};
const std::vector<std::string> kBlockSparseKeys = {"block", "layout", "file", "bigbird"};
const std::vector<std::string> kBigBirdKeys = {"band", "random", "global", "seed"};

std::string join(const std::vector<std::string> &items) {
  std::string out;
  for (const std::string &item : items)
    out += (out.empty() ? "" : ", ") + item;
  return out;
}

/// `s` as a JSON string literal.
std::string quote(const std::string &s) {
  return Json(s).dump(-1, ' ', false, Json::error_handler_t::replace);
}

/// A key as a JSON pointer reference token (RFC 6901: ~ -> ~0, / -> ~1).
std::string escapePointerToken(const std::string &key) {
  std::string out;
  for (char c : key) {
    if (c == '~')
      out += "~0";
    else if (c == '/')
      out += "~1";
    else
      out += c;
  }
  return out;
}

//===----------------------------------------------------------------------===//
// Source text, located documents and the SAX builder
//===----------------------------------------------------------------------===//

/// The text of one file and the offsets where its lines start.
class SourceText {
public:
  SourceText(std::string file, std::string text) : file_(std::move(file)), text_(std::move(text)) {
    // nlohmann skips a UTF-8 byte order mark; columns count from after it.
    lineStarts_.push_back(text_.compare(0, 3, "\xEF\xBB\xBF") == 0 ? 3 : 0);
    for (size_t i = lineStarts_.front(); i < text_.size(); ++i)
      if (text_[i] == '\n')
        lineStarts_.push_back(i + 1);
  }

  const std::string &file() const { return file_; }
  const std::string &text() const { return text_; }
  /// The offset of the first byte the JSON lexer reads.
  size_t begin() const { return lineStarts_.front(); }

  /// The 1-based line and column of a byte offset (the end of the text maps
  /// to one past its last character).
  Location locate(size_t offset) const {
    offset = std::max(offset, begin());
    auto next = std::upper_bound(lineStarts_.begin(), lineStarts_.end(), offset);
    size_t line = static_cast<size_t>(next - lineStarts_.begin());
    return {file_, static_cast<int64_t>(line),
            static_cast<int64_t>(offset - lineStarts_[line - 1] + 1)};
  }

private:
  std::string file_;
  std::string text_;
  std::vector<size_t> lineStarts_;
};

/// A parsed JSON file with the location of every value and member key.
struct Document {
  SourceText source;
  Json root;
  std::map<std::string, Location> values;       ///< pointer -> start of the value
  std::map<std::string, Location> keys;         ///< member pointer -> start of its key
  std::map<std::string, std::string> floatText; ///< pointer -> a float as written
};

/// Walks the text token by token behind nlohmann's lexer. Only valid for
/// tokens the lexer has accepted, which is all a SAX handler ever sees.
class TokenCursor {
public:
  TokenCursor(const std::string &text, size_t begin) : text_(text), pos_(begin) {}

  /// The offset of the next token; moves past it.
  size_t next() {
    while (pos_ < text_.size() && isSpaceOrSeparator(text_[pos_]))
      ++pos_;
    size_t start = pos_;
    if (pos_ >= text_.size())
      return start;
    char c = text_[pos_++];
    if (c == '"') {
      while (pos_ < text_.size() && text_[pos_] != '"')
        pos_ += text_[pos_] == '\\' ? 2 : 1;
      ++pos_;
    } else if (c != '{' && c != '}' && c != '[' && c != ']') {
      // A number or a literal: it runs to the next delimiter.
      while (pos_ < text_.size() && !isSpaceOrSeparator(text_[pos_]) && text_[pos_] != ']' &&
             text_[pos_] != '}')
        ++pos_;
    }
    return start;
  }

private:
  static bool isSpaceOrSeparator(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == ',' || c == ':';
  }

  const std::string &text_;
  size_t pos_;
};

/// nlohmann's message without the exception tag, its own position (the
/// diagnostic carries one) and its echo of the bytes read.
std::string syntaxMessage(std::string what, const std::string &lastToken) {
  if (what.rfind("[json.exception.", 0) == 0)
    what.erase(0, what.find("] ") + 2);
  if (what.rfind("parse error", 0) == 0)
    what.erase(0, what.find(": ") + 2);
  std::string echo = "; last read: '" + lastToken + "'";
  if (size_t at = what.find(echo); at != std::string::npos)
    what.erase(at, echo.size());
  return what;
}

/// The SAX handler for sax_parse: builds Document::root and its location maps.
/// Duplicate keys are an error here, as the DOM could not hold both.
class DocumentBuilder {
public:
  DocumentBuilder(Document &doc, std::vector<Diagnostic> &diags)
      : doc_(doc), diags_(diags), cursor_(doc.source.text(), doc.source.begin()) {}

  bool null() {
    add(nullptr);
    return true;
  }
  bool boolean(bool v) {
    add(v);
    return true;
  }
  bool number_integer(Json::number_integer_t v) {
    add(v);
    return true;
  }
  bool number_unsigned(Json::number_unsigned_t v) {
    add(v);
    return true;
  }
  bool number_float(Json::number_float_t v, const Json::string_t &text) {
    doc_.floatText[add(v).first] = text;
    return true;
  }
  bool string(Json::string_t &v) {
    add(std::move(v));
    return true;
  }
  /// Part of the SAX interface; JSON text has no binary values.
  bool binary(Json::binary_t &v) {
    add(std::move(v));
    return true;
  }
  bool start_object(std::size_t) { return open(Json::object()); }
  bool start_array(std::size_t) { return open(Json::array()); }
  bool end_object() {
    close();
    return true;
  }
  bool end_array() {
    close();
    return true;
  }

  bool key(Json::string_t &k) {
    Frame &frame = frames_.back();
    Location loc = doc_.source.locate(cursor_.next());
    std::string pointer = frame.pointer + "/" + escapePointerToken(k);
    auto [first, inserted] = doc_.keys.emplace(pointer, loc);
    if (!inserted) {
      diags_.push_back({Severity::Error, loc, pointer,
                        "duplicate key " + quote(k) + " (first at " +
                            std::to_string(first->second.line) + ":" +
                            std::to_string(first->second.column) + ")"});
      return false;
    }
    frame.key = std::move(k);
    frame.memberPointer = std::move(pointer);
    return true;
  }

  bool parse_error(std::size_t position, const std::string &lastToken,
                   const nlohmann::detail::exception &e) {
    // `position` counts the bytes read, the offending one included. A number
    // overflow (out_of_range.406) is reported after its token: point at its
    // start instead.
    size_t offset = e.id == 406 ? position - lastToken.size() : position - 1;
    diags_.push_back(
        {Severity::Error, doc_.source.locate(offset), "", syntaxMessage(e.what(), lastToken)});
    return false;
  }

private:
  /// An open object or array.
  struct Frame {
    Json *container;
    std::string pointer;
    size_t nextIndex = 0;      ///< arrays: index of the next element
    std::string key;           ///< objects: the pending member's key
    std::string memberPointer; ///< objects: the pending member's pointer
  };

  /// Places the value of the current token; returns its pointer and slot.
  std::pair<std::string, Json *> add(Json value) {
    Location loc = doc_.source.locate(cursor_.next());
    std::string pointer;
    Json *slot;
    if (frames_.empty()) {
      slot = &doc_.root;
      *slot = std::move(value);
    } else if (Frame &frame = frames_.back(); frame.container->is_array()) {
      pointer = frame.pointer + "/" + std::to_string(frame.nextIndex++);
      frame.container->push_back(std::move(value));
      slot = &frame.container->back();
    } else {
      pointer = frame.memberPointer;
      slot = &((*frame.container)[frame.key] = std::move(value));
    }
    doc_.values[pointer] = loc;
    return {pointer, slot};
  }

  bool open(Json container) {
    if (frames_.size() == kMaxNesting) {
      diags_.push_back(
          {Severity::Error, doc_.source.locate(cursor_.next()), "",
           "arrays and objects nest deeper than " + std::to_string(kMaxNesting) + " levels"});
      return false;
    }
    auto [pointer, slot] = add(std::move(container));
    frames_.push_back({slot, pointer, 0, {}, {}});
    return true;
  }

  void close() {
    cursor_.next();
    frames_.pop_back();
  }

  Document &doc_;
  std::vector<Diagnostic> &diags_;
  TokenCursor cursor_;
  std::vector<Frame> frames_;
};

/// Parses doc.source into doc; a syntax error adds a diagnostic, returns false.
bool parseDocument(Document &doc, std::vector<Diagnostic> &diags) {
  // An empty document is reported here: nlohmann's wording for it differs
  // between versions.
  const std::string &text = doc.source.text();
  size_t first = text.find_first_not_of(" \t\r\n");
  if (first == std::string::npos) {
    diags.push_back({Severity::Error, doc.source.locate(text.size() ? text.size() - 1 : 0), "",
                     "the spec is empty: expected a JSON object"});
    return false;
  }
  DocumentBuilder builder(doc, diags);
  return Json::sax_parse(text, &builder);
}

/// The whole content of a file, or nullopt with the system's reason.
std::optional<std::string> readFile(const std::string &path, std::string &reason) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    reason = std::strerror(EISDIR);
    return std::nullopt;
  }
  std::FILE *file = std::fopen(path.c_str(), "rb");
  if (!file) {
    reason = std::strerror(errno);
    return std::nullopt;
  }
  std::string text;
  char buffer[1 << 16];
  while (size_t n = std::fread(buffer, 1, sizeof buffer, file))
    text.append(buffer, n);
  bool failed = std::ferror(file);
  int error = errno;
  std::fclose(file);
  if (failed) {
    reason = std::strerror(error);
    return std::nullopt;
  }
  return text;
}

//===----------------------------------------------------------------------===//
// Validation
//===----------------------------------------------------------------------===//

/// A value of a document with its JSON pointer.
struct Node {
  const Json *value;
  std::string pointer;

  Node member(const std::string &key) const {
    return {&value->at(key), pointer + "/" + escapePointerToken(key)};
  }
  Node element(size_t i) const { return {&(*value)[i], pointer + "/" + std::to_string(i)}; }
};

/// Checks a Document against the spec grammar and builds what it describes.
/// Each reader reports its own errors and returns nullopt on failure.
class Validator {
public:
  Validator(const Document &doc, std::vector<Diagnostic> &diags,
            std::optional<int64_t> seqLenKV = std::nullopt)
      : doc_(doc), diags_(diags), seqLenKV_(seqLenKV) {}

  /// The whole spec; nullopt if diags holds an error afterwards.
  std::optional<Spec> spec();

private:
  // Diagnostics.
  void report(Severity severity, Location loc, const std::string &pointer, std::string message) {
    diags_.push_back({severity, std::move(loc), pointer, std::move(message)});
  }
  void error(const Node &n, std::string message) {
    report(Severity::Error, doc_.values.at(n.pointer), n.pointer, std::move(message));
  }
  /// An error at the key of object member `n`.
  void keyError(const Node &n, std::string message) {
    report(Severity::Error, doc_.keys.at(n.pointer), n.pointer, std::move(message));
  }
  void warning(const Node &n, std::string message) {
    report(Severity::Warning, doc_.values.at(n.pointer), n.pointer, std::move(message));
  }

  // What a value is, for messages: `number 3.5`, `string "256"`, `array of 3 elements`.
  std::string numberText(const Node &n) const;
  std::string describe(const Node &n) const;

  // Readers.
  bool isObject(const Node &n);
  void checkKeys(const Node &n, const std::vector<std::string> &allowed);
  bool object(const Node &n, const std::vector<std::string> &allowed) {
    if (!isObject(n))
      return false;
    checkKeys(n, allowed);
    return true;
  }
  std::optional<Node> find(const Node &object, const std::string &key) const {
    if (!object.value->contains(key))
      return std::nullopt;
    return object.member(key);
  }
  std::optional<Node> required(const Node &object, const std::string &key);
  std::optional<int64_t> integer(const Node &n, int64_t min);
  std::optional<int64_t> requiredInteger(const Node &object, const std::string &key, int64_t min) {
    std::optional<Node> n = required(object, key);
    return n ? integer(*n, min) : std::nullopt;
  }
  std::optional<std::string> string(const Node &n);
  std::optional<std::string> oneForm(const Node &object, const std::vector<std::string> &forms,
                                     const std::string &what);

  // Masks.
  std::optional<mask::Mask> mask(const Node &n, LocatedMask &loc);
  std::optional<mask::Mask> global(const Node &body);
  std::optional<int64_t> tokenPosition(const Node &n, bool rangeEnd);
  std::optional<mask::Mask> blockSparse(const Node &body);
  std::optional<Layout> layout(const Node &n, std::optional<int64_t> block);
  std::optional<Layout> layoutFile(const Node &n, std::optional<int64_t> block);

  const Document &doc_;
  std::vector<Diagnostic> &diags_;
  std::optional<int64_t> seqLenKV_; ///< bounds token positions and block columns
};

std::string Validator::numberText(const Node &n) const {
  auto it = doc_.floatText.find(n.pointer);
  return it != doc_.floatText.end() ? it->second : n.value->dump();
}

std::string Validator::describe(const Node &n) const {
  const Json &v = *n.value;
  if (v.is_null())
    return "null";
  if (v.is_boolean())
    return std::string("boolean ") + (v.get<bool>() ? "true" : "false");
  if (v.is_number())
    return "number " + numberText(n);
  if (v.is_string())
    return "string " + quote(v.get<std::string>());
  if (v.is_array())
    return "array of " + std::to_string(v.size()) + (v.size() == 1 ? " element" : " elements");
  return "object";
}

bool Validator::isObject(const Node &n) {
  if (n.value->is_object())
    return true;
  error(n, "must be an object, got " + describe(n));
  return false;
}

void Validator::checkKeys(const Node &n, const std::vector<std::string> &allowed) {
  for (const auto &item : n.value->items())
    if (std::find(allowed.begin(), allowed.end(), item.key()) == allowed.end())
      keyError(n.member(item.key()), "unknown key " + quote(item.key()) + " (allowed: " +
                                         (allowed.empty() ? "none" : join(allowed)) + ")");
}

std::optional<Node> Validator::required(const Node &object, const std::string &key) {
  std::optional<Node> n = find(object, key);
  if (!n)
    error(object, "missing required key " + quote(key));
  return n;
}

std::optional<int64_t> Validator::integer(const Node &n, int64_t min) {
  const Json &v = *n.value;
  if (v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(INT64_MAX)) {
    error(n, "must be <= " + std::to_string(INT64_MAX) + ", got " + numberText(n));
    return std::nullopt;
  }
  if (v.is_number_integer()) {
    int64_t x = v.get<int64_t>();
    if (x >= min)
      return x;
    error(n, "must be >= " + std::to_string(min) + ", got " + std::to_string(x));
    return std::nullopt;
  }
  if (v.is_number_float()) {
    // nlohmann reads an integer literal beyond 64 bits as a float.
    std::string text = numberText(n);
    if (text.find_first_of(".eE") == std::string::npos)
      error(n, (text[0] == '-' ? "must be >= " + std::to_string(min)
                               : "must be <= " + std::to_string(INT64_MAX)) +
                   ", got " + text);
    else
      error(n, "must be an integer, got number " + text);
    return std::nullopt;
  }
  error(n, "must be an integer, got " + describe(n));
  return std::nullopt;
}

std::optional<std::string> Validator::string(const Node &n) {
  if (n.value->is_string())
    return n.value->get<std::string>();
  error(n, "must be a string, got " + describe(n));
  return std::nullopt;
}

/// The one key of `forms` that `object` has (`what` names the object in the
/// message when it has none or several).
std::optional<std::string> Validator::oneForm(const Node &object,
                                              const std::vector<std::string> &forms,
                                              const std::string &what) {
  std::vector<std::string> given;
  for (const auto &item : object.value->items())
    if (std::find(forms.begin(), forms.end(), item.key()) != forms.end())
      given.push_back(item.key());
  if (given.empty()) {
    error(object, "must have one of " + join(forms));
    return std::nullopt;
  }
  if (given.size() > 1) {
    keyError(object.member(given[1]), "cannot be combined with " + quote(given[0]) + " (" + what +
                                          " has exactly one of " + join(forms) + ")");
    return std::nullopt;
  }
  return given[0];
}

std::optional<Spec> Validator::spec() {
  const Node root{&doc_.root, ""};
  if (!isObject(root))
    return std::nullopt;
  // The version first: a spec of another version may have another grammar,
  // and checking it against this one would only add noise.
  std::optional<Node> version = required(root, "attnc");
  std::optional<int64_t> v = version ? integer(*version, INT64_MIN) : std::nullopt;
  if (!v)
    return std::nullopt;
  if (*v != kFormatVersion) {
    error(*version, "unsupported format version " + std::to_string(*v) +
                        " (supported: " + std::to_string(kFormatVersion) + ")");
    return std::nullopt;
  }
  checkKeys(root, kSpecKeys);

  Spec spec;
  spec.formatVersion = *v;
  spec.loc = doc_.values.at("");

  if (std::optional<Node> n = required(root, "name")) {
    if (std::optional<std::string> name = string(*n)) {
      if (name->empty())
        error(*n, "must not be empty");
      spec.name = *name;
    }
  }

  if (std::optional<Node> n = required(root, "dtype")) {
    const Json &dtype = *n->value;
    if (dtype == "bf16")
      spec.dtype = DType::BF16;
    else if (dtype == "fp16")
      spec.dtype = DType::FP16;
    else
      error(*n, "must be \"bf16\" or \"fp16\", got " +
                    (dtype.is_string() ? quote(dtype.get<std::string>()) : describe(*n)));
  }

  if (std::optional<Node> n = required(root, "head_dim")) {
    if (std::optional<int64_t> d = integer(*n, INT64_MIN)) {
      if (*d < 8 || *d > 256 || *d % 8 != 0)
        error(*n, "must be a multiple of 8 between 8 and 256, got " + std::to_string(*d));
      else
        spec.headDim = *d;
    }
  }

  if (std::optional<Node> n = required(root, "heads"); n && object(*n, {"query", "kv"})) {
    std::optional<int64_t> query = requiredInteger(*n, "query", 1);
    std::optional<int64_t> kv = requiredInteger(*n, "kv", 1);
    if (query && kv && *query % *kv != 0)
      error(n->member("query"), "must be a multiple of heads.kv (" + std::to_string(*kv) +
                                    "), got " + std::to_string(*query));
    spec.queryHeads = query.value_or(0);
    spec.kvHeads = kv.value_or(0);
  }

  if (std::optional<Node> n = find(root, "seq_len"); n && object(*n, {"q", "kv"})) {
    spec.seqLenQ = requiredInteger(*n, "q", 1);
    // kv may be omitted: self-attention, kv = q.
    std::optional<Node> kv = find(*n, "kv");
    spec.seqLenKV = kv ? integer(*kv, 1) : spec.seqLenQ;
  }

  if (std::optional<Node> n = find(root, "scale")) {
    if (!n->value->is_number()) {
      error(*n, "must be a number, got " + describe(*n));
    } else if (double scale = n->value->get<double>(); !(scale > 0)) {
      // The parser already rejects numbers that overflow to infinity.
      error(*n, "must be > 0, got " + numberText(*n));
    } else {
      spec.scale = scale;
      spec.scaleGiven = true;
    }
  }
  if (!spec.scaleGiven && spec.headDim > 0)
    spec.scale = 1.0 / std::sqrt(static_cast<double>(spec.headDim));

  if (std::optional<Node> n = find(root, "backward")) {
    if (n->value->is_boolean())
      spec.backward = n->value->get<bool>();
    else
      error(*n, "must be a boolean, got " + describe(*n));
  }
  if (std::optional<Node> n = find(root, "deterministic")) {
    if (!n->value->is_boolean())
      error(*n, "must be a boolean, got " + describe(*n));
    else if ((spec.deterministic = n->value->get<bool>()) && !spec.backward)
      warning(*n, "has no effect without \"backward\": true");
  }

  seqLenKV_ = spec.seqLenKV;
  if (std::optional<Node> n = required(root, "mask"))
    if (std::optional<mask::Mask> m = mask(*n, spec.maskLoc))
      spec.mask = std::move(*m);

  if (std::any_of(diags_.begin(), diags_.end(),
                  [](const Diagnostic &d) { return d.severity == Severity::Error; }))
    return std::nullopt;
  spec.fieldLocs = doc_.values;
  return spec;
}

std::optional<mask::Mask> Validator::mask(const Node &n, LocatedMask &loc) {
  using mask::Mask;
  loc.loc = doc_.values.at(n.pointer);
  loc.pointer = n.pointer;
  if (!isObject(n))
    return std::nullopt;
  if (n.value->size() != 1) {
    error(n, "must have exactly one key, the mask kind (one of " + join(kMaskKinds) + "), got " +
                 std::to_string(n.value->size()));
    return std::nullopt;
  }
  const std::string &kind = n.value->begin().key();
  const Node body = n.member(kind);

  if (kind == "full" || kind == "causal") {
    if (!object(body, {}))
      return std::nullopt;
    return kind == "full" ? Mask::full() : Mask::causal();
  }
  if (kind == "window") {
    if (!object(body, {"left", "right", "dilation"}))
      return std::nullopt;
    std::optional<int64_t> left = requiredInteger(body, "left", 0);
    std::optional<int64_t> right = requiredInteger(body, "right", 0);
    std::optional<Node> d = find(body, "dilation");
    std::optional<int64_t> dilation = d ? integer(*d, 1) : 1;
    if (!left || !right || !dilation)
      return std::nullopt;
    return Mask::window(*left, *right, *dilation);
  }
  if (kind == "global")
    return global(body);
  if (kind == "block_sparse")
    return blockSparse(body);
  if (kind == "union" || kind == "intersect") {
    if (!body.value->is_array()) {
      error(body, "must be an array of masks, got " + describe(body));
      return std::nullopt;
    }
    if (body.value->empty()) {
      error(body, "must list at least one mask");
      return std::nullopt;
    }
    std::vector<Mask> children;
    for (size_t i = 0; i < body.value->size(); ++i) {
      loc.children.emplace_back();
      if (std::optional<Mask> child = mask(body.element(i), loc.children.back()))
        children.push_back(std::move(*child));
    }
    if (children.size() != body.value->size())
      return std::nullopt;
    return kind == "union" ? Mask::unionOf(std::move(children))
                           : Mask::intersectOf(std::move(children));
  }
  keyError(body, "unknown mask kind " + quote(kind) + " (allowed: " + join(kMaskKinds) + ")");
  return std::nullopt;
}

/// A global token position (or, with rangeEnd, the exclusive end of a range):
/// >= 0 (>= 1), and < seq_len.kv (<= seq_len.kv) when the spec gives one.
std::optional<int64_t> Validator::tokenPosition(const Node &n, bool rangeEnd) {
  std::optional<int64_t> v = integer(n, rangeEnd ? 1 : 0);
  if (v && seqLenKV_ && (rangeEnd ? *v > *seqLenKV_ : *v >= *seqLenKV_)) {
    error(n, std::string("must be ") + (rangeEnd ? "<=" : "<") + " seq_len.kv (" +
                 std::to_string(*seqLenKV_) + "), got " + std::to_string(*v));
    return std::nullopt;
  }
  return v;
}

std::optional<mask::Mask> Validator::global(const Node &body) {
  using mask::Mask;
  if (!object(body, kGlobalKeys))
    return std::nullopt;
  std::optional<std::string> form = oneForm(body, kGlobalForms, "a global mask");
  if (!form)
    return std::nullopt;
  std::optional<Node> offset = find(body, "offset");
  if (offset && *form != "stride") {
    keyError(*offset, "is only allowed with \"stride\"");
    return std::nullopt;
  }
  const Node n = body.member(*form);

  if (*form == "tokens") {
    if (!n.value->is_array()) {
      error(n, "must be an array of token positions, got " + describe(n));
      return std::nullopt;
    }
    std::vector<int64_t> tokens;
    for (size_t i = 0; i < n.value->size(); ++i)
      if (std::optional<int64_t> t = tokenPosition(n.element(i), false))
        tokens.push_back(*t);
    if (tokens.size() != n.value->size())
      return std::nullopt;
    for (int64_t dup : mask::duplicateTokens(tokens)) {
      auto first = std::find(tokens.begin(), tokens.end(), dup);
      auto second = std::find(first + 1, tokens.end(), dup);
      warning(n.element(static_cast<size_t>(second - tokens.begin())),
              "duplicate global token " + std::to_string(dup) + " (first at index " +
                  std::to_string(first - tokens.begin()) + ")");
    }
    return Mask::globalTokens(std::move(tokens));
  }

  if (*form == "ranges") {
    if (!n.value->is_array()) {
      error(n, "must be an array of [begin, end] pairs, got " + describe(n));
      return std::nullopt;
    }
    std::vector<std::pair<int64_t, int64_t>> ranges;
    for (size_t i = 0; i < n.value->size(); ++i) {
      const Node range = n.element(i);
      if (!range.value->is_array() || range.value->size() != 2) {
        error(range, "must be a [begin, end] pair, got " + describe(range));
        continue;
      }
      std::optional<int64_t> begin = tokenPosition(range.element(0), false);
      std::optional<int64_t> end = tokenPosition(range.element(1), true);
      if (begin && end && *end <= *begin) {
        error(range.element(1),
              "must be > begin (" + std::to_string(*begin) + "), got " + std::to_string(*end));
        continue;
      }
      if (begin && end)
        ranges.emplace_back(*begin, *end);
    }
    if (ranges.size() != n.value->size())
      return std::nullopt;
    return Mask::globalRanges(std::move(ranges));
  }

  if (*form == "stride") {
    std::optional<int64_t> stride = integer(n, 1);
    std::optional<int64_t> first = offset ? tokenPosition(*offset, false) : 0;
    if (!stride || !first)
      return std::nullopt;
    return Mask::globalStride(*stride, *first);
  }

  // runtime: the tokens come at launch, at most `max` of them.
  if (!object(n, {"max"}))
    return std::nullopt;
  std::optional<int64_t> max = requiredInteger(n, "max", 1);
  if (!max)
    return std::nullopt;
  return Mask::globalRuntime(*max);
}

std::optional<mask::Mask> Validator::blockSparse(const Node &body) {
  using mask::Mask;
  if (!object(body, kBlockSparseKeys))
    return std::nullopt;
  std::optional<int64_t> block = requiredInteger(body, "block", 1);
  std::optional<std::string> form = oneForm(body, kBlockSparseForms, "a block_sparse mask");
  if (!form)
    return std::nullopt;
  const Node n = body.member(*form);

  if (*form == "bigbird") {
    if (!object(n, kBigBirdKeys))
      return std::nullopt;
    std::optional<int64_t> band = requiredInteger(n, "band", 0);
    std::optional<int64_t> random = requiredInteger(n, "random", 0);
    std::optional<int64_t> global = requiredInteger(n, "global", 0);
    std::optional<int64_t> seed = requiredInteger(n, "seed", 0);
    if (!block || !band || !random || !global || !seed)
      return std::nullopt;
    mask::BigBirdParams params;
    params.block = *block;
    params.band = *band;
    params.random = *random;
    params.global = *global;
    params.seed = static_cast<uint64_t>(*seed);
    return Mask::bigBird(params);
  }

  std::optional<Layout> rows = *form == "layout" ? layout(n, block) : layoutFile(n, block);
  if (!block || !rows)
    return std::nullopt;
  return Mask::blockSparse(*block, std::move(*rows));
}

std::optional<Layout> Validator::layout(const Node &n, std::optional<int64_t> block) {
  if (!n.value->is_array()) {
    error(n, "must be an array of rows (arrays of key block columns), got " + describe(n));
    return std::nullopt;
  }
  // Query positions, like keys, lie in [0, seq_len.kv): rows and columns both
  // index the ceil(seq_len.kv / block) blocks.
  std::optional<int64_t> blocks;
  if (block && seqLenKV_)
    blocks = *seqLenKV_ / *block + (*seqLenKV_ % *block != 0);
  bool ok = true;
  if (blocks && static_cast<int64_t>(n.value->size()) > *blocks) {
    error(n, "must have at most ceil(seq_len.kv / block) = " + std::to_string(*blocks) +
                 " rows, got " + std::to_string(n.value->size()));
    ok = false;
  }
  Layout rows;
  for (size_t r = 0; r < n.value->size(); ++r) {
    const Node row = n.element(r);
    if (!row.value->is_array()) {
      error(row, "must be an array of key block columns, got " + describe(row));
      ok = false;
      continue;
    }
    std::vector<int64_t> columns;
    for (size_t c = 0; c < row.value->size(); ++c) {
      const Node column = row.element(c);
      std::optional<int64_t> k = integer(column, 0);
      if (k && blocks && *k >= *blocks) {
        error(column, "must be < ceil(seq_len.kv / block) = " + std::to_string(*blocks) + ", got " +
                          std::to_string(*k));
        k.reset();
      }
      if (k)
        columns.push_back(*k);
      else
        ok = false;
    }
    rows.push_back(std::move(columns));
  }
  if (!ok)
    return std::nullopt;
  return rows;
}

/// A layout read from the file that `n` names, relative to the directory of
/// the spec. Errors inside it name that file and pointers into it.
std::optional<Layout> Validator::layoutFile(const Node &n, std::optional<int64_t> block) {
  std::optional<std::string> name = string(n);
  if (!name)
    return std::nullopt;
  if (name->empty()) {
    error(n, "must not be empty");
    return std::nullopt;
  }
  std::string path = (std::filesystem::path(doc_.source.file()).parent_path() / *name).string();
  std::string reason;
  std::optional<std::string> text = readFile(path, reason);
  if (!text) {
    error(n, "cannot read layout file " + quote(path) + ": " + reason);
    return std::nullopt;
  }
  Document file{SourceText(path, std::move(*text)), {}, {}, {}, {}};
  if (!parseDocument(file, diags_))
    return std::nullopt;
  Validator inner(file, diags_, seqLenKV_);
  const Node root{&file.root, ""};
  if (root.value->is_object()) {
    inner.checkKeys(root, {"layout"});
    std::optional<Node> rows = inner.required(root, "layout");
    return rows ? inner.layout(*rows, block) : std::nullopt;
  }
  if (!root.value->is_array()) {
    inner.error(root, "must be a layout (an array of rows) or an object {\"layout\": [...]}, got " +
                          inner.describe(root));
    return std::nullopt;
  }
  return inner.layout(root, block);
}

//===----------------------------------------------------------------------===//
// Printing
//===----------------------------------------------------------------------===//

/// {key: value}.
Json single(const char *key, Json value) {
  Json object = Json::object();
  object[key] = std::move(value);
  return object;
}

/// A mask in the input grammar, every optional field explicit.
Json maskToJson(const mask::Mask &m) {
  using mask::Kind;
  switch (m.kind) {
  case Kind::Empty:
    // The grammar has no empty mask; an empty token list allows no pair.
    return single("global", single("tokens", Json::array()));
  case Kind::Full:
    return single("full", Json::object());
  case Kind::Causal:
    return single("causal", Json::object());
  case Kind::Window: {
    Json w = Json::object();
    w["left"] = m.left;
    w["right"] = m.right;
    w["dilation"] = m.dilation;
    return single("window", std::move(w));
  }
  case Kind::GlobalTokens:
    return single("global", single("tokens", m.tokens));
  case Kind::GlobalRanges: {
    Json ranges = Json::array();
    for (const auto &[begin, end] : m.ranges)
      ranges.push_back(Json::array({begin, end}));
    return single("global", single("ranges", std::move(ranges)));
  }
  case Kind::GlobalStride: {
    Json g = Json::object();
    g["stride"] = m.stride;
    g["offset"] = m.offset;
    return single("global", std::move(g));
  }
  case Kind::GlobalRuntime:
    return single("global", single("runtime", single("max", m.runtimeMax)));
  case Kind::BlockSparse: {
    Json b = Json::object();
    b["block"] = m.block;
    b["layout"] = m.layout;
    return single("block_sparse", std::move(b));
  }
  case Kind::BigBird: {
    Json params = Json::object();
    params["band"] = m.bigbird.band;
    params["random"] = m.bigbird.random;
    params["global"] = m.bigbird.global;
    params["seed"] = m.bigbird.seed;
    Json b = Json::object();
    b["block"] = m.bigbird.block;
    b["bigbird"] = std::move(params);
    return single("block_sparse", std::move(b));
  }
  case Kind::Union:
  case Kind::Intersect: {
    Json children = Json::array();
    for (const mask::Mask &child : m.children)
      children.push_back(maskToJson(child));
    return single(m.kind == Kind::Union ? "union" : "intersect", std::move(children));
  }
  }
  return nullptr;
}

} // namespace

LoadResult loadSpecFromString(const std::string &text, const std::string &fileName) {
  LoadResult result;
  try {
    Document doc{SourceText(fileName, text), {}, {}, {}, {}};
    if (parseDocument(doc, result.diagnostics))
      result.spec = Validator(doc, result.diagnostics).spec();
  } catch (const std::exception &e) {
    result.spec.reset();
    result.diagnostics.push_back(
        {Severity::Error, Location{fileName}, "", std::string("internal error: ") + e.what()});
  }
  return result;
}

LoadResult loadSpecFromFile(const std::string &path) {
  LoadResult result;
  try {
    std::string reason;
    if (std::optional<std::string> text = readFile(path, reason))
      return loadSpecFromString(*text, path);
    result.diagnostics.push_back(
        {Severity::Error, Location{path}, "", "cannot read spec file: " + reason});
  } catch (const std::exception &e) {
    result.diagnostics.push_back(
        {Severity::Error, Location{path}, "", std::string("internal error: ") + e.what()});
  }
  return result;
}

std::string toJson(const Spec &spec) {
  Json j = Json::object();
  j["attnc"] = spec.formatVersion;
  j["name"] = spec.name;
  j["dtype"] = dtypeName(spec.dtype);
  j["head_dim"] = spec.headDim;
  j["heads"] = Json::object();
  j["heads"]["query"] = spec.queryHeads;
  j["heads"]["kv"] = spec.kvHeads;
  if (spec.seqLenQ || spec.seqLenKV) {
    j["seq_len"] = Json::object();
    if (spec.seqLenQ)
      j["seq_len"]["q"] = *spec.seqLenQ;
    if (spec.seqLenKV)
      j["seq_len"]["kv"] = *spec.seqLenKV;
  }
  j["scale"] = spec.scale;
  j["mask"] = maskToJson(spec.mask);
  j["backward"] = spec.backward;
  if (spec.deterministic)
    j["deterministic"] = true;
  return j.dump(-1, ' ', false, Json::error_handler_t::replace);
}

} // namespace attnc::spec
