//===- Output.cpp - All-or-nothing output files ---------------------------===//

#include "attnc/Compiler/Output.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/raw_ostream.h"

namespace attnc {

bool writeFileAtomically(const std::string &path, const std::string &contents,
                         std::string &error) {
  if (path == "-") {
    llvm::outs() << contents;
    llvm::outs().flush();
    return true;
  }
  if (llvm::sys::fs::is_directory(path)) {
    error = path + ": cannot write output: is a directory";
    return false;
  }
  llvm::SmallString<256> dir(path);
  llvm::sys::path::remove_filename(dir);
  if (dir.empty())
    dir = ".";
  llvm::SmallString<256> model(dir);
  llvm::sys::path::append(model, "." + llvm::sys::path::filename(path).str() + ".tmp-%%%%%%");

  int fd = -1;
  llvm::SmallString<256> tmp;
  if (std::error_code ec = llvm::sys::fs::createUniqueFile(model, fd, tmp)) {
    error = path + ": cannot write output: " + ec.message();
    return false;
  }
  {
    llvm::raw_fd_ostream os(fd, /*shouldClose=*/true);
    os << contents;
    os.flush();
    if (os.has_error()) {
      error = path + ": cannot write output: " + os.error().message();
      os.clear_error();
      llvm::sys::fs::remove(tmp);
      return false;
    }
  }
  if (std::error_code ec = llvm::sys::fs::rename(tmp, path)) {
    error = path + ": cannot write output: " + ec.message();
    llvm::sys::fs::remove(tmp);
    return false;
  }
  return true;
}

} // namespace attnc
