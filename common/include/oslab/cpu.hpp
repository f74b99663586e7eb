// CPU lists ("0-3,6"), pinning, and restoring the affinity a lab inherited.
#pragma once

#include <sched.h>
#include <sys/types.h>

#include <string>
#include <string_view>
#include <vector>

namespace oslab {

// Parses a CPU list in the kernel's syntax ("0", "0-3", "0,2,4-5"). Throws UsageError on
// bad syntax, on reversed ranges and on CPUs beyond the kernel's limit; the result is
// sorted and without duplicates.
std::vector<int> parse_cpu_list(std::string_view text);

// The inverse: "0-3,6".
std::string format_cpu_list(const std::vector<int>& cpus);

// The CPUs `pid` (0: this thread) may run on.
std::vector<int> get_affinity(pid_t pid = 0);

// Pins the calling thread to `cpus` (all must be allowed; EINVAL otherwise).
void set_affinity(const std::vector<int>& cpus, pid_t pid = 0);

// Pins the calling thread for its lifetime and restores the inherited affinity after.
class ScopedAffinity {
 public:
  explicit ScopedAffinity(const std::vector<int>& cpus);
  ~ScopedAffinity();
  ScopedAffinity(const ScopedAffinity&) = delete;
  ScopedAffinity& operator=(const ScopedAffinity&) = delete;
  const std::vector<int>& inherited() const noexcept { return inherited_; }

 private:
  std::vector<int> inherited_;
};

// Checks that every CPU in `cpus` is in this thread's allowed set; throws UsageError naming
// the first one that is not.
void require_allowed(const std::vector<int>& cpus);

}  // namespace oslab
