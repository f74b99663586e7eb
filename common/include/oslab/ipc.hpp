// System V and POSIX IPC objects that are private to one run and never outlive it:
// System V objects are created with IPC_PRIVATE and mode 0600; POSIX objects get unique
// names "/oslab.<lab>.<pid>.<n>", O_EXCL and mode 0600. Each is removed as early as the
// protocol allows (call remove()/unlink() once every side holds it), otherwise by its
// destructor, otherwise by the SIGINT/SIGTERM/watchdog clean-up.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <string>
#include <string_view>

#include "oslab/handles.hpp"

namespace oslab {

// A unique name for a POSIX IPC object: "/oslab.<lab>.<pid>.<n>".
std::string unique_ipc_name(std::string_view lab);

// The pid encoded in an oslab object name ("oslab.fork.123.0" or "sem.oslab.fork.123.0"),
// or -1 when the name is not an oslab one.
pid_t owner_of_ipc_name(std::string_view name);

// Removes POSIX objects (in /dev/shm and /dev/mqueue) named by oslab runs whose process is
// gone. Returns how many were removed. Objects of live runs are left alone.
int reap_stale_ipc_objects();

class SysvShm {
 public:
  // shmget(IPC_PRIVATE, bytes, 0600) and shmat.
  static SysvShm create(size_t bytes);
  SysvShm(SysvShm&& other) noexcept;
  SysvShm& operator=(SysvShm&&) = delete;
  SysvShm(const SysvShm&) = delete;
  ~SysvShm();

  int id() const noexcept { return id_; }
  void* data() const noexcept { return addr_; }
  size_t size() const noexcept { return size_; }
  // IPC_RMID: the segment lives on while attached (forked children inherit the attachment)
  // but nobody else can attach it, and nothing is left once the last process detaches.
  void remove();

 private:
  SysvShm(int id, void* addr, size_t size) : id_(id), addr_(addr), size_(size) {}
  int id_ = -1;
  void* addr_ = nullptr;
  size_t size_ = 0;
  bool removed_ = false;
};

// Owns a System V semaphore set or message queue id; IPC_RMID on destruction.
class SysvId {
 public:
  enum class Type { semaphores, message_queue };
  static SysvId semaphores(int count);
  static SysvId message_queue();
  SysvId(SysvId&& other) noexcept;
  SysvId& operator=(SysvId&&) = delete;
  SysvId(const SysvId&) = delete;
  ~SysvId();
  int id() const noexcept { return id_; }
  void remove();

 private:
  SysvId(Type type, int id) : type_(type), id_(id) {}
  Type type_;
  int id_ = -1;
};

// A named POSIX object (shm_open, mq_open or sem_open) that is unlinked exactly once.
class PosixName {
 public:
  enum class Type { shm, mq, sem };
  PosixName(Type type, std::string name);
  PosixName(PosixName&& other) noexcept;
  PosixName& operator=(PosixName&&) = delete;
  PosixName(const PosixName&) = delete;
  ~PosixName();
  const std::string& name() const noexcept { return name_; }
  // shm_unlink / mq_unlink / sem_unlink: call it as soon as every side has opened it.
  void unlink();

 private:
  Type type_;
  std::string name_;
  bool linked_ = true;
};

// POSIX shared memory: shm_open(O_CREAT|O_EXCL, 0600) + ftruncate; the fd is owned.
struct PosixShm {
  PosixName name;
  UniqueFd fd;
  static PosixShm create(std::string_view lab, size_t bytes);
};

}  // namespace oslab
