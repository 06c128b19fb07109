//===- CommandLine.cpp - attnc-run's flags and JSON output ----------------===//

#include "CommandLine.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>

namespace attnc::cli {

namespace {

/// Parses all of `text` as a base-10 integer; false on anything else.
bool parseInteger(const std::string &text, int64_t &value) {
  if (text.empty())
    return false;
  errno = 0;
  char *end = nullptr;
  long long parsed = std::strtoll(text.c_str(), &end, 10);
  if (errno != 0 || *end != '\0')
    return false;
  value = parsed;
  return true;
}

/// "--name".
std::string dashed(const std::string &name) { return "--" + name; }

} // namespace

Parser::Parser(std::string tool, std::string overview, std::string version)
    : tool_(std::move(tool)), overview_(std::move(overview)), version_(std::move(version)) {}

void Parser::addSwitch(const std::string &name, bool &value, const std::string &help, bool hidden) {
  flags_.push_back({Flag::Kind::Switch, name, "", help, hidden, &value, 0});
}

void Parser::addText(const std::string &name, const std::string &valueName, std::string &value,
                     const std::string &help, bool hidden) {
  flags_.push_back({Flag::Kind::Text, name, valueName, help, hidden, &value, 0});
}

void Parser::addInteger(const std::string &name, const std::string &valueName, int64_t &value,
                        const std::string &help) {
  flags_.push_back({Flag::Kind::Integer, name, valueName, help, false, &value, 0});
}

void Parser::addUnsigned(const std::string &name, const std::string &valueName, uint64_t &value,
                         const std::string &help) {
  flags_.push_back({Flag::Kind::Unsigned, name, valueName, help, false, &value, 0});
}

void Parser::setPositional(const std::string &name, std::string &value) {
  positionalName_ = name;
  positional_ = &value;
}

Flag *Parser::find(const std::string &name) {
  for (Flag &flag : flags_)
    if (flag.name == name)
      return &flag;
  return nullptr;
}

bool Parser::given(const std::string &name) const {
  for (const Flag &flag : flags_)
    if (flag.name == name)
      return flag.occurrences > 0;
  return false;
}

std::string Parser::assign(Flag &flag, const std::string &value, bool hasValue) {
  if (++flag.occurrences > 1)
    return dashed(flag.name) + ": given more than once";
  switch (flag.kind) {
  case Flag::Kind::Switch: {
    bool &out = *static_cast<bool *>(flag.storage);
    if (!hasValue || value == "true" || value == "1") {
      out = true;
    } else if (value == "false" || value == "0") {
      out = false;
    } else {
      return dashed(flag.name) + "=" + value + ": expected true or false";
    }
    return "";
  }
  case Flag::Kind::Text:
    *static_cast<std::string *>(flag.storage) = value;
    return "";
  case Flag::Kind::Integer: {
    int64_t parsed = 0;
    if (!parseInteger(value, parsed))
      return dashed(flag.name) + "=" + value + ": expected an integer";
    *static_cast<int64_t *>(flag.storage) = parsed;
    return "";
  }
  case Flag::Kind::Unsigned: {
    int64_t parsed = 0;
    if (!parseInteger(value, parsed) || parsed < 0)
      return dashed(flag.name) + "=" + value + ": expected a non-negative integer";
    *static_cast<uint64_t *>(flag.storage) = static_cast<uint64_t>(parsed);
    return "";
  }
  }
  return "";
}

std::string Parser::parse(int argc, char **argv, std::ostream &out) {
  bool positionalOnly = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (positionalOnly || arg.size() < 2 || arg[0] != '-') {
      if (!positional_)
        return "unexpected argument '" + arg + "'";
      if (!positional_->empty())
        return "unexpected argument '" + arg + "': only one " + positionalName_ + " is taken";
      *positional_ = arg;
      continue;
    }
    if (arg == "--") {
      positionalOnly = true;
      continue;
    }
    const std::string body = arg.substr(arg[1] == '-' ? 2 : 1);
    const size_t equals = body.find('=');
    const std::string name = body.substr(0, equals);
    const bool hasValue = equals != std::string::npos;
    const std::string inlineValue = hasValue ? body.substr(equals + 1) : "";
    if (name == "help" || name == "h") {
      printHelp(out);
      exitNow_ = true;
      return "";
    }
    if (name == "version") {
      out << version_ << "\n";
      exitNow_ = true;
      return "";
    }
    Flag *flag = find(name);
    if (!flag)
      return "unknown flag '" + arg + "' (" + tool_ + " --help lists them)";
    if (flag->kind == Flag::Kind::Switch || hasValue) {
      if (std::string error = assign(*flag, inlineValue, hasValue); !error.empty())
        return error;
      continue;
    }
    if (i + 1 >= argc)
      return dashed(name) + ": needs a value (" + dashed(name) + "=" + flag->valueName + ")";
    if (std::string error = assign(*flag, argv[++i], true); !error.empty())
      return error;
  }
  if (positional_ && positional_->empty())
    return "no " + positionalName_ + " given (" + tool_ + " --help)";
  return "";
}

void Parser::printHelp(std::ostream &out) const {
  out << "OVERVIEW: " << overview_ << "\n";
  out << "USAGE: " << tool_ << " [options] " << positionalName_ << "\n\n";
  out << "OPTIONS:\n";
  std::vector<const Flag *> shown;
  size_t width = std::string("--version").size();
  auto label = [](const Flag &flag) {
    return dashed(flag.name) + (flag.valueName.empty() ? "" : "=<" + flag.valueName + ">");
  };
  for (const Flag &flag : flags_) {
    if (flag.hidden)
      continue;
    shown.push_back(&flag);
    width = std::max(width, label(flag).size());
  }
  std::sort(shown.begin(), shown.end(),
            [](const Flag *a, const Flag *b) { return a->name < b->name; });
  auto line = [&](const std::string &left, const std::string &help) {
    out << "  " << left << std::string(width - left.size(), ' ') << " - " << help << "\n";
  };
  for (const Flag *flag : shown)
    line(label(*flag), flag->help);
  line("--help", "Print this text");
  line("--version", "Print the version");
}

//===----------------------------------------------------------------------===//
// JsonWriter
//===----------------------------------------------------------------------===//

std::string jsonQuote(const std::string &text) {
  std::string quoted = "\"";
  for (unsigned char c : text) {
    switch (c) {
    case '"':
      quoted += "\\\"";
      break;
    case '\\':
      quoted += "\\\\";
      break;
    case '\b':
      quoted += "\\b";
      break;
    case '\f':
      quoted += "\\f";
      break;
    case '\n':
      quoted += "\\n";
      break;
    case '\r':
      quoted += "\\r";
      break;
    case '\t':
      quoted += "\\t";
      break;
    default:
      if (c < 0x20) {
        char buf[8];
        std::snprintf(buf, sizeof buf, "\\u%04x", c);
        quoted += buf;
      } else {
        quoted += static_cast<char>(c);
      }
    }
  }
  return quoted + "\"";
}

void JsonWriter::newline() {
  out_ << "\n" << std::string(static_cast<size_t>(depth_ * indent_), ' ');
}

void JsonWriter::beginValue() {
  if (afterKey_) {
    afterKey_ = false;
    return;
  }
  if (depth_ > 0) {
    if (!first_)
      out_ << ",";
    newline();
  }
  first_ = false;
}

void JsonWriter::beginMember(const std::string &key) {
  if (!first_)
    out_ << ",";
  newline();
  first_ = false;
  out_ << jsonQuote(key) << ": ";
  afterKey_ = true;
}

void JsonWriter::open(char bracket) {
  beginValue();
  out_ << bracket;
  ++depth_;
  first_ = true;
}

void JsonWriter::close(char bracket) {
  --depth_;
  if (!first_)
    newline();
  out_ << bracket;
  first_ = false;
}

void JsonWriter::object(const std::function<void()> &members) {
  open('{');
  members();
  close('}');
}

void JsonWriter::array(const std::function<void()> &elements) {
  open('[');
  elements();
  close(']');
}

void JsonWriter::attributeObject(const std::string &key, const std::function<void()> &members) {
  beginMember(key);
  object(members);
}

void JsonWriter::attributeArray(const std::string &key, const std::function<void()> &elements) {
  beginMember(key);
  array(elements);
}

void JsonWriter::attribute(const std::string &key, const std::string &text) {
  beginMember(key);
  value(text);
}

void JsonWriter::attribute(const std::string &key, const char *text) {
  attribute(key, std::string(text));
}

void JsonWriter::attribute(const std::string &key, int64_t number) {
  beginMember(key);
  value(number);
}

void JsonWriter::attribute(const std::string &key, double number) {
  beginMember(key);
  value(number);
}

void JsonWriter::attribute(const std::string &key, bool flag) {
  beginMember(key);
  beginValue();
  out_ << (flag ? "true" : "false");
}

void JsonWriter::attributeNull(const std::string &key) {
  beginMember(key);
  beginValue();
  out_ << "null";
}

void JsonWriter::value(const std::string &text) {
  beginValue();
  out_ << jsonQuote(text);
}

void JsonWriter::value(int64_t number) {
  beginValue();
  out_ << number;
}

void JsonWriter::value(double number) {
  beginValue();
  if (!std::isfinite(number)) {
    out_ << "null";
    return;
  }
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.*g", std::numeric_limits<double>::max_digits10, number);
  out_ << buf;
}

} // namespace attnc::cli
