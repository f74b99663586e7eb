#include "oslab/procfs.hpp"

#include <dirent.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "oslab/syscalls.hpp"

namespace oslab {

namespace {

std::string task_dir(pid_t pid, pid_t tid) {
  return tid == 0 ? fmt::format("/proc/{}", pid) : fmt::format("/proc/{}/task/{}", pid, tid);
}

std::optional<std::string> read_all(const std::string& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::string text((std::istreambuf_iterator<char>(in)), {});
  if (in.bad()) return std::nullopt;
  return text;
}

}  // namespace

std::optional<TaskStat> read_task_stat(pid_t pid, pid_t tid) {
  const auto text = read_all(task_dir(pid, tid) + "/stat");
  if (!text || text->empty()) return std::nullopt;
  // "pid (comm) S ppid ...": comm may hold spaces and parentheses, so split at the last ')'.
  const auto open = text->find('('), close = text->rfind(')');
  if (open == std::string::npos || close == std::string::npos || close < open) return std::nullopt;
  TaskStat stat;
  stat.comm = text->substr(open + 1, close - open - 1);
  std::istringstream rest(text->substr(close + 1));
  // Fields 3.. of proc(5): state ppid pgrp session tty_nr tpgid flags minflt cminflt majflt
  // cmajflt utime stime cutime cstime priority nice num_threads itrealvalue starttime vsize
  // rss rsslim startcode endcode startstack kstkesp kstkeip signal blocked sigignore sigcatch
  // wchan nswap cnswap exit_signal processor
  std::vector<std::string> fields;
  std::string field;
  while (rest >> field) fields.push_back(field);
  if (fields.size() < 37) return std::nullopt;
  stat.state = fields[0].front();
  stat.ppid = static_cast<pid_t>(std::stol(fields[1]));
  stat.minor_faults = std::stol(fields[7]);
  stat.processor = std::stoi(fields[36]);
  return stat;
}

std::string describe_task_state(char state) {
  switch (state) {
    case 'R': return "R (running)";
    case 'S': return "S (sleeping)";
    case 'D': return "D (disk sleep)";
    case 'T': return "T (stopped)";
    case 't': return "t (tracing stop)";
    case 'X': return "X (dead)";
    case 'Z': return "Z (zombie)";
    case 'P': return "P (parked)";
    case 'I': return "I (idle)";
    default: return std::string(1, state);
  }
}

std::vector<pid_t> list_tasks(pid_t pid) {
  std::vector<pid_t> tids;
  DIR* dir = ::opendir(fmt::format("/proc/{}/task", pid).c_str());
  if (dir == nullptr) return tids;
  while (const dirent* entry = ::readdir(dir)) {
    char* end = nullptr;
    const long tid = std::strtol(entry->d_name, &end, 10);
    if (end != entry->d_name && *end == '\0') tids.push_back(static_cast<pid_t>(tid));
  }
  ::closedir(dir);
  std::sort(tids.begin(), tids.end());
  return tids;
}

std::optional<std::string> task_syscall(pid_t pid, pid_t tid) {
  const auto text = read_all(task_dir(pid, tid) + "/syscall");
  if (!text || text->empty()) return std::nullopt;
  if (text->starts_with("running")) return "running";
  char* end = nullptr;
  const long number = std::strtol(text->c_str(), &end, 10);
  if (end == text->c_str()) return std::nullopt;
  if (number < 0) return "none";  // "-1 ...": blocked, but not in a system call
  return syscall_name(number);
}

std::optional<std::string> status_field(pid_t pid, std::string_view field) {
  std::ifstream in(fmt::format("/proc/{}/status", pid));
  std::string line;
  while (std::getline(in, line)) {
    if (line.size() > field.size() && line.compare(0, field.size(), field) == 0 && line[field.size()] == ':') {
      const auto start = line.find_first_not_of(" \t", field.size() + 1);
      return start == std::string::npos ? std::string() : line.substr(start);
    }
  }
  return std::nullopt;
}

std::optional<double> status_kib(pid_t pid, std::string_view field) {
  const auto value = status_field(pid, field);
  if (!value) return std::nullopt;
  try {
    return std::stod(*value);
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

std::optional<MemoryUse> read_memory_use(pid_t pid) {
  std::ifstream in(fmt::format("/proc/{}/smaps_rollup", pid));
  if (!in) return std::nullopt;
  MemoryUse use;
  bool rss = false, pss = false;
  std::string name;
  double kib = 0;
  std::string unit;
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    if (!(fields >> name >> kib)) continue;
    if (name == "Rss:") use.rss_kib = kib, rss = true;
    if (name == "Pss:") use.pss_kib = kib, pss = true;
  }
  if (!rss || !pss) return std::nullopt;
  return use;
}

}  // namespace oslab
