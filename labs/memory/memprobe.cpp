#include "memprobe.hpp"

#include <fcntl.h>
#include <linux/magic.h>
#include <setjmp.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <charconv>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "oslab/error.hpp"

namespace oslab::memory {
namespace {

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// A mapping's first line: "7f12a000-7f12b000 r--p 00000000 08:01 1234  /usr/lib/...".
bool parse_range(std::string_view line, uintptr_t& start, uintptr_t& end) {
  const size_t dash = line.find('-'), space = line.find(' ');
  if (dash == std::string_view::npos || space == std::string_view::npos || dash > space) return false;
  auto [p1, e1] = std::from_chars(line.data(), line.data() + dash, start, 16);
  auto [p2, e2] = std::from_chars(line.data() + dash + 1, line.data() + space, end, 16);
  return e1 == std::errc() && e2 == std::errc() && p1 == line.data() + dash && p2 == line.data() + space;
}

thread_local sigjmp_buf t_jump;
thread_local volatile sig_atomic_t t_armed = 0;
thread_local Access t_access;

void on_fault(int signo, siginfo_t* info, void*) {
  if (!t_armed) {  // not ours: die as the signal would have killed us
    (void)::signal(signo, SIG_DFL);
    (void)::raise(signo);
    return;
  }
  t_access.faulted = true;
  t_access.signal = signo;
  t_access.code = info->si_code;
  t_access.address = info->si_addr;
  siglongjmp(t_jump, 1);
}

// Runs `body` with SIGSEGV and SIGBUS caught; restores the previous handlers after.
template <typename Body>
Access guarded(Body&& body) {
  struct sigaction action {
  }, old_segv{}, old_bus{};
  action.sa_sigaction = on_fault;
  action.sa_flags = SA_SIGINFO | SA_NODEFER;
  sigemptyset(&action.sa_mask);
  check_errno("sigaction", ::sigaction(SIGSEGV, &action, &old_segv));
  check_errno("sigaction", ::sigaction(SIGBUS, &action, &old_bus));
  t_access = {};
  if (sigsetjmp(t_jump, 1) == 0) {
    t_armed = 1;
    body();
  }
  t_armed = 0;
  ::sigaction(SIGSEGV, &old_segv, nullptr);
  ::sigaction(SIGBUS, &old_bus, nullptr);
  return t_access;
}

}  // namespace

std::vector<SmapsEntry> parse_smaps(std::string_view text) {
  std::vector<SmapsEntry> entries;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    const std::string_view line = text.substr(start, end - start);
    start = end + 1;
    uintptr_t from = 0, to = 0;
    const size_t colon = line.find(':');
    if (parse_range(line, from, to) && (colon == std::string_view::npos || colon > line.find(' '))) {
      entries.push_back({from, to, std::string(line), {}});
      continue;
    }
    if (entries.empty() || colon == std::string_view::npos || !line.ends_with(" kB")) continue;
    std::string_view number = line.substr(colon + 1, line.size() - 3 - colon - 1);
    while (!number.empty() && number.front() == ' ') number.remove_prefix(1);
    long value = 0;
    if (std::from_chars(number.data(), number.data() + number.size(), value).ec == std::errc())
      entries.back().kib[std::string(line.substr(0, colon))] = value;
  }
  return entries;
}

long rollup_kib(pid_t pid, const std::string& field) {
  const std::string text = read_text(fmt::format("/proc/{}/smaps_rollup", pid));
  if (text.empty()) return -1;
  // smaps_rollup is one entry whose header is "[rollup]" after the range.
  for (const SmapsEntry& entry : parse_smaps(text)) return entry.field(field);
  return -1;
}

SmapsEntry smaps_of(pid_t pid, const void* address) {
  const auto target = reinterpret_cast<uintptr_t>(address);
  for (SmapsEntry& entry : parse_smaps(read_text(fmt::format("/proc/{}/smaps", pid))))
    if (entry.start <= target && target < entry.end) return std::move(entry);
  return {};
}

FaultCounts parse_stat_faults(std::string_view stat_line) {
  // "pid (comm) state ppid ... ": comm may hold spaces and parentheses; fields after the last ')'.
  const size_t paren = stat_line.rfind(')');
  if (paren == std::string_view::npos) throw std::runtime_error("unreadable /proc/PID/stat");
  std::istringstream fields(std::string(stat_line.substr(paren + 2)));
  std::string state;
  uint64_t ppid = 0, pgrp = 0, session = 0, tty = 0, tpgid = 0, flags = 0;
  FaultCounts counts;
  uint64_t child_minor = 0;
  if (!(fields >> state >> ppid >> pgrp >> session >> tty >> tpgid >> flags >> counts.minor >> child_minor >>
        counts.major))
    throw std::runtime_error("unreadable /proc/PID/stat");
  return counts;
}

FaultCounts faults_of(pid_t pid) {
  const std::string text = read_text(fmt::format("/proc/{}/stat", pid));
  if (text.empty()) throw std::runtime_error(fmt::format("process {} is gone", pid));
  return parse_stat_faults(text);
}

size_t present_pages(const void* address, size_t pages) {
  UniqueFd pagemap(check_errno("open /proc/self/pagemap", ::open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC)));
  std::vector<uint64_t> entries(pages);
  const auto offset = static_cast<off_t>(reinterpret_cast<uintptr_t>(address) / page_size() * sizeof(uint64_t));
  const ssize_t got =
      check_errno("pread /proc/self/pagemap", ::pread(pagemap.get(), entries.data(), pages * sizeof(uint64_t), offset));
  size_t present = 0;
  for (size_t i = 0; i < static_cast<size_t>(got) / sizeof(uint64_t); ++i) present += (entries[i] >> 63) & 1;
  return present;
}

size_t cached_pages(const void* address, size_t pages) {
  std::vector<unsigned char> in_core(pages);
  check_errno("mincore", ::mincore(const_cast<void*>(address), pages * page_size(), in_core.data()));
  size_t cached = 0;
  for (unsigned char c : in_core) cached += c & 1;
  return cached;
}

UniqueFd temporary_file(const std::string& dir, size_t bytes) {
  UniqueFd fd(::open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600));
  if (!fd.valid() && (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL)) {
    // No O_TMPFILE on this file system: a name that lives only until the unlink below.
    std::string path = dir + "/oslab.XXXXXX";
    fd = UniqueFd(::mkostemp(path.data(), O_CLOEXEC));
    if (fd.valid()) ::unlink(path.c_str());
  }
  if (!fd.valid()) throw SysError("open a temporary file in " + dir, errno);
  check_errno("ftruncate", ::ftruncate(fd.get(), static_cast<off_t>(bytes)));
  return fd;
}

std::string memory_file_system(int fd) {
  struct statfs info {};
  check_errno("fstatfs", ::fstatfs(fd, &info));
  if (info.f_type == TMPFS_MAGIC) return "tmpfs";
  if (info.f_type == RAMFS_MAGIC) return "ramfs";
  return "";
}

std::string Access::describe() const {
  if (!faulted) return "no fault";
  const char* name = signal == SIGSEGV ? "SIGSEGV" : signal == SIGBUS ? "SIGBUS" : "signal";
  const char* why = "";
  if (signal == SIGSEGV && code == SEGV_ACCERR) why = " (SEGV_ACCERR: the page is mapped, the access not allowed)";
  if (signal == SIGSEGV && code == SEGV_MAPERR) why = " (SEGV_MAPERR: nothing mapped there)";
  return fmt::format("{}{} at {}", name, why, address);
}

Access try_write(volatile unsigned char* address, unsigned char value) {
  return guarded([&] { *address = value; });
}

Access try_read(const volatile unsigned char* address, unsigned char* value) {
  return guarded([&] { *value = *address; });
}

Access try_call(const void* code, int* result) {
  using Function = int (*)();
  return guarded([&] { *result = reinterpret_cast<Function>(const_cast<void*>(code))(); });
}

std::vector<std::string> mappings_of_file(std::string_view name) {
  std::vector<std::string> lines;
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line))
    if (line.find('/') != std::string::npos && line.substr(line.find('/')).find(name) != std::string::npos)
      lines.push_back(line);
  return lines;
}

}  // namespace oslab::memory
