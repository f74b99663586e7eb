// What a lab leaves behind when it is stopped early: nothing. SIGINT and SIGTERM, and the
// watchdog (--timeout), kill every tracked child's process group and remove every tracked IPC
// object before the lab ends. The tables are fixed-size and lock-free, so the signal handler
// can walk them.
//
// The watchdog is a thread (named "oslab-watchdog"), not SIGALRM or another signal: a lab
// that blocks, waits for or times signals must not collide with it.
#pragma once

#include <sys/types.h>

#include <chrono>

namespace oslab::cleanup {

// Installs handlers for SIGINT and SIGTERM (left alone if the lab was started with them
// ignored, as a shell does for background jobs): they clean up and end the process with that
// signal. Starts the watchdog: after `watchdog` (0 = none) it cleans up and exits 1 with a message.
void install(std::chrono::seconds watchdog);

// Children (their process groups) to SIGKILL on clean-up.
void track_child(pid_t pid) noexcept;
void untrack_child(pid_t pid) noexcept;

enum class Kind { posix_shm, posix_mq, posix_sem, sysv_shm, sysv_sem, sysv_msg };
// IPC objects to remove on clean-up; `name` for POSIX objects, `id` for System V ones.
void track_object(Kind kind, const char* name, int id = -1) noexcept;
void untrack_object(Kind kind, const char* name, int id = -1) noexcept;

// Kills tracked children and removes tracked objects. Async-signal-safe.
void run_now() noexcept;

}  // namespace oslab::cleanup
