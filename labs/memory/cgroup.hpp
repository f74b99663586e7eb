// A memory cgroup of the lab's own, made under the cgroup the lab runs in (never at the root):
// a limit, the kernel's counters of what the group was charged and how often it faulted, and
// removal that nothing can skip. The lab removes its group on the way out; a guardian process
// removes it if the lab dies first (SIGINT, SIGTERM, the watchdog, SIGKILL); and every new group
// first reaps the oslab groups whose owner pid is dead.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "guardian.hpp"

namespace oslab::memory {

enum class CgroupVersion { v1, v2 };

// Where the memory controller puts this process, or why there is none to use.
struct CgroupLocation {
  CgroupVersion version = CgroupVersion::v2;
  std::string dir;  // this process's own memory cgroup, e.g. /sys/fs/cgroup/memory/user.slice
};
struct CgroupProbe {
  std::optional<CgroupLocation> location;
  std::string why_not;  // when there is no location: which hierarchy lacks what
};
CgroupProbe find_memory_cgroup();

// The parsers behind it (unit-tested on captured text).
// The path of this process's cgroup from /proc/self/cgroup: v1, the hierarchy that has the
// memory controller; v2, the "0::" line.
std::optional<std::string> cgroup_path_of(std::string_view proc_self_cgroup, CgroupVersion version);
// The directory of cgroup `path` from /proc/self/mountinfo: the mount of that hierarchy (v1: a
// "cgroup" mount with the memory option; v2: "cgroup2") plus `path` below the mount's root.
std::optional<std::string> cgroup_dir_of(std::string_view mountinfo, CgroupVersion version, std::string_view path);
// "key value" lines (memory.stat, memory.events, memory.oom_control) as a map.
std::map<std::string, uint64_t> parse_keyed(std::string_view text);

// What the kernel charged a group and counted in it, in bytes and events.
struct CgroupStats {
  uint64_t usage_bytes = 0;   // v1 memory.usage_in_bytes, v2 memory.current
  uint64_t file_bytes = 0;    // page cache: v1 "cache", v2 "file"
  uint64_t anon_bytes = 0;    // v1 "rss", v2 "anon"
  uint64_t swap_bytes = 0;    // v1 "swap", v2 memory.swap.current
  uint64_t page_faults = 0;   // "pgfault"
  uint64_t major_faults = 0;  // "pgmajfault"
  uint64_t oom_kills = 0;     // v1 memory.oom_control, v2 memory.events "oom_kill"
};

class MemoryCgroup {
 public:
  // Makes <the lab's cgroup>/oslab.<lab>.<pid>.<n> with no limit. Throws SkipError, saying why,
  // when there is no memory controller or the lab may not create groups in its own.
  static MemoryCgroup create(std::string_view lab);
  MemoryCgroup(MemoryCgroup&& other) noexcept;
  MemoryCgroup& operator=(MemoryCgroup&&) = delete;
  MemoryCgroup(const MemoryCgroup&) = delete;
  MemoryCgroup& operator=(const MemoryCgroup&) = delete;
  ~MemoryCgroup();  // kills what is left inside, removes the group, dismisses the guardian

  const std::string& dir() const noexcept { return dir_; }
  CgroupVersion version() const noexcept { return version_; }
  std::string describe() const;  // "cgroup v1 memory.limit_in_bytes in /sys/fs/cgroup/memory/..."
  // The file a process writes "0" to, to move itself in (see join_cgroup).
  const std::string& procs_file() const noexcept { return procs_file_; }

  void set_limit(uint64_t bytes);  // v1 memory.limit_in_bytes, v2 memory.max
  void remove_limit();
  CgroupStats stats() const;
  std::vector<pid_t> processes() const;

 private:
  MemoryCgroup(CgroupVersion version, std::string dir, Guardian guardian);
  void remove() noexcept;
  CgroupVersion version_;
  std::string dir_, procs_file_;
  Guardian guardian_;
};

// Moves the calling process into the group whose cgroup.procs is `procs_file`. For the child
// side of fork: async-signal-safe; on failure it ends the child (child_fail).
void join_cgroup(const char* procs_file) noexcept;

// Removes the oslab.* groups in `dir` whose owner pid has ended; returns how many it removed.
int reap_stale_cgroups(const std::string& dir);

// The oslab.* groups in `dir` (for tests: nothing may be left).
std::vector<std::string> oslab_cgroups_in(const std::string& dir);

}  // namespace oslab::memory
