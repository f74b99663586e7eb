// IPC objects that outlive a SIGKILLed lab: System V semaphore sets and message queues can
// only be removed all at once (IPC_RMID destroys them, it does not wait for the last user as
// it does for a segment), and a POSIX name stays until the processes that must open it have.
// SIGKILL runs no handler, so cleanup.hpp cannot remove them; the guardian can. It is a small
// process, forked once, that waits (on a pidfd) for the lab to end however it ends, and then
// removes every object the lab still has registered in a table they share. It does nothing
// but system calls, so it is safe to fork from a lab that has threads.
//
//   oslab::GuardedSemaphores set(1);   // semget(IPC_PRIVATE), registered; IPC_RMID when it goes
//   ... semop(set.id(), ...) ...
#pragma once

#include <sys/types.h>

#include <string>

#include "oslab/cleanup.hpp"
#include "oslab/ipc.hpp"

namespace oslab {

class IpcGuardian {
 public:
  // This process's guardian, forked on first use. The guardian is killed (after the lab's
  // own clean-up) when this process exits normally or by SIGINT/SIGTERM; it removes the
  // registered objects only when the lab ended without removing them.
  static IpcGuardian& get();

  // Registers an object (a name for POSIX objects, an id for System V ones); returns false
  // when the table (64 entries) is full.
  bool watch(cleanup::Kind kind, const char* name, int id = -1) noexcept;
  void forget(cleanup::Kind kind, const char* name, int id = -1) noexcept;
  pid_t pid() const noexcept { return pid_; }

  IpcGuardian(const IpcGuardian&) = delete;
  IpcGuardian& operator=(const IpcGuardian&) = delete;
  ~IpcGuardian();

  struct Table;  // the registrations, in memory the guardian shares

 private:
  IpcGuardian();
  Table* table_ = nullptr;
  pid_t pid_ = -1;
};

// Registers an object with the guardian for its lifetime (remove the object first, then let
// this go out of scope: the other order leaves a window in which a kill leaks it).
class GuardedObject {
 public:
  GuardedObject(cleanup::Kind kind, const char* name, int id = -1);
  ~GuardedObject();
  GuardedObject(const GuardedObject&) = delete;
  GuardedObject& operator=(const GuardedObject&) = delete;

 private:
  cleanup::Kind kind_;
  std::string name_;
  int id_;
};

// A System V semaphore set (SysvId, private, 0600) registered with the guardian while it exists.
class GuardedSemaphores {
 public:
  explicit GuardedSemaphores(int count);
  ~GuardedSemaphores();  // IPC_RMID, then unregisters
  GuardedSemaphores(const GuardedSemaphores&) = delete;
  GuardedSemaphores& operator=(const GuardedSemaphores&) = delete;
  int id() const noexcept { return id_; }

 private:
  SysvId set_;
  int id_;
};

}  // namespace oslab
