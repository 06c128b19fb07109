//===- Process.cpp - Running the kernel compiler --------------------------===//

#include "Process.h"

#include <cerrno>
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

namespace attnc::runtime {

bool ProcessResult::succeeded() const {
  return spawnError == 0 && WIFEXITED(waitStatus) && WEXITSTATUS(waitStatus) == 0;
}

std::string ProcessResult::statusText() const {
  if (spawnError != 0)
    return "";
  if (WIFEXITED(waitStatus))
    return "exit status " + std::to_string(WEXITSTATUS(waitStatus));
  if (WIFSIGNALED(waitStatus))
    return "killed by signal " + std::to_string(WTERMSIG(waitStatus));
  return "wait status " + std::to_string(waitStatus);
}

ProcessResult runProcess(const std::vector<std::string> &argv, const std::string &cwd) {
  ProcessResult result;
  int fds[2];
  // Close-on-exec, so that commands spawned by other threads do not inherit
  // the write end and keep our read from seeing end-of-file.
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    result.spawnError = errno;
    return result;
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, fds[1], 1);
  posix_spawn_file_actions_adddup2(&actions, fds[1], 2);
  if (!cwd.empty())
    posix_spawn_file_actions_addchdir_np(&actions, cwd.c_str());

  std::vector<char *> args;
  for (const std::string &arg : argv)
    args.push_back(const_cast<char *>(arg.c_str()));
  args.push_back(nullptr);
  pid_t pid = 0;
  result.spawnError = posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(fds[1]);
  if (result.spawnError == 0) {
    char buffer[4096];
    for (;;) {
      ssize_t n = ::read(fds[0], buffer, sizeof buffer);
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        break;
      result.output.append(buffer, static_cast<size_t>(n));
    }
    while (::waitpid(pid, &result.waitStatus, 0) < 0 && errno == EINTR) {
    }
  }
  ::close(fds[0]);
  return result;
}

std::string commandLine(const std::vector<std::string> &argv) {
  std::string line;
  for (const std::string &arg : argv) {
    if (!line.empty())
      line += ' ';
    if (arg.find_first_of(" \t'\"\\$") == std::string::npos && !arg.empty()) {
      line += arg;
      continue;
    }
    line += '\'';
    for (char c : arg)
      line += c == '\'' ? std::string("'\\''") : std::string(1, c);
    line += '\'';
  }
  return line;
}

} // namespace attnc::runtime
