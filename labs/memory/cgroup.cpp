#include "cgroup.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <chrono>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "oslab/error.hpp"
#include "oslab/handles.hpp"
#include "oslab/ipc.hpp"
#include "oslab/process.hpp"

namespace oslab::memory {
namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) return {};
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

bool has_word(std::string_view list, std::string_view word, char separator) {
  size_t start = 0;
  while (start <= list.size()) {
    size_t end = list.find(separator, start);
    if (end == std::string_view::npos) end = list.size();
    if (list.substr(start, end - start) == word) return true;
    start = end + 1;
  }
  return false;
}

std::vector<std::string_view> split(std::string_view text, char separator) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  for (;;) {
    size_t end = text.find(separator, start);
    if (end == std::string_view::npos) {
      parts.push_back(text.substr(start));
      return parts;
    }
    parts.push_back(text.substr(start, end - start));
    start = end + 1;
  }
}

void write_file(const std::string& path, const std::string& text) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd.valid()) throw SysError("open " + path, errno);
  if (::write(fd.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size()))
    throw SysError(fmt::format("write {} to {}", text, path), errno);
}

// ---- Async-signal-safe pieces (the guardian and join_cgroup run after fork) ----

void sleep_ms(long ms) noexcept {
  timespec pause{0, ms * 1'000'000};
  ::nanosleep(&pause, nullptr);
}

// SIGKILLs every process listed in a cgroup.procs file, except this one.
void kill_listed(const char* procs_file) noexcept {
  const int fd = ::open(procs_file, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  char buffer[4096];
  const ssize_t got = ::read(fd, buffer, sizeof buffer - 1);
  ::close(fd);
  if (got <= 0) return;
  long pid = 0;
  bool digits = false;
  for (ssize_t i = 0; i <= got; ++i) {
    const char c = i < got ? buffer[i] : '\n';
    if (c >= '0' && c <= '9') {
      pid = pid * 10 + (c - '0');
      digits = true;
    } else {
      if (digits && pid > 1 && pid != ::getpid()) ::kill(static_cast<pid_t>(pid), SIGKILL);
      pid = 0;
      digits = false;
    }
  }
}

// Empties and removes a group, trying for up to `ms` (processes take a moment to leave).
bool remove_group(const char* dir, const char* procs_file, long ms) noexcept {
  for (long waited = 0;; waited += 10) {
    kill_listed(procs_file);
    if (::rmdir(dir) == 0 || errno == ENOENT) return true;
    if (waited >= ms) return false;
    sleep_ms(10);
  }
}

}  // namespace

std::optional<std::string> cgroup_path_of(std::string_view proc_self_cgroup, CgroupVersion version) {
  for (std::string_view line : split(proc_self_cgroup, '\n')) {
    const auto fields = split(line, ':');
    if (fields.size() < 3) continue;
    // The path is everything after the second colon (it may contain colons itself).
    const std::string_view path = line.substr(fields[0].size() + fields[1].size() + 2);
    if (version == CgroupVersion::v2 && fields[0] == "0" && fields[1].empty()) return std::string(path);
    if (version == CgroupVersion::v1 && fields[0] != "0" && has_word(fields[1], "memory", ','))
      return std::string(path);
  }
  return std::nullopt;
}

std::optional<std::string> cgroup_dir_of(std::string_view mountinfo, CgroupVersion version, std::string_view path) {
  for (std::string_view line : split(mountinfo, '\n')) {
    // id parent major:minor root mount-point options [optional fields] - type source super-options
    const size_t dash = line.find(" - ");
    if (dash == std::string_view::npos) continue;
    const auto before = split(line.substr(0, dash), ' ');
    const auto after = split(line.substr(dash + 3), ' ');
    if (before.size() < 5 || after.size() < 3) continue;
    const std::string_view type = after[0], super_options = after[2], root = before[3], point = before[4];
    const bool wanted =
        version == CgroupVersion::v2 ? type == "cgroup2" : type == "cgroup" && has_word(super_options, "memory", ',');
    if (!wanted) continue;
    std::string_view below = path;
    if (root != "/") {
      if (!path.starts_with(root)) continue;  // this mount does not show our group
      below.remove_prefix(root.size());
    }
    std::string dir(point);
    if (!below.empty() && below != "/") dir += below;
    return dir;
  }
  return std::nullopt;
}

std::map<std::string, uint64_t> parse_keyed(std::string_view text) {
  std::map<std::string, uint64_t> values;
  for (std::string_view line : split(text, '\n')) {
    const size_t space = line.find(' ');
    if (space == std::string_view::npos) continue;
    std::string_view number = line.substr(space + 1);
    uint64_t value = 0;
    auto [end, ec] = std::from_chars(number.data(), number.data() + number.size(), value);
    if (ec == std::errc()) values[std::string(line.substr(0, space))] = value;
  }
  return values;
}

CgroupProbe find_memory_cgroup() {
  const std::string cgroups = read_file("/proc/self/cgroup"), mountinfo = read_file("/proc/self/mountinfo");
  std::string why_v2 = "no cgroup v2 hierarchy", why_v1 = "no cgroup v1 memory controller";
  if (auto path = cgroup_path_of(cgroups, CgroupVersion::v2)) {
    if (auto dir = cgroup_dir_of(mountinfo, CgroupVersion::v2, *path)) {
      const std::string enabled = read_file(*dir + "/cgroup.subtree_control");
      if (has_word(enabled.substr(0, enabled.find('\n')), "memory", ' '))
        return {CgroupLocation{CgroupVersion::v2, *dir}, {}};
      const std::string available = read_file(*dir + "/cgroup.controllers");
      why_v2 = has_word(available.substr(0, available.find('\n')), "memory", ' ')
                   ? fmt::format(
                         "cgroup v2: {} does not delegate the memory controller to its children "
                         "(cgroup.subtree_control lacks it)",
                         *dir)
                   : fmt::format("cgroup v2: {} has no memory controller", *dir);
    }
  }
  if (auto path = cgroup_path_of(cgroups, CgroupVersion::v1)) {
    if (auto dir = cgroup_dir_of(mountinfo, CgroupVersion::v1, *path)) {
      if (::access((*dir + "/memory.limit_in_bytes").c_str(), F_OK) == 0)
        return {CgroupLocation{CgroupVersion::v1, *dir}, {}};
      why_v1 = fmt::format("cgroup v1: {} has no memory.limit_in_bytes", *dir);
    }
  }
  return {std::nullopt, why_v2 + "; " + why_v1};
}

MemoryCgroup::MemoryCgroup(CgroupVersion version, std::string dir, Guardian guardian)
    : version_(version), dir_(std::move(dir)), procs_file_(dir_ + "/cgroup.procs"), guardian_(std::move(guardian)) {}

MemoryCgroup::MemoryCgroup(MemoryCgroup&& other) noexcept
    : version_(other.version_),
      dir_(std::move(other.dir_)),
      procs_file_(std::move(other.procs_file_)),
      guardian_(std::move(other.guardian_)) {
  other.dir_.clear();
}

MemoryCgroup::~MemoryCgroup() {
  remove();
}

MemoryCgroup MemoryCgroup::create(std::string_view lab) {
  const CgroupProbe probe = find_memory_cgroup();
  if (!probe.location) throw SkipError("no memory cgroup to use: " + probe.why_not);
  const CgroupLocation& where = *probe.location;
  reap_stale_cgroups(where.dir);
  std::string name = unique_ipc_name(lab);  // "/oslab.<lab>.<pid>.<n>": the reaper reads the pid
  const std::string dir = where.dir + "/" + name.substr(1);
  if (::mkdir(dir.c_str(), 0755) != 0)
    throw SkipError(fmt::format("cannot create a cgroup in {}: {}", where.dir, describe_errno(errno)));
  if (where.version == CgroupVersion::v2 && ::access((dir + "/memory.max").c_str(), W_OK) != 0) {
    ::rmdir(dir.c_str());
    throw SkipError(fmt::format("cgroup v2: {} has no writable memory.max", dir));
  }
  // The guardian removes the group if this process dies without doing so.
  try {
    Guardian guardian =
        Guardian::start([dir, procs = dir + "/cgroup.procs"] { remove_group(dir.c_str(), procs.c_str(), 10'000); });
    return MemoryCgroup(where.version, dir, std::move(guardian));
  } catch (...) {
    ::rmdir(dir.c_str());
    throw;
  }
}

void MemoryCgroup::remove() noexcept {
  if (dir_.empty()) return;
  if (remove_group(dir_.c_str(), procs_file_.c_str(), 5'000))
    guardian_.dismiss();
  else
    write_stderr("oslab: could not remove a memory cgroup; its guardian will retry\n");
  dir_.clear();
}

std::string MemoryCgroup::describe() const {
  return fmt::format("cgroup {} ({}), {}", version_ == CgroupVersion::v1 ? "v1" : "v2",
                     version_ == CgroupVersion::v1 ? "memory.limit_in_bytes" : "memory.max", dir_);
}

void MemoryCgroup::set_limit(uint64_t bytes) {
  write_file(dir_ + (version_ == CgroupVersion::v1 ? "/memory.limit_in_bytes" : "/memory.max"), std::to_string(bytes));
}

void MemoryCgroup::remove_limit() {
  if (version_ == CgroupVersion::v1)
    write_file(dir_ + "/memory.limit_in_bytes", "-1");
  else
    write_file(dir_ + "/memory.max", "max");
}

CgroupStats MemoryCgroup::stats() const {
  CgroupStats stats;
  auto number = [](const std::string& text) -> uint64_t {
    uint64_t value = 0;
    std::from_chars(text.data(), text.data() + text.size(), value);
    return value;
  };
  const auto stat = parse_keyed(read_file(dir_ + "/memory.stat"));
  auto field = [&](const char* key) -> uint64_t {
    auto it = stat.find(key);
    return it == stat.end() ? 0 : it->second;
  };
  stats.page_faults = field("pgfault");
  stats.major_faults = field("pgmajfault");
  if (version_ == CgroupVersion::v1) {
    stats.usage_bytes = number(read_file(dir_ + "/memory.usage_in_bytes"));
    stats.file_bytes = field("cache");
    stats.anon_bytes = field("rss");
    stats.swap_bytes = field("swap");
    stats.oom_kills = parse_keyed(read_file(dir_ + "/memory.oom_control"))["oom_kill"];
  } else {
    stats.usage_bytes = number(read_file(dir_ + "/memory.current"));
    stats.file_bytes = field("file");
    stats.anon_bytes = field("anon");
    stats.swap_bytes = number(read_file(dir_ + "/memory.swap.current"));
    stats.oom_kills = parse_keyed(read_file(dir_ + "/memory.events"))["oom_kill"];
  }
  return stats;
}

std::vector<pid_t> MemoryCgroup::processes() const {
  std::vector<pid_t> pids;
  std::istringstream in(read_file(procs_file_));
  pid_t pid = 0;
  while (in >> pid) pids.push_back(pid);
  return pids;
}

void join_cgroup(const char* procs_file) noexcept {
  const int fd = ::open(procs_file, O_WRONLY | O_CLOEXEC);
  if (fd < 0) child_fail("open cgroup.procs", errno);
  if (::write(fd, "0", 1) != 1) child_fail("write cgroup.procs", errno);
  ::close(fd);
}

std::vector<std::string> oslab_cgroups_in(const std::string& dir) {
  std::vector<std::string> names;
  if (DIR* listing = ::opendir(dir.c_str())) {
    while (const dirent* entry = ::readdir(listing)) {
      const std::string_view name = entry->d_name;
      if (name.starts_with("oslab.") && entry->d_type == DT_DIR) names.emplace_back(name);
    }
    ::closedir(listing);
  }
  return names;
}

int reap_stale_cgroups(const std::string& dir) {
  int removed = 0;
  for (const std::string& name : oslab_cgroups_in(dir)) {
    const pid_t owner = owner_of_ipc_name(name);
    if (owner <= 0 || ::kill(owner, 0) == 0 || errno != ESRCH) continue;
    const std::string group = fmt::format("{}/{}", dir, name);
    removed += remove_group(group.c_str(), (group + "/cgroup.procs").c_str(), 1'000) ? 1 : 0;
  }
  return removed;
}

}  // namespace oslab::memory
