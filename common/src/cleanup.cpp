#include "oslab/cleanup.hpp"

#include <mqueue.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <thread>

#include <fmt/format.h>

#include "oslab/error.hpp"

namespace oslab::cleanup {
namespace {

constexpr int kMaxChildren = 256;
constexpr int kMaxObjects = 64;
constexpr size_t kMaxName = 64;

std::atomic<pid_t> g_children[kMaxChildren];

// A slot is free, being filled (claimed by one thread, not yet readable), or in use.
enum SlotState : int { kFree, kFilling, kUsed };
struct Object {
  std::atomic<int> state{kFree};
  Kind kind{};
  int id = -1;
  char name[kMaxName] = {};
};
Object g_objects[kMaxObjects];

bool same_object(const Object& object, Kind kind, const char* name, int id) {
  if (object.kind != kind) return false;
  if (name != nullptr) return std::strncmp(object.name, name, kMaxName) == 0;
  return object.id == id;
}

void on_fatal_signal(int signo) {
  const int saved_errno = errno;
  run_now();
  errno = saved_errno;
  (void)::signal(signo, SIG_DFL);
  (void)::raise(signo);
}

void watchdog_thread(std::chrono::seconds after, const std::string& message) {
  ::pthread_setname_np(::pthread_self(), "oslab-watchdog");
  timespec deadline{};
  ::clock_gettime(CLOCK_MONOTONIC, &deadline);
  deadline.tv_sec += after.count();
  while (::clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &deadline, nullptr) == EINTR) {
  }
  run_now();
  write_stderr(message.c_str());
  _exit(1);
}

}  // namespace

void install(std::chrono::seconds watchdog) {
  struct sigaction action {};
  action.sa_handler = on_fatal_signal;
  sigemptyset(&action.sa_mask);
  sigaddset(&action.sa_mask, SIGINT);
  sigaddset(&action.sa_mask, SIGTERM);
  for (int signo : {SIGINT, SIGTERM}) {
    struct sigaction previous {};
    check_errno("sigaction", ::sigaction(signo, nullptr, &previous));
    if (previous.sa_handler == SIG_IGN) continue;  // started in the background: stay that way
    check_errno("sigaction", ::sigaction(signo, &action, nullptr));
  }
  if (watchdog.count() > 0) {
    std::thread(
        watchdog_thread, watchdog,
        fmt::format("{}: watchdog: the run took longer than {} s (--timeout); children killed, objects removed\n",
                    program_name(), watchdog.count()))
        .detach();
  }
}

void track_child(pid_t pid) noexcept {
  for (auto& slot : g_children) {
    pid_t empty = 0;
    if (slot.compare_exchange_strong(empty, pid)) return;
  }
}

void untrack_child(pid_t pid) noexcept {
  for (auto& slot : g_children) {
    pid_t expected = pid;
    if (slot.compare_exchange_strong(expected, 0)) return;
  }
}

void track_object(Kind kind, const char* name, int id) noexcept {
  for (auto& object : g_objects) {
    int expected = kFree;
    if (!object.state.compare_exchange_strong(expected, kFilling)) continue;
    object.kind = kind;
    object.id = id;
    object.name[0] = '\0';
    if (name != nullptr) std::strncat(object.name, name, kMaxName - 1);
    object.state.store(kUsed);
    return;
  }
}

void untrack_object(Kind kind, const char* name, int id) noexcept {
  for (auto& object : g_objects) {
    if (object.state.load() != kUsed || !same_object(object, kind, name, id)) continue;
    int expected = kUsed;
    if (object.state.compare_exchange_strong(expected, kFree)) return;
  }
}

void run_now() noexcept {
  for (auto& slot : g_children) {
    pid_t pid = slot.exchange(0);
    if (pid > 0) {
      ::kill(-pid, SIGKILL);
      ::kill(pid, SIGKILL);
    }
  }
  for (auto& object : g_objects) {
    int expected = kUsed;
    if (!object.state.compare_exchange_strong(expected, kFree)) continue;
    switch (object.kind) {
      case Kind::posix_shm: ::shm_unlink(object.name); break;
      case Kind::posix_mq: ::mq_unlink(object.name); break;
      case Kind::posix_sem: ::sem_unlink(object.name); break;
      case Kind::sysv_shm: ::shmctl(object.id, IPC_RMID, nullptr); break;
      case Kind::sysv_sem: ::semctl(object.id, 0, IPC_RMID); break;
      case Kind::sysv_msg: ::msgctl(object.id, IPC_RMID, nullptr); break;
    }
  }
}

}  // namespace oslab::cleanup
