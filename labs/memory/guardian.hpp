// A guardian: a small process that outlives the lab only to undo what the lab set up (remove a
// cgroup, swapoff and delete a swap file) when the lab dies without doing it itself, SIGKILL
// included. It waits for the lab's end on a pipe; the lab dismisses it once it has cleaned up.
#pragma once

#include <sys/types.h>

#include <functional>

namespace oslab::memory {

class Guardian {
 public:
  Guardian() = default;
  // Forks the guardian. `on_death` runs in it, after fork, when the lab is gone: async-signal-safe
  // calls only. The guardian leaves the lab's process group, ignores the terminal's signals and
  // holds none of the lab's files but the pipe.
  static Guardian start(const std::function<void()>& on_death);
  Guardian(Guardian&& other) noexcept;
  Guardian& operator=(Guardian&& other) noexcept;
  Guardian(const Guardian&) = delete;
  Guardian& operator=(const Guardian&) = delete;
  ~Guardian();  // not dismissed: it runs on_death now, and the lab does not wait for it

  // The lab has cleaned up: the guardian exits without doing anything, and is reaped.
  void dismiss() noexcept;

 private:
  pid_t pid_ = -1;
  int pipe_ = -1;
};

}  // namespace oslab::memory
