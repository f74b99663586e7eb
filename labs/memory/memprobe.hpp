// What the kernel says about a process's memory and what an access does: /proc/PID/smaps
// fields of one mapping or of the whole process, a process's fault counts, which pages a
// mapping has present (pagemap) or in the page cache (mincore), temporary files that vanish
// with the lab, and accesses that may fault (SIGSEGV caught, with its si_code and address).
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "oslab/handles.hpp"

namespace oslab::memory {

// One mapping of /proc/PID/smaps: its range, the first line, and its "Name: N kB" fields in KiB.
struct SmapsEntry {
  uintptr_t start = 0, end = 0;
  std::string header;
  std::map<std::string, long> kib;
  long field(const std::string& name) const {
    auto it = kib.find(name);
    return it == kib.end() ? 0 : it->second;
  }
};
std::vector<SmapsEntry> parse_smaps(std::string_view text);
// The field summed over the whole process (smaps_rollup), in KiB; -1 when unreadable.
long rollup_kib(pid_t pid, const std::string& field);
// The fields of the mapping that contains `address` in process `pid` (empty entry if none).
SmapsEntry smaps_of(pid_t pid, const void* address);

// A process's fault counts so far, from /proc/PID/stat (fields 10 and 12).
struct FaultCounts {
  uint64_t minor = 0, major = 0;
};
FaultCounts parse_stat_faults(std::string_view stat_line);
FaultCounts faults_of(pid_t pid);  // throws when the process is gone

// Of `pages` pages from `address` in this process: how many are mapped (present in the page
// table, /proc/self/pagemap bit 63), and how many are in memory at all (mincore: page cache).
size_t present_pages(const void* address, size_t pages);
size_t cached_pages(const void* address, size_t pages);

// An unnamed file (O_TMPFILE, or created and unlinked at once) of `bytes` in `dir`: nothing is
// left behind, whatever ends the lab.
UniqueFd temporary_file(const std::string& dir, size_t bytes);
// The file system holding `fd` when its pages live only in memory (tmpfs, ramfs), else "".
std::string memory_file_system(int fd);

// The result of an access that may fault.
struct Access {
  bool faulted = false;
  int signal = 0;                 // SIGSEGV or SIGBUS
  int code = 0;                   // si_code: SEGV_ACCERR, SEGV_MAPERR, ...
  const void* address = nullptr;  // si_addr
  std::string describe() const;   // "SIGSEGV (SEGV_ACCERR) at 0x7f..."
};
Access try_write(volatile unsigned char* address, unsigned char value);
Access try_read(const volatile unsigned char* address, unsigned char* value);
// Calls `code` as a function returning int; `result` receives what it returned.
Access try_call(const void* code, int* result);

// /proc/self/maps lines of the mappings of the file whose path contains `name`.
std::vector<std::string> mappings_of_file(std::string_view name);

}  // namespace oslab::memory
