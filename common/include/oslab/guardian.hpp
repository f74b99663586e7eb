// What SIGKILL cannot clean up, a guardian does. A System V message queue or semaphore set
// cannot be removed while it is in use (IPC_RMID ends it at once, for every side), and a
// named object lives for the microseconds between its creation and its unlink: a lab killed
// with SIGKILL in either window would leave it in `ipcs`, /dev/shm or /dev/mqueue.
//
// The guardian is a small process, forked on first use, that holds one end of a socket pair
// whose other end only the lab (and its forked children) hold. The lab tells it each object
// it creates and each it removes; when every holder of the lab's end is gone, however it
// ended, the guardian removes what is still listed and exits. It runs only async-signal-safe
// code, sits in its own process group (a signal to the lab's group does not reach it), and
// holds no other descriptor (nobody waits on it for an end of file).
//
// A forked child that creates objects starts its own guardian for them. ipc.hpp's objects use
// it by themselves; labs call it for other things they create (a FIFO).
#pragma once

namespace oslab::guardian {

enum class Object { sysv_shm, sysv_sem, sysv_msg, posix_shm, posix_mq, posix_sem, file };

// Lists an object: `id` for System V ones, `name` for POSIX names and file paths (at most 127
// bytes). Never throws: without a guardian (fork failed) the lab's own clean-up still runs.
void watch(Object object, int id, const char* name = nullptr) noexcept;
// Removes it from the list (the lab removed it itself).
void forget(Object object, int id, const char* name = nullptr) noexcept;

// Starts the guardian now if this process has none: call it before creating an object, so
// that no kill between the creation and watch() leaves the object behind. False without one.
bool ready() noexcept;

// The guardian's pid, or -1 when none has been started.
int pid() noexcept;

}  // namespace oslab::guardian
