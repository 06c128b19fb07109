//===- CommandLine.h - attnc-run's flags and JSON output --------*- C++ -*-===//
//
// attnc-run builds without MLIR and LLVM (the GPU machine has neither), so it
// carries its own small command-line parser and JSON writer, which accept and
// print what LLVM's cl:: options and json::OStream do for the flags and
// objects attnc-run has:
//
//   attnc-run SPEC --seq-len 129,200 --check      (-flag and --flag alike;
//   attnc-run SPEC --seq-len=129,200 -check        values after '=' or apart)
//
// Errors are messages naming the flag; no exception leaves this interface.
//
//===----------------------------------------------------------------------===//

#ifndef ATTNC_TOOLS_ATTNC_RUN_COMMANDLINE_H
#define ATTNC_TOOLS_ATTNC_RUN_COMMANDLINE_H

#include <cstdint>
#include <functional>
#include <ostream>
#include <string>
#include <vector>

namespace attnc::cli {

/// One flag and where its value goes.
struct Flag {
  enum class Kind { Switch, Text, Integer, Unsigned };
  Kind kind = Kind::Switch;
  std::string name;      ///< "seq-len"
  std::string valueName; ///< "NQ[,NKV]" in the help; empty for switches
  std::string help;
  bool hidden = false; ///< left out of --help
  void *storage = nullptr;
  int occurrences = 0;
};

/// A command line: flags, one positional argument, --help and --version.
class Parser {
public:
  Parser(std::string tool, std::string overview, std::string version);

  void addSwitch(const std::string &name, bool &value, const std::string &help,
                 bool hidden = false);
  void addText(const std::string &name, const std::string &valueName, std::string &value,
               const std::string &help, bool hidden = false);
  void addInteger(const std::string &name, const std::string &valueName, int64_t &value,
                  const std::string &help);
  void addUnsigned(const std::string &name, const std::string &valueName, uint64_t &value,
                   const std::string &help);
  /// The one positional argument (required).
  void setPositional(const std::string &name, std::string &value);

  /// Parses the arguments. Returns "" on success or a message naming the
  /// argument at fault. After --help or --version, exitNow() is true and the
  /// text is printed on `out`.
  std::string parse(int argc, char **argv, std::ostream &out);
  bool exitNow() const { return exitNow_; }

  /// Whether a flag appeared on the command line.
  bool given(const std::string &name) const;

  void printHelp(std::ostream &out) const;

private:
  Flag *find(const std::string &name);
  std::string assign(Flag &flag, const std::string &value, bool hasValue);

  std::string tool_, overview_, version_;
  std::vector<Flag> flags_;
  std::string positionalName_;
  std::string *positional_ = nullptr;
  bool exitNow_ = false;
};

/// JSON text in the layout of llvm::json::OStream with an indent of 2:
/// one member or element per line, "[]" and "{}" when empty, integers as
/// integers, doubles as "%.17g" (so 2.0 is "2"), non-finite doubles as null.
class JsonWriter {
public:
  explicit JsonWriter(std::ostream &out, int indent = 2) : out_(out), indent_(indent) {}

  void object(const std::function<void()> &members);
  void array(const std::function<void()> &elements);
  void attributeObject(const std::string &key, const std::function<void()> &members);
  void attributeArray(const std::string &key, const std::function<void()> &elements);

  void attribute(const std::string &key, const std::string &value);
  void attribute(const std::string &key, const char *value);
  void attribute(const std::string &key, int64_t value);
  void attribute(const std::string &key, int value) { attribute(key, int64_t{value}); }
  void attribute(const std::string &key, double value);
  void attribute(const std::string &key, bool value);
  void attributeNull(const std::string &key);

  void value(const std::string &value);
  void value(int64_t value);
  void value(double value);

private:
  void beginValue();
  void beginMember(const std::string &key);
  void open(char bracket);
  void close(char bracket);
  void newline();

  std::ostream &out_;
  int indent_;
  int depth_ = 0;
  bool first_ = true;     ///< nothing written yet in the current container
  bool afterKey_ = false; ///< a key was written, its value comes next
};

/// `text` as a JSON string literal, quotes included.
std::string jsonQuote(const std::string &text);

} // namespace attnc::cli

#endif // ATTNC_TOOLS_ATTNC_RUN_COMMANDLINE_H
