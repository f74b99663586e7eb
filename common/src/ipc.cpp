#include "oslab/ipc.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <mqueue.h>
#include <semaphore.h>
#include <signal.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <unistd.h>

#include <atomic>
#include <charconv>

#include <fmt/format.h>

#include "oslab/error.hpp"
#include "oslab/guardian.hpp"
#include "oslab/process.hpp"

namespace oslab {

std::string unique_ipc_name(std::string_view lab) {
  static std::atomic<unsigned> counter{0};
  return fmt::format("/oslab.{}.{}.{}", lab, ::getpid(), counter++);
}

pid_t owner_of_ipc_name(std::string_view name) {
  if (name.starts_with('/')) name.remove_prefix(1);
  if (name.starts_with("sem.")) name.remove_prefix(4);
  if (!name.starts_with("oslab.")) return -1;
  name.remove_prefix(6);
  // <lab>.<pid>.<n>: the pid is the second-to-last field (a lab name may contain dots).
  auto last_dot = name.rfind('.');
  if (last_dot == std::string_view::npos || last_dot == 0) return -1;
  auto pid_dot = name.rfind('.', last_dot - 1);
  if (pid_dot == std::string_view::npos) return -1;
  std::string_view digits = name.substr(pid_dot + 1, last_dot - pid_dot - 1);
  pid_t pid = -1;
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), pid);
  if (ec != std::errc() || end != digits.data() + digits.size() || pid <= 0) return -1;
  return pid;
}

int reap_stale_ipc_objects() {
  int removed = 0;
  for (const char* dir : {"/dev/shm", "/dev/mqueue"}) {
    DIR* listing = ::opendir(dir);
    if (listing == nullptr) continue;
    while (const dirent* entry = ::readdir(listing)) {
      std::string_view name = entry->d_name;
      pid_t owner = owner_of_ipc_name(name);
      if (owner <= 0 || ::kill(owner, 0) == 0 || errno != ESRCH) continue;
      std::string path = fmt::format("{}/{}", dir, name);
      if (::unlink(path.c_str()) == 0) ++removed;
    }
    ::closedir(listing);
  }
  return removed;
}

SysvShm SysvShm::create(size_t bytes) {
  int id = check_errno("shmget", ::shmget(IPC_PRIVATE, bytes, IPC_CREAT | IPC_EXCL | 0600));
  cleanup::track_object(cleanup::Kind::sysv_shm, nullptr, id);
  guardian::watch(guardian::Object::sysv_shm, id);
  void* addr = ::shmat(id, nullptr, 0);
  if (addr == reinterpret_cast<void*>(-1)) {
    int saved = errno;
    ::shmctl(id, IPC_RMID, nullptr);
    cleanup::untrack_object(cleanup::Kind::sysv_shm, nullptr, id);
    guardian::forget(guardian::Object::sysv_shm, id);
    throw SysError("shmat", saved);
  }
  return SysvShm(id, addr, bytes);
}

SysvShm::SysvShm(SysvShm&& other) noexcept
    : id_(std::exchange(other.id_, -1)),
      addr_(std::exchange(other.addr_, nullptr)),
      size_(other.size_),
      removed_(other.removed_) {}

void SysvShm::remove() {
  if (removed_ || id_ < 0) return;
  check_errno("shmctl(IPC_RMID)", ::shmctl(id_, IPC_RMID, nullptr));
  cleanup::untrack_object(cleanup::Kind::sysv_shm, nullptr, id_);
  guardian::forget(guardian::Object::sysv_shm, id_);
  removed_ = true;
}

SysvShm::~SysvShm() {
  if (addr_ != nullptr) ::shmdt(addr_);
  if (id_ >= 0 && !removed_) {
    ::shmctl(id_, IPC_RMID, nullptr);
    cleanup::untrack_object(cleanup::Kind::sysv_shm, nullptr, id_);
    guardian::forget(guardian::Object::sysv_shm, id_);
  }
}

namespace {
cleanup::Kind kind_of(SysvId::Type type) {
  return type == SysvId::Type::semaphores ? cleanup::Kind::sysv_sem : cleanup::Kind::sysv_msg;
}
guardian::Object guarded(SysvId::Type type) {
  return type == SysvId::Type::semaphores ? guardian::Object::sysv_sem : guardian::Object::sysv_msg;
}
}  // namespace

SysvId SysvId::semaphores(int count) {
  guardian::ready();  // before the object exists: no window without a guardian
  int id = check_errno("semget", ::semget(IPC_PRIVATE, count, IPC_CREAT | IPC_EXCL | 0600));
  cleanup::track_object(cleanup::Kind::sysv_sem, nullptr, id);
  guardian::watch(guardian::Object::sysv_sem, id);
  return SysvId(Type::semaphores, id);
}

SysvId SysvId::message_queue() {
  guardian::ready();  // before the object exists: no window without a guardian
  int id = check_errno("msgget", ::msgget(IPC_PRIVATE, IPC_CREAT | IPC_EXCL | 0600));
  cleanup::track_object(cleanup::Kind::sysv_msg, nullptr, id);
  guardian::watch(guardian::Object::sysv_msg, id);
  return SysvId(Type::message_queue, id);
}

SysvId::SysvId(SysvId&& other) noexcept : type_(other.type_), id_(std::exchange(other.id_, -1)) {}

void SysvId::remove() {
  if (id_ < 0) return;
  int rc = type_ == Type::semaphores ? ::semctl(id_, 0, IPC_RMID) : ::msgctl(id_, IPC_RMID, nullptr);
  check_errno(type_ == Type::semaphores ? "semctl(IPC_RMID)" : "msgctl(IPC_RMID)", rc);
  cleanup::untrack_object(kind_of(type_), nullptr, id_);
  guardian::forget(guarded(type_), id_);
  id_ = -1;
}

SysvId::~SysvId() {
  try {
    remove();
  } catch (...) {
  }
}

namespace {
cleanup::Kind kind_of(PosixName::Type type) {
  switch (type) {
    case PosixName::Type::shm: return cleanup::Kind::posix_shm;
    case PosixName::Type::mq: return cleanup::Kind::posix_mq;
    case PosixName::Type::sem: break;
  }
  return cleanup::Kind::posix_sem;
}
guardian::Object guarded(PosixName::Type type) {
  switch (type) {
    case PosixName::Type::shm: return guardian::Object::posix_shm;
    case PosixName::Type::mq: return guardian::Object::posix_mq;
    case PosixName::Type::sem: break;
  }
  return guardian::Object::posix_sem;
}
}  // namespace

PosixName::PosixName(Type type, std::string name) : type_(type), name_(std::move(name)) {
  cleanup::track_object(kind_of(type_), name_.c_str());
  guardian::watch(guarded(type_), -1, name_.c_str());
}

PosixName::PosixName(PosixName&& other) noexcept
    : type_(other.type_), name_(std::move(other.name_)), linked_(std::exchange(other.linked_, false)) {}

void PosixName::unlink() {
  if (!linked_) return;
  int rc = 0;
  switch (type_) {
    case Type::shm: rc = ::shm_unlink(name_.c_str()); break;
    case Type::mq: rc = ::mq_unlink(name_.c_str()); break;
    case Type::sem: rc = ::sem_unlink(name_.c_str()); break;
  }
  linked_ = false;
  cleanup::untrack_object(kind_of(type_), name_.c_str());
  guardian::forget(guarded(type_), -1, name_.c_str());
  if (rc == -1 && errno != ENOENT) throw SysError("unlink " + name_, errno);
}

PosixName::~PosixName() {
  try {
    unlink();
  } catch (...) {
  }
}

PosixShm PosixShm::create(std::string_view lab, size_t bytes) {
  // Watched before it exists: a SIGKILL between shm_open and a later watch would leak it.
  PosixName name(PosixName::Type::shm, unique_ipc_name(lab));
  int fd = check_errno("shm_open", ::shm_open(name.name().c_str(), O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600));
  PosixShm shm{std::move(name), UniqueFd(fd)};
  check_errno("ftruncate", ::ftruncate(fd, static_cast<off_t>(bytes)));
  return shm;
}

}  // namespace oslab
