//===- Nvrtc.cpp - CUDA sources to cubins with NVRTC ----------------------===//
//
// The options are those of a readable, exact kernel: C++17, line info for
// profilers and sanitizers, no fast-math (the kernel asks for approximate
// instructions where it wants them). The source keeps its file name
// (kernel.cu), so the log's "kernel.cu(12): error: ..." lines point into the
// dumped source's numbering.
//
//===----------------------------------------------------------------------===//

#include "Nvrtc.h"

#include "DiskCache.h"
#include "Error.h"
#include "Files.h"
#include "TargetArch.h"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dlfcn.h>
#include <mutex>
#include <random>
#include <unistd.h>

namespace attnc::runtime::nvrtc {

namespace {

#include "EmbeddedCudaHeaders.inc"

/// NVRTC has no C library headers; kernel_abi.h's <stdint.h> comes from libcu++.
constexpr EmbeddedHeader kStdintShim = {"stdint.h", "#include <cuda/std/cstdint>\n"};

/// NVRTC logs longer than this are cut in error messages.
constexpr size_t kMaxLogBytes = 64 * 1024;

// NVRTC's types (nvrtc.h), declared here so the runtime builds without it.
using nvrtcResult = int;
using nvrtcProgram = struct _nvrtcProgram *;
constexpr nvrtcResult NVRTC_SUCCESS = 0;

/// The NVRTC functions the runtime calls.
struct Api {
  const char *(*nvrtcGetErrorString)(nvrtcResult result);
  nvrtcResult (*nvrtcVersion)(int *major, int *minor);
  nvrtcResult (*nvrtcCreateProgram)(nvrtcProgram *program, const char *source, const char *name,
                                    int numHeaders, const char *const *headers,
                                    const char *const *includeNames);
  nvrtcResult (*nvrtcDestroyProgram)(nvrtcProgram *program);
  nvrtcResult (*nvrtcCompileProgram)(nvrtcProgram program, int numOptions,
                                     const char *const *options);
  nvrtcResult (*nvrtcGetProgramLogSize)(nvrtcProgram program, size_t *size);
  nvrtcResult (*nvrtcGetProgramLog)(nvrtcProgram program, char *log);
  nvrtcResult (*nvrtcGetCUBINSize)(nvrtcProgram program, size_t *size);
  nvrtcResult (*nvrtcGetCUBIN)(nvrtcProgram program, char *cubin);
  nvrtcResult (*nvrtcGetPTXSize)(nvrtcProgram program, size_t *size);
  nvrtcResult (*nvrtcGetPTX)(nvrtcProgram program, char *ptx);
  std::string version; ///< "13.0"
};

/// $CUDA_HOME, else /usr/local/cuda.
std::string cudaHome() {
  const char *home = std::getenv("CUDA_HOME");
  return home && *home ? home : "/usr/local/cuda";
}

/// The result of the one attempt to load NVRTC.
struct Loaded {
  Api api{};
  bool ok = false;
  std::string problem;
};

template <typename Fn>
bool resolve(void *library, const std::string &file, const char *name, Fn &slot,
             std::string &problem) {
  slot = reinterpret_cast<Fn>(::dlsym(library, name));
  if (!slot)
    problem = "NVRTC (" + file + ") lacks " + name + " (NVRTC older than CUDA 11.2?)";
  return slot != nullptr;
}

Loaded load() {
  Loaded loaded;
  const std::vector<std::string> candidates = {"libnvrtc.so", "libnvrtc.so.13", "libnvrtc.so.12",
                                               cudaHome() + "/lib64/libnvrtc.so"};
  void *library = nullptr;
  std::string file;
  for (const std::string &candidate : candidates) {
    if ((library = ::dlopen(candidate.c_str(), RTLD_NOW | RTLD_LOCAL))) {
      file = candidate;
      break;
    }
  }
  if (!library) {
    loaded.problem = "NVRTC not found (tried";
    for (const std::string &candidate : candidates)
      loaded.problem += " " + candidate;
    loaded.problem += "): CUDA kernels are compiled at run time with NVRTC; install the CUDA "
                      "toolkit's NVRTC, or set CUDA_HOME to the toolkit";
    return loaded;
  }
  Api &a = loaded.api;
  std::string &why = loaded.problem;
  bool ok = resolve(library, file, "nvrtcGetErrorString", a.nvrtcGetErrorString, why) &&
            resolve(library, file, "nvrtcVersion", a.nvrtcVersion, why) &&
            resolve(library, file, "nvrtcCreateProgram", a.nvrtcCreateProgram, why) &&
            resolve(library, file, "nvrtcDestroyProgram", a.nvrtcDestroyProgram, why) &&
            resolve(library, file, "nvrtcCompileProgram", a.nvrtcCompileProgram, why) &&
            resolve(library, file, "nvrtcGetProgramLogSize", a.nvrtcGetProgramLogSize, why) &&
            resolve(library, file, "nvrtcGetProgramLog", a.nvrtcGetProgramLog, why) &&
            resolve(library, file, "nvrtcGetCUBINSize", a.nvrtcGetCUBINSize, why) &&
            resolve(library, file, "nvrtcGetCUBIN", a.nvrtcGetCUBIN, why) &&
            resolve(library, file, "nvrtcGetPTXSize", a.nvrtcGetPTXSize, why) &&
            resolve(library, file, "nvrtcGetPTX", a.nvrtcGetPTX, why);
  if (!ok)
    return loaded;
  int major = 0, minor = 0;
  if (a.nvrtcVersion(&major, &minor) != NVRTC_SUCCESS) {
    loaded.problem = "NVRTC (" + file + ") does not report its version";
    return loaded;
  }
  a.version = std::to_string(major) + "." + std::to_string(minor);
  loaded.ok = true;
  return loaded;
}

/// NVRTC, loaded once per process; throws Error(ATTNRT_ERROR_UNSUPPORTED) if absent.
const Api &api() {
  static std::once_flag once;
  static Loaded loaded;
  std::call_once(once, [] { loaded = load(); });
  if (!loaded.ok)
    fail(ATTNRT_ERROR_UNSUPPORTED, loaded.problem);
  return loaded.api;
}

/// Destroys an NVRTC program when it goes out of scope.
class Program {
public:
  explicit Program(const Api &api) : api_(api) {}
  ~Program() {
    if (program_)
      api_.nvrtcDestroyProgram(&program_);
  }
  Program(const Program &) = delete;
  Program &operator=(const Program &) = delete;
  /// Where nvrtcCreateProgram puts the program.
  nvrtcProgram *slot() { return &program_; }
  nvrtcProgram get() const { return program_; }

private:
  const Api &api_;
  nvrtcProgram program_ = nullptr;
};

/// The program's log ("" if NVRTC has none).
std::string programLog(const Api &api, nvrtcProgram program) {
  size_t size = 0;
  if (api.nvrtcGetProgramLogSize(program, &size) != NVRTC_SUCCESS || size <= 1)
    return "";
  std::string log(size, '\0');
  if (api.nvrtcGetProgramLog(program, log.data()) != NVRTC_SUCCESS)
    return "";
  log.resize(std::strlen(log.c_str()));
  return log;
}

/// Writes the source with line numbers to a new file
/// $TMPDIR/attnc-<name>-XXXXXX.cu.txt (else /tmp); returns its path, or ""
/// and why not in `problem`.
std::string dumpSource(const PackageData &package, std::string &problem) {
  const char *base = std::getenv("TMPDIR");
  std::string path = std::string(base && *base ? base : "/tmp") + "/attnc-" +
                     safeFileName(package.name) + "-XXXXXX.cu.txt";
  constexpr int kSuffix = 7; // ".cu.txt"
  int fd = ::mkstemps(path.data(), kSuffix);
  if (fd < 0) {
    problem = "cannot create " + path + ": " + errorText(errno);
    return "";
  }
  std::string text;
  const std::string &source = package.source;
  char number[16];
  size_t begin = 0;
  for (int line = 1; begin < source.size(); ++line) {
    size_t end = source.find('\n', begin);
    if (end == std::string::npos)
      end = source.size();
    std::snprintf(number, sizeof number, "%5d  ", line);
    text += number;
    text.append(source, begin, end - begin);
    text += '\n';
    begin = end + 1;
  }
  int err = writeAll(fd, text);
  if (::close(fd) != 0 && err == 0)
    err = errno;
  if (err != 0) {
    problem = "cannot write " + path + ": " + errorText(err);
    ::unlink(path.c_str());
    return "";
  }
  return path;
}

/// "nvrtc OPTION ..." for messages.
std::string optionsLine(const std::vector<std::string> &options) {
  std::string line = "nvrtc";
  for (const std::string &option : options)
    line += " " + option;
  return line;
}

/// The first integer at or after `from` in `text`; -1 if none.
int64_t integerAfter(const std::string &text, size_t from) {
  size_t digit = text.find_first_of("0123456789", from);
  return digit == std::string::npos ? -1 : std::strtoll(text.c_str() + digit, nullptr, 10);
}

/// The integer right before `unit` in `line` ("1024" of "1024 bytes smem");
/// 0 if the line does not mention the unit.
int64_t numberBefore(const std::string &line, const std::string &unit) {
  size_t at = line.find(unit);
  if (at == std::string::npos)
    return 0;
  size_t begin = at;
  while (begin > 0 && line[begin - 1] >= '0' && line[begin - 1] <= '9')
    --begin;
  return begin == at ? 0 : std::strtoll(line.c_str() + begin, nullptr, 10);
}

} // namespace

std::string version() { return api().version; }

std::vector<std::string> options(const std::string &arch) {
  const std::string cuda = cudaHome();
  return {"--gpu-architecture=" + arch, "-std=c++17", "-lineinfo", "-I" + cuda + "/include",
          "-I" + cuda + "/include/cccl"};
}

std::vector<std::string_view> headerKeyParts() {
  std::vector<std::string_view> parts;
  for (const EmbeddedHeader &header : kCudaHeaders) {
    parts.push_back(header.name);
    parts.push_back(header.text);
  }
  parts.push_back(kStdintShim.name);
  parts.push_back(kStdintShim.text);
  return parts;
}

bool isRealArch(const std::string &arch) { return archNumber(arch) >= 0; }

void requireArch(const PackageData &package, const std::string &arch) {
  if (!isRealArch(arch))
    fail(ATTNRT_ERROR_INVALID_ARGUMENT,
         "arch: expected a GPU architecture sm_XY (\"sm_80\", \"sm_90\", \"sm_90a\"), got \"" +
             arch + "\"");
  std::string problem = archArgumentProblem(package, arch);
  if (!problem.empty())
    fail(ATTNRT_ERROR_INVALID_ARGUMENT, problem);
}

Build compile(const PackageData &package, const std::vector<std::string> &options, bool verbose,
              const std::string &appended, bool withPtx) {
  const Api &nvrtc = api();
  std::string dumped, dumpProblem;
  const char *dumpEnv = std::getenv("ATTNC_DUMP_SOURCE");
  if (dumpEnv && std::string(dumpEnv) == "1") {
    dumped = dumpSource(package, dumpProblem);
    if (!dumped.empty())
      note(package.sourceFile + " of kernel \"" + package.name +
           "\" with line numbers (ATTNC_DUMP_SOURCE=1): " + dumped);
  }

  std::vector<const char *> headers, names;
  for (const EmbeddedHeader &header : kCudaHeaders) {
    headers.push_back(header.text);
    names.push_back(header.name);
  }
  headers.push_back(kStdintShim.text);
  names.push_back(kStdintShim.name);
  std::vector<const char *> argv;
  for (const std::string &option : options)
    argv.push_back(option.c_str());
  if (verbose)
    note("compiling " + package.sourceFile + " of kernel \"" + package.name + "\" with NVRTC " +
         nvrtc.version + ": " + optionsLine(options));

  std::string source = package.source;
  if (!appended.empty())
    source += (source.empty() || source.back() == '\n' ? "" : "\n") + appended;
  Program program(nvrtc);
  nvrtcResult result =
      nvrtc.nvrtcCreateProgram(program.slot(), source.c_str(), package.sourceFile.c_str(),
                               static_cast<int>(headers.size()), headers.data(), names.data());
  if (result != NVRTC_SUCCESS)
    fail(ATTNRT_ERROR_COMPILE,
         package.sourceFile + ": nvrtcCreateProgram failed: " + nvrtc.nvrtcGetErrorString(result));
  result = nvrtc.nvrtcCompileProgram(program.get(), static_cast<int>(argv.size()), argv.data());
  Build build;
  build.log = programLog(nvrtc, program.get());
  if (result != NVRTC_SUCCESS) {
    std::string log = build.log;
    if (log.size() > kMaxLogBytes)
      log = log.substr(0, kMaxLogBytes) + "\n... (log truncated)\n";
    if (!log.empty() && log.back() != '\n')
      log += '\n';
    std::string message = package.sourceFile + ": NVRTC " + nvrtc.version + " failed (" +
                          nvrtc.nvrtcGetErrorString(result) + ") on kernel \"" + package.name +
                          "\":\n$ " + optionsLine(options) + "\n" + log;
    if (dumped.empty() && dumpProblem.empty())
      dumped = dumpSource(package, dumpProblem);
    message += dumped.empty() ? "(the source could not be dumped: " + dumpProblem + ")"
                              : "the source with line numbers: " + dumped;
    fail(ATTNRT_ERROR_COMPILE, message);
  }
  size_t size = 0;
  if ((result = nvrtc.nvrtcGetCUBINSize(program.get(), &size)) != NVRTC_SUCCESS || size == 0)
    fail(ATTNRT_ERROR_COMPILE,
         package.sourceFile + ": NVRTC produced no cubin (" + optionsLine(options) + ")" +
             (result != NVRTC_SUCCESS ? std::string(": ") + nvrtc.nvrtcGetErrorString(result)
                                      : std::string()));
  build.cubin.resize(size);
  if ((result = nvrtc.nvrtcGetCUBIN(program.get(), build.cubin.data())) != NVRTC_SUCCESS)
    fail(ATTNRT_ERROR_COMPILE,
         package.sourceFile + ": nvrtcGetCUBIN failed: " + nvrtc.nvrtcGetErrorString(result));
  if (withPtx) {
    size = 0;
    if ((result = nvrtc.nvrtcGetPTXSize(program.get(), &size)) != NVRTC_SUCCESS || size == 0)
      fail(ATTNRT_ERROR_COMPILE,
           package.sourceFile + ": NVRTC produced no PTX (" + optionsLine(options) + ")" +
               (result != NVRTC_SUCCESS ? std::string(": ") + nvrtc.nvrtcGetErrorString(result)
                                        : std::string()));
    build.ptx.resize(size);
    if ((result = nvrtc.nvrtcGetPTX(program.get(), build.ptx.data())) != NVRTC_SUCCESS)
      fail(ATTNRT_ERROR_COMPILE,
           package.sourceFile + ": nvrtcGetPTX failed: " + nvrtc.nvrtcGetErrorString(result));
    // The size counts the terminating NUL: the text ends before it.
    build.ptx.resize(std::strlen(build.ptx.c_str()));
  }
  return build;
}

bool readEntryInfo(const std::string &log, const std::string &entry, EntryInfo &out) {
  const std::string header = "Compiling entry function '" + entry + "'";
  size_t begin = log.find(header);
  if (begin == std::string::npos)
    return false;
  size_t end = log.find("Compiling entry function '", begin + header.size());
  const std::string section = log.substr(begin, end == std::string::npos ? end : end - begin);
  // The entry's own properties; the first frame line if ptxas names none.
  size_t properties = section.find("Function properties for " + entry + "\n");
  size_t frame =
      section.find(" bytes stack frame", properties == std::string::npos ? 0 : properties);
  if (frame != std::string::npos) {
    size_t lineStart = section.rfind('\n', frame);
    lineStart = lineStart == std::string::npos ? 0 : lineStart;
    out.stackFrameBytes = integerAfter(section, lineStart);
    size_t stores = section.find("bytes stack frame,", frame);
    out.spillStoreBytes = integerAfter(section, stores);
    size_t loads = section.find("bytes spill stores,", frame);
    out.spillLoadBytes = integerAfter(section, loads);
  }
  size_t used = section.find("Used ");
  out.registers = used == std::string::npos ? 0 : static_cast<int32_t>(integerAfter(section, used));
  if (used != std::string::npos) {
    // "Used 34 registers, used 1 barriers, 160 bytes cumulative stack size, 1024 bytes smem"
    size_t lineEnd = section.find('\n', used);
    const std::string line =
        section.substr(used, lineEnd == std::string::npos ? lineEnd : lineEnd - used);
    out.barriers = static_cast<int32_t>(numberBefore(line, " barriers"));
    out.sharedBytes = numberBefore(line, " bytes smem");
  }
  return true;
}

std::vector<std::string> entryNames(const std::string &log) {
  const std::string marker = "Compiling entry function '";
  std::vector<std::string> names;
  for (size_t at = log.find(marker); at != std::string::npos; at = log.find(marker, at)) {
    at += marker.size();
    size_t end = log.find('\'', at);
    if (end == std::string::npos)
      break;
    std::string name = log.substr(at, end - at);
    if (std::find(names.begin(), names.end(), name) == names.end())
      names.push_back(std::move(name));
  }
  return names;
}

int64_t entryCodeBytes(std::string_view cubin, const std::string &entry) {
  // ELF64, little-endian: the section headers, and their names in the
  // section-name string table.
  constexpr size_t kHeaderBytes = 64, kSectionHeaderBytes = 64;
  constexpr unsigned char kMagic[4] = {0x7f, 'E', 'L', 'F'};
  constexpr unsigned char kClass64 = 2, kLittleEndian = 1;
  if (cubin.size() < kHeaderBytes || std::memcmp(cubin.data(), kMagic, 4) != 0 ||
      static_cast<unsigned char>(cubin[4]) != kClass64 ||
      static_cast<unsigned char>(cubin[5]) != kLittleEndian)
    return -1;
  auto read = [&](size_t offset, size_t bytes) -> uint64_t {
    uint64_t value = 0;
    for (size_t i = 0; i < bytes; ++i)
      value |= static_cast<uint64_t>(static_cast<unsigned char>(cubin[offset + i])) << (8 * i);
    return value;
  };
  const uint64_t sectionTable = read(0x28, 8), entrySize = read(0x3a, 2), count = read(0x3c, 2),
                 namesIndex = read(0x3e, 2);
  if (entrySize < kSectionHeaderBytes || namesIndex >= count || sectionTable > cubin.size() ||
      count * entrySize > cubin.size() - sectionTable)
    return -1;
  auto section = [&](uint64_t index) { return sectionTable + index * entrySize; };
  // sh_name at +0, sh_offset at +0x18, sh_size at +0x20.
  const uint64_t namesOffset = read(section(namesIndex) + 0x18, 8),
                 namesSize = read(section(namesIndex) + 0x20, 8);
  if (namesOffset > cubin.size() || namesSize > cubin.size() - namesOffset)
    return -1;
  const std::string wanted = ".text." + entry;
  for (uint64_t i = 0; i < count; ++i) {
    const uint64_t name = read(section(i), 4);
    if (name >= namesSize)
      continue;
    const char *text = cubin.data() + namesOffset + name;
    const size_t room = namesSize - name;
    if (wanted.size() < room && std::memcmp(text, wanted.c_str(), wanted.size() + 1) == 0)
      return static_cast<int64_t>(read(section(i) + 0x20, 8));
  }
  return -1;
}

std::string freshDefinition() {
  static std::atomic<uint64_t> counter{0};
  static const uint64_t process = (static_cast<uint64_t>(std::random_device{}()) << 32) ^
                                  std::random_device{}() ^ static_cast<uint64_t>(::getpid());
  char name[64];
  std::snprintf(name, sizeof name, "attnrt_fresh_%016llx_%llu",
                static_cast<unsigned long long>(process),
                static_cast<unsigned long long>(counter++));
  return std::string("// Appended by libattnrt: new PTX, so that ptxas reports.\n"
                     "extern \"C\" __device__ unsigned ") +
         name + " = 0;\n";
}

ArchBuild compileForArch(const PackageData &package, const std::string &arch, bool wantPtx,
                         bool report) {
  if (package.target != Target::Cuda)
    fail(ATTNRT_ERROR_INVALID_ARGUMENT,
         "package: NVRTC compiles CUDA packages; kernel \"" + package.name + "\" targets cpu");
  requireArch(package, arch);
  ArchBuild out;
  out.arch = arch;
  out.version = version();
  Build clean = compile(package, options(arch), false, "", wantPtx);
  out.cubin = std::move(clean.cubin);
  out.ptx = std::move(clean.ptx);
  if (!report)
    return out;

  std::vector<std::string> verbose = options(arch);
  verbose.push_back("--ptxas-options=-v");
  Build reported = compile(package, verbose, false, freshDefinition());
  const std::vector<std::string> names = entryNames(reported.log);
  if (std::find(names.begin(), names.end(), package.entry) == names.end())
    fail(ATTNRT_ERROR_PACKAGE,
         package.sourceFile + ": the kernel NVRTC compiled for " + arch + " has no entry point " +
             package.entry + "; CUDA kernels define extern \"C\" __global__ void " + package.entry +
             "(const __grid_constant__ attnc_forward_args); NVRTC's log:\n" +
             reported.log.substr(0, 4096));
  for (const std::string &name : names) {
    EntryReport entry;
    entry.name = name;
    readEntryInfo(reported.log, name, entry.info);
    entry.codeBytes = entryCodeBytes(out.cubin, name);
    out.entries.push_back(std::move(entry));
  }
  return out;
}

} // namespace attnc::runtime::nvrtc
