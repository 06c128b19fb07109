//===- CpuCompiler.cpp - CPU kernels: compile, cache, load ----------------===//
//
// The cache key hashes the source, the compile flags, the target, the first
// line of the compiler's --version, the attnc version and the two headers the
// runtime writes next to the source (kernel_abi.h, attnc_cpu.h), so that any
// change to what the compiler sees is a new key.
//
//===----------------------------------------------------------------------===//

#include "CpuCompiler.h"

#include "DiskCache.h"
#include "Error.h"
#include "Files.h"
#include "Process.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <dlfcn.h>
#include <filesystem>
#include <map>
#include <mutex>

namespace attnc::runtime {

namespace {

#include "EmbeddedHeaders.inc"

/// The flags every CPU kernel is compiled with (part of the cache key).
const std::vector<std::string> kCpuFlags = {"-O2", "-std=c++17", "-fPIC", "-shared", "-pthread"};
/// Compiler logs longer than this are cut in error messages.
constexpr size_t kMaxLogBytes = 64 * 1024;

/// The C++ compiler command and where it came from (for messages).
struct Compiler {
  std::vector<std::string> command; ///< argv prefix: the compiler and any leading arguments
  std::string origin;               ///< "attnrt_compile_options.cxx", "$CXX" or "the default"
  std::string text;                 ///< as configured, for messages
};

/// attnrt_compile_options.cxx, else $CXX, else "c++"; split at blanks
/// ("ccache c++" works).
Compiler findCompiler(const attnrt_compile_options *options) {
  Compiler compiler;
  const char *env = std::getenv("CXX");
  if (options && options->cxx && *options->cxx) {
    compiler.text = options->cxx;
    compiler.origin = "attnrt_compile_options.cxx";
  } else if (env && *env) {
    compiler.text = env;
    compiler.origin = "$CXX";
  } else {
    compiler.text = "c++";
    compiler.origin = "the default";
  }
  size_t pos = 0;
  while ((pos = compiler.text.find_first_not_of(" \t", pos)) != std::string::npos) {
    size_t end = compiler.text.find_first_of(" \t", pos);
    compiler.command.push_back(compiler.text.substr(pos, end - pos));
    pos = end;
  }
  if (compiler.command.empty())
    fail(ATTNRT_ERROR_COMPILE, "the C++ compiler from " + compiler.origin + " is blank");
  return compiler;
}

/// "the C++ compiler "c++" (from $CXX)", for messages.
std::string describe(const Compiler &compiler) {
  return "the C++ compiler \"" + compiler.text + "\" (from " + compiler.origin + ")";
}

/// The first line of `compiler --version`, cached per command.
std::string compilerVersion(const Compiler &compiler) {
  static std::mutex mutex;
  static std::map<std::vector<std::string>, std::string> versions;
  {
    std::lock_guard<std::mutex> lock(mutex);
    auto it = versions.find(compiler.command);
    if (it != versions.end())
      return it->second;
  }
  std::vector<std::string> argv = compiler.command;
  argv.push_back("--version");
  ProcessResult result = runProcess(argv, "");
  if (result.spawnError)
    fail(ATTNRT_ERROR_COMPILE, describe(compiler) +
                                   " could not be started: " + errorText(result.spawnError) +
                                   " (set attnrt_compile_options.cxx or $CXX to a C++17 compiler)");
  if (!result.succeeded())
    fail(ATTNRT_ERROR_COMPILE, describe(compiler) + " failed on --version (" + result.statusText() +
                                   "):\n$ " + commandLine(argv) + "\n" + result.output);
  std::string version = result.output.substr(0, result.output.find('\n'));
  std::lock_guard<std::mutex> lock(mutex);
  versions.emplace(compiler.command, version);
  return version;
}

/// A private directory under $TMPDIR (else /tmp), removed with its contents.
class TempDir {
public:
  TempDir() {
    const char *base = std::getenv("TMPDIR");
    std::string root = base && *base ? base : "/tmp";
    std::string pattern = root + "/attnc-build-XXXXXX";
    if (!::mkdtemp(pattern.data()))
      fail(ATTNRT_ERROR_IO,
           "cannot create a temporary build directory in " + root + ": " + errorText(errno));
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir &) = delete;
  TempDir &operator=(const TempDir &) = delete;

  const std::string &path() const { return path_; }
  std::string file(const std::string &name) const { return path_ + "/" + name; }

private:
  std::string path_;
};

/// Writes a build input; failure is an I/O error.
void writeBuildFile(const std::string &path, std::string_view bytes) {
  if (int err = writeFile(path, bytes))
    fail(ATTNRT_ERROR_IO, path + ": cannot write: " + errorText(err));
}

/// With ATTNC_DUMP_SOURCE=1, prints the source with line numbers to stderr
/// and returns true.
bool dumpSource(const PackageData &package) {
  const char *dump = std::getenv("ATTNC_DUMP_SOURCE");
  if (!dump || std::string(dump) != "1")
    return false;
  std::fprintf(stderr, "attnrt: %s of kernel \"%s\", with line numbers:\n",
               package.sourceFile.c_str(), package.name.c_str());
  size_t begin = 0;
  for (int line = 1; begin < package.source.size(); ++line) {
    size_t end = package.source.find('\n', begin);
    if (end == std::string::npos)
      end = package.source.size();
    std::fprintf(stderr, "%5d  %.*s\n", line, static_cast<int>(end - begin),
                 package.source.data() + begin);
    begin = end + 1;
  }
  return true;
}

/// Compiles the package's source into `build`/`output` and returns the
/// object's bytes. A failing compiler is ATTNRT_ERROR_COMPILE with its log.
std::string compileKernel(const PackageData &package, const Compiler &compiler,
                          const TempDir &build, const std::string &output, bool verbose) {
  writeBuildFile(build.file("kernel_abi.h"), kKernelAbiHeaderText);
  writeBuildFile(build.file("attnc_cpu.h"), kCpuHeaderText);
  writeBuildFile(build.file(package.sourceFile), package.source);

  std::vector<std::string> argv = compiler.command;
  argv.insert(argv.end(), kCpuFlags.begin(), kCpuFlags.end());
  argv.insert(argv.end(), {"-o", output, package.sourceFile});
  if (verbose)
    note("compiling in " + build.path() + ": " + commandLine(argv));
  ProcessResult result = runProcess(argv, build.path());
  if (result.spawnError)
    fail(ATTNRT_ERROR_COMPILE,
         describe(compiler) + " could not be started: " + errorText(result.spawnError));
  if (!result.succeeded()) {
    std::string log = result.output;
    if (log.size() > kMaxLogBytes)
      log = log.substr(0, kMaxLogBytes) + "\n... (log truncated)\n";
    std::string message = package.sourceFile + ": " + describe(compiler) + " failed (" +
                          result.statusText() + ") on kernel \"" + package.name + "\":\n$ " +
                          commandLine(argv) + "\n" + log;
    message += dumpSource(package)
                   ? "(ATTNC_DUMP_SOURCE=1: the source with line numbers is on stderr)"
                   : "(set ATTNC_DUMP_SOURCE=1 to print the source with line numbers on stderr)";
    fail(ATTNRT_ERROR_COMPILE, message);
  }
  std::string object;
  if (int err = readFile(build.file(output), object))
    fail(ATTNRT_ERROR_IO,
         build.file(output) + ": cannot read the compiled kernel: " + errorText(err));
  return object;
}

/// dlopens `path` and finds the entry point; returns "" or why the loader
/// refused the file. A loadable object without the entry point is the
/// package's fault, not the file's: ATTNRT_ERROR_PACKAGE.
std::string openKernel(const std::string &path, const PackageData &package, LoadedKernel &out) {
  void *handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!handle)
    return ::dlerror();
  void *symbol = ::dlsym(handle, package.entry.c_str());
  if (!symbol) {
    ::dlclose(handle);
    fail(ATTNRT_ERROR_PACKAGE, package.sourceFile + ": the compiled kernel exports no " +
                                   package.entry + " (" + path + ")");
  }
  void *backward = nullptr;
  if (package.hasBackward && !(backward = ::dlsym(handle, package.backwardEntry.c_str()))) {
    ::dlclose(handle);
    fail(ATTNRT_ERROR_PACKAGE, package.sourceFile + ": the compiled kernel exports no " +
                                   package.backwardEntry + " (" + path +
                                   "), but the manifest has a backward section");
  }
  out.handle = handle;
  out.forward = reinterpret_cast<attnc_forward_fn>(symbol);
  out.backward = reinterpret_cast<attnc_backward_fn>(backward);
  return "";
}

} // namespace

LoadedKernel loadCpuKernel(const PackageData &package, const attnrt_compile_options *options) {
  const bool verbose = options && options->verbose;
  Compiler compiler = findCompiler(options);
  std::string flags;
  for (const std::string &flag : kCpuFlags)
    flags += flag + " ";
  const std::string version = compilerVersion(compiler);
  const uint64_t key = cacheKey(
      {package.source, flags, "cpu", version, ATTNC_VERSION, kKernelAbiHeaderText, kCpuHeaderText});
  const std::string fileName = entryFileName(package.name, "cpu", key);

  LoadedKernel kernel;
  CacheSlot slot;
  if (lookupCacheEntry(
          options ? options->cache_dir : nullptr, fileName, verbose,
          "compiling into a private temporary directory, nothing is cached",
          [&](const std::string &entry, std::string_view) {
            return openKernel(entry, package, kernel);
          },
          slot)) {
    kernel.fromCache = true;
    return kernel;
  }
  const std::string &dir = slot.dir, &entry = slot.entry, &unusable = slot.unusable;

  TempDir build;
  std::string object = compileKernel(package, compiler, build, fileName, verbose);
  if (unusable.empty()) {
    std::string failure = publishEntry(dir, fileName, sealEntry(object));
    if (failure.empty()) {
      if (verbose)
        note("cached " + entry);
      std::string refused = openKernel(entry, package, kernel);
      if (!refused.empty())
        fail(ATTNRT_ERROR_COMPILE, entry + ": the compiled kernel cannot be loaded: " + refused);
      return kernel;
    }
    warnOnce("write:" + dir, "cannot write to the kernel cache (" + failure +
                                 "); running from a private temporary copy");
  }
  std::string refused = openKernel(build.file(fileName), package, kernel);
  if (!refused.empty())
    fail(ATTNRT_ERROR_COMPILE,
         package.sourceFile + ": the compiled kernel cannot be loaded: " + refused);
  return kernel;
}

} // namespace attnc::runtime
