#include "oslab/guardian.hpp"

#include <mqueue.h>
#include <poll.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/prctl.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <new>

#include "oslab/error.hpp"
#include "oslab/handles.hpp"
#include "oslab/process.hpp"

namespace oslab {

namespace {
constexpr int kEntries = 64;
constexpr size_t kName = 64;
enum SlotState : int { kFree, kFilling, kUsed };
}  // namespace

// Lives in a MAP_SHARED page made before the guardian is forked, so that it sees every
// registration the lab makes later.
struct IpcGuardian::Table {
  struct Entry {
    std::atomic<int> state{kFree};
    cleanup::Kind kind{};
    int id = -1;
    char name[kName] = {};
  };
  Entry entries[kEntries];
};

namespace {

bool same(const IpcGuardian::Table& table, int index, cleanup::Kind kind, const char* name, int id);

// "/oslab.x.1.2" -> "/dev/shm/sem.oslab.x.1.2" (where glibc keeps named semaphores) or
// "/dev/shm/oslab.x.1.2" (shared memory), without allocating.
void dev_shm_path(char (&path)[kName + 16], const char* prefix, const char* name) {
  path[0] = '\0';
  std::strncat(path, "/dev/shm/", sizeof path - 1);
  std::strncat(path, prefix, sizeof path - std::strlen(path) - 1);
  std::strncat(path, name[0] == '/' ? name + 1 : name, sizeof path - std::strlen(path) - 1);
}

// The guardian's whole life, after fork: async-signal-safe system calls only.
int guard(IpcGuardian::Table* table, pid_t lab) {
  ::prctl(PR_SET_PDEATHSIG, 0);  // outlive the lab: that is the point
  const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, lab, 0));
  if (pidfd >= 0) {
    pollfd ready{pidfd, POLLIN, 0};
    while (::poll(&ready, 1, -1) == -1 && errno == EINTR) {
    }
  } else {
    // No pidfd (a kernel before 5.3): when the lab is gone, we are someone else's child.
    const timespec tick{0, 50'000'000};
    while (::getppid() == lab) ::nanosleep(&tick, nullptr);
  }
  for (auto& entry : table->entries) {
    if (entry.state.load() != kUsed) continue;
    char path[kName + 16];
    switch (entry.kind) {
      case cleanup::Kind::sysv_sem: ::semctl(entry.id, 0, IPC_RMID); break;
      case cleanup::Kind::sysv_msg: ::msgctl(entry.id, IPC_RMID, nullptr); break;
      case cleanup::Kind::sysv_shm: ::shmctl(entry.id, IPC_RMID, nullptr); break;
      case cleanup::Kind::posix_sem:
        dev_shm_path(path, "sem.", entry.name);
        ::unlink(path);
        break;
      case cleanup::Kind::posix_shm:
        dev_shm_path(path, "", entry.name);
        ::unlink(path);
        break;
      case cleanup::Kind::posix_mq: ::mq_unlink(entry.name); break;
    }
  }
  return 0;
}

bool same(const IpcGuardian::Table& table, int index, cleanup::Kind kind, const char* name, int id) {
  const auto& entry = table.entries[index];
  if (entry.kind != kind) return false;
  if (name != nullptr) return std::strncmp(entry.name, name, kName) == 0;
  return entry.id == id;
}

}  // namespace

IpcGuardian& IpcGuardian::get() {
  static IpcGuardian guardian;
  return guardian;
}

IpcGuardian::IpcGuardian() {
  const size_t bytes = (sizeof(Table) + page_size() - 1) / page_size() * page_size();
  void* page = check_errno_ptr(
      "mmap", ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0), MAP_FAILED);
  table_ = new (page) Table();
  const pid_t lab = ::getpid();
  Child child = Child::fork([this, lab] { return guard(table_, lab); });
  pid_ = child.release();  // tracked by cleanup: SIGINT/SIGTERM kill it after the lab's own clean-up
}

IpcGuardian::~IpcGuardian() {
  // A normal exit: the lab removed its objects. Make sure no registration survives, then end
  // the guardian and reap it.
  if (pid_ > 0) {
    for (auto& entry : table_->entries) entry.state.store(kFree);
    cleanup::untrack_child(pid_);
    try {
      kill_and_reap(pid_);
    } catch (...) {
    }
  }
}

bool IpcGuardian::watch(cleanup::Kind kind, const char* name, int id) noexcept {
  for (auto& entry : table_->entries) {
    int expected = kFree;
    if (!entry.state.compare_exchange_strong(expected, kFilling)) continue;
    entry.kind = kind;
    entry.id = id;
    entry.name[0] = '\0';
    if (name != nullptr) std::strncat(entry.name, name, kName - 1);
    entry.state.store(kUsed);
    return true;
  }
  return false;
}

void IpcGuardian::forget(cleanup::Kind kind, const char* name, int id) noexcept {
  for (int i = 0; i < kEntries; ++i) {
    auto& entry = table_->entries[i];
    if (entry.state.load() != kUsed || !same(*table_, i, kind, name, id)) continue;
    int expected = kUsed;
    if (entry.state.compare_exchange_strong(expected, kFree)) return;
  }
}

GuardedObject::GuardedObject(cleanup::Kind kind, const char* name, int id)
    : kind_(kind), name_(name ? name : ""), id_(id) {
  IpcGuardian::get().watch(kind_, name ? name_.c_str() : nullptr, id_);
}

GuardedObject::~GuardedObject() {
  IpcGuardian::get().forget(kind_, name_.empty() ? nullptr : name_.c_str(), id_);
}

namespace {
// The guardian first: forking it takes a while, and a set made before it exists could be left
// behind by a kill in that while.
SysvId semaphores_after_guardian(int count) {
  IpcGuardian::get();
  return SysvId::semaphores(count);
}
}  // namespace

GuardedSemaphores::GuardedSemaphores(int count) : set_(semaphores_after_guardian(count)), id_(set_.id()) {
  IpcGuardian::get().watch(cleanup::Kind::sysv_sem, nullptr, id_);
}

GuardedSemaphores::~GuardedSemaphores() {
  try {
    set_.remove();
  } catch (...) {
  }
  IpcGuardian::get().forget(cleanup::Kind::sysv_sem, nullptr, id_);
}

}  // namespace oslab
