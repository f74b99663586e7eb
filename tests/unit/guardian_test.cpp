#include "oslab/guardian.hpp"

#include <fcntl.h>
#include <semaphore.h>
#include <signal.h>
#include <sys/sem.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include <gtest/gtest.h>

namespace oslab {
namespace {

bool sem_set_exists(int id) {
  std::ifstream table("/proc/sysvipc/sem");
  std::string line;
  std::getline(table, line);
  while (std::getline(table, line)) {
    std::istringstream fields(line);
    int key = 0, listed = -1;
    fields >> key >> listed;
    if (listed == id) return true;
  }
  return false;
}

bool named_sem_exists(const std::string& name) {
  return ::access(("/dev/shm/sem." + name.substr(1)).c_str(), F_OK) == 0;
}

// Gone, or a zombie that nobody has reaped yet (the guardian is reparented when its lab dies).
bool ended(pid_t pid) {
  if (::kill(pid, 0) == -1 && errno == ESRCH) return true;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  const auto paren = text.rfind(')');
  return paren == std::string::npos || (paren + 2 < text.size() && text[paren + 2] == 'Z');
}

template <typename Predicate>
bool eventually(Predicate done, std::chrono::milliseconds limit = std::chrono::seconds(3)) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

struct Created {
  int sem_id = -1;
  char name[64] = {};
};

// A child (standing in for a lab) creates a SysV set and a named semaphore, registers both with
// its guardian, reports them, and waits to be killed.
pid_t start_victim(int report_fd) {
  pid_t pid = ::fork();
  if (pid != 0) return pid;
  GuardedSemaphores* set = new GuardedSemaphores(1);  // never destroyed: the process is killed
  Created created;
  created.sem_id = set->id();
  const std::string name = unique_ipc_name("guardian-test");
  sem_t* sem = ::sem_open(name.c_str(), O_CREAT | O_EXCL, 0600, 0);
  if (sem == SEM_FAILED) _exit(1);
  IpcGuardian::get().watch(cleanup::Kind::posix_sem, name.c_str());
  std::strncpy(created.name, name.c_str(), sizeof created.name - 1);
  if (::write(report_fd, &created, sizeof created) != sizeof created) _exit(1);
  for (;;) ::pause();
}

TEST(IpcGuardian, RemovesWhatASigkilledProcessLeft) {
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  const pid_t victim = start_victim(fds[1]);
  ::close(fds[1]);
  Created created;
  ASSERT_EQ(::read(fds[0], &created, sizeof created), static_cast<ssize_t>(sizeof created));
  ::close(fds[0]);
  EXPECT_TRUE(sem_set_exists(created.sem_id));
  EXPECT_TRUE(named_sem_exists(created.name));
  ASSERT_EQ(::kill(victim, SIGKILL), 0);
  ASSERT_EQ(::waitpid(victim, nullptr, 0), victim);
  EXPECT_TRUE(eventually([&] { return !sem_set_exists(created.sem_id); })) << "set " << created.sem_id;
  EXPECT_TRUE(eventually([&] { return !named_sem_exists(created.name); })) << created.name;
}

TEST(IpcGuardian, LeavesWhatWasForgottenAndEndsWithTheProcess) {
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  pid_t child = ::fork();
  if (child == 0) {
    // Registers a set, forgets it (it will be removed by hand), and exits normally: the
    // guardian must end too, and must not remove the forgotten set.
    SysvId set = SysvId::semaphores(1);
    IpcGuardian::get().watch(cleanup::Kind::sysv_sem, nullptr, set.id());
    IpcGuardian::get().forget(cleanup::Kind::sysv_sem, nullptr, set.id());
    const int report[2] = {set.id(), IpcGuardian::get().pid()};
    if (::write(fds[1], report, sizeof report) != sizeof report) _exit(1);
    _exit(0);
  }
  ::close(fds[1]);
  int report[2] = {-1, -1};
  ASSERT_EQ(::read(fds[0], report, sizeof report), static_cast<ssize_t>(sizeof report));
  ::close(fds[0]);
  ASSERT_EQ(::waitpid(child, nullptr, 0), child);
  // The guardian was the child's child: it ends within moments of the child's exit.
  EXPECT_TRUE(eventually([&] { return ended(report[1]); }));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_TRUE(sem_set_exists(report[0]));
  ::semctl(report[0], 0, IPC_RMID);
}

}  // namespace
}  // namespace oslab
