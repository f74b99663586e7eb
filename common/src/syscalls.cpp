#include "oslab/syscalls.hpp"

#include <linux/perf_event.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <fstream>
#include <optional>
#include <sstream>
#include <vector>

#include <fmt/format.h>

#include "oslab/error.hpp"
#include "oslab/handles.hpp"
#include "oslab/process.hpp"

namespace oslab {
namespace {

struct NamedSyscall {
  long number;
  const char* name;
};
// Generated at configure time from <sys/syscall.h> (common/CMakeLists.txt).
constexpr NamedSyscall kSyscalls[] = {
#include "oslab_syscall_names.inc"
};

constexpr const char* kTracefsDirs[] = {"/sys/kernel/tracing", "/sys/kernel/debug/tracing"};
constexpr const char* kEvent = "/events/raw_syscalls/sys_enter/";

std::string read_event_file(const std::string& name) {
  for (const char* dir : kTracefsDirs) {
    std::ifstream in(std::string(dir) + kEvent + name);
    if (in) return std::string(std::istreambuf_iterator<char>(in), {});
  }
  return "";
}

// The tracepoint's id, mounting tracefs first when it is absent and we may.
long tracepoint_id(std::string& why) {
  std::string id = read_event_file("id");
  if (id.empty() && ::geteuid() == 0) {
    if (::mount("tracefs", kTracefsDirs[0], "tracefs", 0, nullptr) != 0) {
      why = fmt::format("tracefs is not mounted and mount(tracefs, {}) failed: {}", kTracefsDirs[0],
                        describe_errno(errno));
      return -1;
    }
    id = read_event_file("id");
  }
  if (id.empty()) {
    why = ::geteuid() == 0 ? "the raw_syscalls:sys_enter tracepoint is missing from tracefs"
                           : "tracefs is not readable (not root)";
    return -1;
  }
  return std::stol(id);
}

// Where the syscall number sits in the tracepoint's raw record ("field:long id; offset:8;").
size_t id_offset_of_format() {
  std::istringstream format(read_event_file("format"));
  std::string line;
  while (std::getline(format, line)) {
    if (line.find(" id;") == std::string::npos) continue;
    auto at = line.find("offset:");
    if (at != std::string::npos) return std::stoul(line.substr(at + 7));
  }
  return 8;
}

int open_tracepoint(long id, std::string& why) {
  perf_event_attr attr{};
  attr.type = PERF_TYPE_TRACEPOINT;
  attr.size = sizeof attr;
  attr.config = static_cast<uint64_t>(id);
  attr.sample_period = 1;
  attr.sample_type = PERF_SAMPLE_RAW;
  attr.disabled = 1;
  attr.wakeup_events = 1u << 30;  // nobody polls: the ring is drained at stop()
  long fd = ::syscall(SYS_perf_event_open, &attr, 0 /* this thread */, -1, -1, PERF_FLAG_FD_CLOEXEC);
  if (fd < 0) {
    why = fmt::format("perf_event_open(raw_syscalls:sys_enter): {}", describe_errno(errno));
    return -1;
  }
  return static_cast<int>(fd);
}

void count_name(SyscallCounts& counts, long number) {
  ++counts.by_name[syscall_name(number)];
  ++counts.by_number[number];
}

}  // namespace

std::string syscall_name(long number) {
  for (const auto& entry : kSyscalls)
    if (entry.number == number) return entry.name;
  return fmt::format("syscall_{}", number);
}

uint64_t SyscallCounts::of(std::string_view name) const {
  auto it = by_name.find(std::string(name));
  return it == by_name.end() ? 0 : it->second;
}

std::string SyscallCounts::describe() const {
  std::string text = fmt::format("{} call{}", total, total == 1 ? "" : "s");
  std::string names;
  for (const auto& [name, count] : by_name) names += fmt::format("{}{} {}", names.empty() ? "" : ", ", name, count);
  if (!names.empty()) text += ": " + names;
  if (lost) text += fmt::format(" (+{} not named: the ring buffer was full)", lost);
  return text + " (" + method + ")";
}

Feature syscall_counting_available() {
  const bool readable = !read_event_file("id").empty();
  if (readable || ::geteuid() == 0)
    return {true, readable ? "perf on raw_syscalls:sys_enter"
                           : "perf on raw_syscalls:sys_enter (tracefs mounted when needed)"};
  return {true, "ptrace in a child (perf needs root and tracefs)"};
}

SyscallCounter::SyscallCounter(size_t ring_pages) {
  std::string why;
  const long id = tracepoint_id(why);
  if (id < 0) throw SkipError("cannot count system calls with perf: " + why);
  fd_ = open_tracepoint(id, why);
  if (fd_ < 0) throw SkipError("cannot count system calls with perf: " + why);
  id_offset_ = id_offset_of_format();
  size_t pages = 1;
  while (pages < ring_pages) pages *= 2;  // the data area is a power of two pages
  ring_bytes_ = (pages + 1) * page_size();
  ring_ = ::mmap(nullptr, ring_bytes_, PROT_READ | PROT_WRITE, MAP_SHARED, fd_, 0);
  if (ring_ == MAP_FAILED) {
    const int saved = errno;
    ::close(fd_);
    ring_ = nullptr;
    throw SysError("mmap(perf ring buffer)", saved);
  }
}

SyscallCounter::~SyscallCounter() {
  if (ring_ != nullptr) ::munmap(ring_, ring_bytes_);
  if (fd_ >= 0) ::close(fd_);
}

void SyscallCounter::start() {
  check_errno("ioctl(PERF_EVENT_IOC_RESET)", ::ioctl(fd_, PERF_EVENT_IOC_RESET, 0));
  check_errno("ioctl(PERF_EVENT_IOC_ENABLE)", ::ioctl(fd_, PERF_EVENT_IOC_ENABLE, 0));
}

SyscallCounts SyscallCounter::stop() {
  // The disabling ioctl is itself a call of this thread; the kernel counts its entry before
  // the event is off, so it is taken back out below.
  check_errno("ioctl(PERF_EVENT_IOC_DISABLE)", ::ioctl(fd_, PERF_EVENT_IOC_DISABLE, 0));
  SyscallCounts counts;
  counts.method = "perf raw_syscalls:sys_enter";
  uint64_t value = 0;
  if (::read(fd_, &value, sizeof value) != static_cast<ssize_t>(sizeof value)) throw SysError("read(perf)", errno);

  auto* meta = static_cast<perf_event_mmap_page*>(ring_);
  const auto* data = static_cast<const char*>(ring_) + page_size();
  const size_t size = ring_bytes_ - page_size();
  const uint64_t head = __atomic_load_n(&meta->data_head, __ATOMIC_ACQUIRE);
  uint64_t tail = meta->data_tail;
  std::vector<char> record;
  while (tail < head) {
    perf_event_header header;
    for (size_t i = 0; i < sizeof header; ++i) reinterpret_cast<char*>(&header)[i] = data[(tail + i) % size];
    if (header.size == 0) break;
    record.resize(header.size);
    for (size_t i = 0; i < header.size; ++i) record[i] = data[(tail + i) % size];
    if (header.type == PERF_RECORD_SAMPLE) {
      uint32_t raw_size = 0;
      std::memcpy(&raw_size, record.data() + sizeof header, sizeof raw_size);
      const char* raw = record.data() + sizeof header + sizeof raw_size;
      long number = -1;
      if (id_offset_ + sizeof number <= raw_size) std::memcpy(&number, raw + id_offset_, sizeof number);
      count_name(counts, number);
    } else if (header.type == PERF_RECORD_LOST) {
      uint64_t lost = 0;
      std::memcpy(&lost, record.data() + sizeof header + sizeof(uint64_t), sizeof lost);
      counts.lost += lost;
    }
    tail += header.size;
  }
  __atomic_store_n(&meta->data_tail, tail, __ATOMIC_RELEASE);

  const std::string disable_call = "ioctl";
  if (value > 0) --value;
  if (counts.of(disable_call) > 0) {
    if (--counts.by_name[disable_call] == 0) counts.by_name.erase(disable_call);
    if (--counts.by_number[SYS_ioctl] == 0) counts.by_number.erase(SYS_ioctl);
  }
  counts.total = value;
  return counts;
}

namespace {

// A number no kernel implements: the traced child calls it (getting ENOSYS) to mark the
// start and the end of what is counted.
constexpr long kMarker = 0x4f534c42;  // "OSLB"

SyscallCounts count_under_ptrace(const std::function<void()>& body) {
  flush_stdio();
  const pid_t pid = check_errno("fork", ::fork());
  if (pid == 0) {
    if (::ptrace(PTRACE_TRACEME, 0, nullptr, nullptr) == -1) child_fail("ptrace(PTRACE_TRACEME)", errno);
    (void)::raise(SIGSTOP);
    ::syscall(kMarker);
    try {
      body();
    } catch (...) {
      _exit(3);
    }
    ::syscall(kMarker);
    _exit(0);
  }
  cleanup::track_child(pid);
  SyscallCounts counts;
  counts.method = "ptrace";
  auto wait_stop = [&](int& status) {
    pid_t rc;
    do rc = ::waitpid(pid, &status, __WALL);
    while (rc == -1 && errno == EINTR);
    check_errno("waitpid", rc);
  };
  int status = 0;
  wait_stop(status);
  if (!WIFSTOPPED(status)) {
    cleanup::untrack_child(pid);
    throw std::runtime_error("ptrace: the child did not stop before counting: " +
                             ExitStatus::decode(status).describe());
  }
  check_errno("ptrace(PTRACE_SETOPTIONS)",
              ::ptrace(PTRACE_SETOPTIONS, pid, nullptr, PTRACE_O_TRACESYSGOOD | PTRACE_O_EXITKILL));
  bool counting = false, done = false;
  int deliver = 0;
  for (;;) {
    check_errno("ptrace(PTRACE_SYSCALL)", ::ptrace(PTRACE_SYSCALL, pid, nullptr, deliver));
    deliver = 0;
    wait_stop(status);
    if (WIFEXITED(status) || WIFSIGNALED(status)) break;
    if (!WIFSTOPPED(status)) continue;
    if (WSTOPSIG(status) != (SIGTRAP | 0x80)) {
      deliver = WSTOPSIG(status) == SIGSTOP ? 0 : WSTOPSIG(status);  // pass real signals on
      continue;
    }
    __ptrace_syscall_info info{};
    check_errno("ptrace(PTRACE_GET_SYSCALL_INFO)", ::ptrace(PTRACE_GET_SYSCALL_INFO, pid, sizeof info, &info));
    if (info.op != PTRACE_SYSCALL_INFO_ENTRY) continue;
    const auto number = static_cast<long>(info.entry.nr);
    if (number == kMarker) {
      done = counting;
      counting = !counting;
      continue;
    }
    if (counting) {
      ++counts.total;
      count_name(counts, number);
    }
  }
  cleanup::untrack_child(pid);
  const ExitStatus exit_status = ExitStatus::decode(status);
  if (!done || !exit_status.success())
    throw std::runtime_error("ptrace: the counted code did not finish cleanly in its child (" + exit_status.describe() +
                             ")");
  return counts;
}

}  // namespace

SyscallCounts count_syscalls(const std::function<void()>& body, CountMethod method) {
  if (method != CountMethod::ptrace) {
    std::optional<SyscallCounter> counter;
    try {
      counter.emplace();
    } catch (const SkipError&) {
      if (method == CountMethod::perf) throw;
    }
    if (counter) {
      counter->start();
      body();
      return counter->stop();
    }
  }
  return count_under_ptrace(body);
}

}  // namespace oslab
