#include "oslab/ipc.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

namespace oslab {
namespace {

bool sysv_exists(const char* kind, int id) {
  std::ifstream table(std::string("/proc/sysvipc/") + kind);
  std::string line;
  std::getline(table, line);
  while (std::getline(table, line)) {
    std::istringstream fields(line);
    std::string key;
    int listed = -1;
    fields >> key >> listed;
    if (listed == id) return true;
  }
  return false;
}

bool dev_shm_has(const std::string& name) {
  return ::access(("/dev/shm" + name).c_str(), F_OK) == 0;
}

TEST(IpcName, IsUniqueAndCarriesThePid) {
  std::string a = unique_ipc_name("test"), b = unique_ipc_name("test");
  EXPECT_NE(a, b);
  EXPECT_TRUE(a.starts_with("/oslab.test." + std::to_string(::getpid()) + "."));
  EXPECT_EQ(owner_of_ipc_name(a), ::getpid());
}

TEST(IpcName, OwnerParsing) {
  EXPECT_EQ(owner_of_ipc_name("oslab.fork.123.0"), 123);
  EXPECT_EQ(owner_of_ipc_name("sem.oslab.clone-flags.77.12"), 77);
  EXPECT_EQ(owner_of_ipc_name("/oslab.a.b.55.3"), 55);
  EXPECT_EQ(owner_of_ipc_name("oslab.fork.x.0"), -1);
  EXPECT_EQ(owner_of_ipc_name("pulse-shm-1234"), -1);
  EXPECT_EQ(owner_of_ipc_name("oslab.0"), -1);
}

TEST(SysvShm, PrivateAndGoneOnceRemoved) {
  int id = -1;
  {
    SysvShm shm = SysvShm::create(4096);
    id = shm.id();
    EXPECT_TRUE(sysv_exists("shm", id));
    shmid_ds info{};
    ASSERT_EQ(::shmctl(id, IPC_STAT, &info), 0);
    EXPECT_EQ(info.shm_perm.__key, IPC_PRIVATE);
    EXPECT_EQ(info.shm_perm.mode & 0777, 0600u);
    // A forked child inherits the attachment even after IPC_RMID.
    shm.remove();
    std::memcpy(shm.data(), "parent", 7);
    pid_t pid = ::fork();
    if (pid == 0) _exit(std::strcmp(static_cast<char*>(shm.data()), "parent") == 0 ? 0 : 1);
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    EXPECT_EQ(WEXITSTATUS(status), 0);
  }
  EXPECT_FALSE(sysv_exists("shm", id));
}

TEST(SysvShm, DestructorRemovesWhenNotRemovedExplicitly) {
  int id = -1;
  {
    SysvShm shm = SysvShm::create(4096);
    id = shm.id();
  }
  EXPECT_FALSE(sysv_exists("shm", id));
}

TEST(SysvId, SemaphoresAndQueuesAreRemoved) {
  int sem_id = -1, msg_id = -1;
  {
    SysvId sems = SysvId::semaphores(2);
    SysvId queue = SysvId::message_queue();
    sem_id = sems.id();
    msg_id = queue.id();
    EXPECT_TRUE(sysv_exists("sem", sem_id));
    EXPECT_TRUE(sysv_exists("msg", msg_id));
  }
  EXPECT_FALSE(sysv_exists("sem", sem_id));
  EXPECT_FALSE(sysv_exists("msg", msg_id));
}

TEST(PosixShm, UnlinkedOnceBothSidesHoldIt) {
  std::string name;
  {
    PosixShm shm = PosixShm::create("test", 4096);
    name = shm.name.name();
    EXPECT_TRUE(dev_shm_has(name));
    struct stat info {};
    ASSERT_EQ(::fstat(shm.fd.get(), &info), 0);
    EXPECT_EQ(info.st_mode & 0777, 0600u);
    EXPECT_EQ(info.st_size, 4096);
    UniqueFd second(::shm_open(name.c_str(), O_RDWR, 0));
    ASSERT_TRUE(second.valid());
    shm.name.unlink();
    EXPECT_FALSE(dev_shm_has(name));
    EXPECT_TRUE(second.valid());
  }
  EXPECT_FALSE(dev_shm_has(name));
}

TEST(PosixShm, DestructorUnlinks) {
  std::string name;
  {
    PosixShm shm = PosixShm::create("test", 128);
    name = shm.name.name();
  }
  EXPECT_FALSE(dev_shm_has(name));
}

TEST(Reaper, RemovesOnlyObjectsOfDeadRuns) {
  // A child creates an object in its name and dies without unlinking it.
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  pid_t pid = ::fork();
  if (pid == 0) {
    std::string name = unique_ipc_name("reaper");
    int fd = ::shm_open(name.c_str(), O_CREAT | O_EXCL | O_RDWR, 0600);
    ssize_t written = ::write(fds[1], name.c_str(), name.size());
    _exit(fd >= 0 && written > 0 ? 0 : 1);
  }
  ::close(fds[1]);
  char buffer[128] = {};
  ASSERT_GT(::read(fds[0], buffer, sizeof buffer - 1), 0);
  ::close(fds[0]);
  ASSERT_EQ(::waitpid(pid, nullptr, 0), pid);
  std::string dead = buffer;
  ASSERT_TRUE(dev_shm_has(dead));

  PosixShm alive = PosixShm::create("reaper", 64);
  EXPECT_GE(reap_stale_ipc_objects(), 1);
  EXPECT_FALSE(dev_shm_has(dead));
  EXPECT_TRUE(dev_shm_has(alive.name.name()));
}

}  // namespace
}  // namespace oslab
