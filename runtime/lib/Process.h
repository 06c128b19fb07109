//===- Process.h - Running the kernel compiler ------------------*- C++ -*-===//
//
// Runs a command with posix_spawnp (safe in multithreaded hosts), in a given
// working directory, with standard input from /dev/null and standard output
// and error captured together.
//
//===----------------------------------------------------------------------===//

#ifndef ATTNC_RUNTIME_LIB_PROCESS_H
#define ATTNC_RUNTIME_LIB_PROCESS_H

#include <string>
#include <vector>

namespace attnc::runtime {

/// What became of a command.
struct ProcessResult {
  int spawnError = 0; ///< errno if the command could not be started, else 0
  int waitStatus = 0; ///< waitpid's status once it ran
  std::string output; ///< standard output and error, interleaved

  bool succeeded() const;
  /// "exit status N" or "killed by signal N" (empty when it could not start).
  std::string statusText() const;
};

/// Runs argv[0] (searched in PATH) with `argv` in directory `cwd` ("": ours).
ProcessResult runProcess(const std::vector<std::string> &argv, const std::string &cwd);

/// The command line for messages, arguments with spaces or quotes quoted.
std::string commandLine(const std::vector<std::string> &argv);

} // namespace attnc::runtime

#endif // ATTNC_RUNTIME_LIB_PROCESS_H
