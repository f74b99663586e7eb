#include "oslab/process.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <thread>

#include <gtest/gtest.h>

#include "oslab/error.hpp"
#include "oslab/ipc.hpp"

namespace oslab {
namespace {

using namespace std::chrono_literals;

// Running, or at least not yet dead: a killed orphan may stay a zombie until init reaps it.
bool alive(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string pid_field, comm, state;
  if (!(stat >> pid_field >> comm >> state)) return false;
  return state != "Z" && state != "X";
}

TEST(ExitStatus, Decodes) {
  pid_t pid = ::fork();
  if (pid == 0) _exit(3);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ExitStatus decoded = ExitStatus::decode(status);
  EXPECT_TRUE(decoded.exited);
  EXPECT_EQ(decoded.code, 3);
  EXPECT_FALSE(decoded.success());
  EXPECT_EQ(decoded.describe(), "exited with 3");

  pid = ::fork();
  if (pid == 0) {
    (void)::raise(SIGKILL);
    _exit(0);
  }
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  decoded = ExitStatus::decode(status);
  EXPECT_FALSE(decoded.exited);
  EXPECT_EQ(decoded.signal, SIGKILL);
  EXPECT_EQ(decoded.describe(), "killed by SIGKILL");
}

TEST(Child, RunsTheBodyAndIsReaped) {
  Child child = Child::fork([] { return 7; });
  ExitStatus status = child.wait(5s);
  EXPECT_TRUE(status.exited);
  EXPECT_EQ(status.code, 7);
  EXPECT_EQ(child.pid(), -1);
}

TEST(Child, AnExceptionInTheBodyEndsTheChildWithOne) {
  Child child = Child::fork([]() -> int { throw std::runtime_error("boom"); });
  ExitStatus status = child.wait(5s);
  EXPECT_TRUE(status.exited);
  EXPECT_EQ(status.code, 1);
}

TEST(Child, LeadsItsOwnProcessGroup) {
  auto* shared = static_cast<pid_t*>(::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0));
  Child child = Child::fork([shared] {
    shared[0] = ::getpgrp();
    shared[1] = ::getpid();
    return 0;
  });
  EXPECT_TRUE(child.wait(5s).success());
  EXPECT_EQ(shared[0], shared[1]);
  ::munmap(shared, 4096);
}

TEST(Child, WaitPastTheDeadlineKillsTheGroup) {
  pid_t grandchild_seen = 0;
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  Child child = Child::fork([&] {
    // A grandchild in the same group: the timeout must take it too.
    pid_t grandchild = ::fork();
    if (grandchild == 0) {
      ::pause();
      _exit(0);
    }
    ssize_t ignored = ::write(fds[1], &grandchild, sizeof grandchild);
    (void)ignored;
    ::pause();
    return 0;
  });
  ::close(fds[1]);
  ASSERT_EQ(::read(fds[0], &grandchild_seen, sizeof grandchild_seen), static_cast<ssize_t>(sizeof grandchild_seen));
  ::close(fds[0]);
  const pid_t pid = child.pid();
  auto start = std::chrono::steady_clock::now();
  EXPECT_THROW(child.wait(200ms), std::runtime_error);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
  EXPECT_FALSE(alive(pid));
  // The grandchild was SIGKILLed with the group; it is reparented, so poll until it is gone.
  for (int i = 0; i < 100 && alive(grandchild_seen); ++i) std::this_thread::sleep_for(10ms);
  EXPECT_FALSE(alive(grandchild_seen));
}

TEST(Child, DestructorKillsAndReaps) {
  pid_t pid = 0;
  {
    Child child = Child::fork([] {
      ::pause();
      return 0;
    });
    pid = child.pid();
    EXPECT_TRUE(alive(pid));
  }
  EXPECT_FALSE(alive(pid));  // reaped, not a zombie
}

TEST(Child, DiesWithItsParent) {
  // The middle process forks a Child and dies: PR_SET_PDEATHSIG must take the Child too.
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  pid_t middle = ::fork();
  if (middle == 0) {
    Child child = Child::fork([] {
      ::pause();
      return 0;
    });
    pid_t pid = child.pid();
    ssize_t ignored = ::write(fds[1], &pid, sizeof pid);
    (void)ignored;
    _exit(0);  // no destructor runs: only the death signal can end the child
  }
  ::close(fds[1]);
  pid_t orphan = 0;
  ASSERT_EQ(::read(fds[0], &orphan, sizeof orphan), static_cast<ssize_t>(sizeof orphan));
  ::close(fds[0]);
  ASSERT_EQ(::waitpid(middle, nullptr, 0), middle);
  for (int i = 0; i < 200 && alive(orphan); ++i) std::this_thread::sleep_for(10ms);
  EXPECT_FALSE(alive(orphan));
}

TEST(WaitFor, ReturnsNulloptWhileRunning) {
  Child child = Child::fork([] {
    ::usleep(300'000);
    return 0;
  });
  EXPECT_FALSE(wait_for(child.pid(), 20ms).has_value());
  auto status = wait_for(child.pid(), 5s);
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(status->success());
}

TEST(Cleanup, RunNowKillsTrackedChildrenAndRemovesObjects) {
  // In a child, so that the handlers and tables of this test process stay untouched.
  Child tester = Child::fork([] {
    pid_t victim = ::fork();
    if (victim == 0) {
      ::pause();
      _exit(0);
    }
    cleanup::track_child(victim);
    std::string name = unique_ipc_name("cleanup");
    int fd = ::shm_open(name.c_str(), O_CREAT | O_EXCL | O_RDWR, 0600);
    if (fd < 0) return 10;
    cleanup::track_object(cleanup::Kind::posix_shm, name.c_str());
    cleanup::run_now();
    int status = 0;
    if (::waitpid(victim, &status, 0) != victim || !WIFSIGNALED(status)) return 11;
    if (::shm_open(name.c_str(), O_RDWR, 0) != -1 || errno != ENOENT) return 12;
    return 0;
  });
  EXPECT_EQ(tester.wait(10s).code, 0);
}

TEST(Cleanup, SigtermRemovesObjectsAndEndsWithTheSignal) {
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  Child tester = Child::fork([&] {
    cleanup::install(std::chrono::seconds(30));
    PosixShm shm = PosixShm::create("sigterm", 64);  // pause() never returns: only the handler can unlink it
    ssize_t ignored = ::write(fds[1], shm.name.name().c_str(), shm.name.name().size() + 1);
    (void)ignored;
    ::pause();
    return 0;
  });
  ::close(fds[1]);
  char name[128] = {};
  ASSERT_GT(::read(fds[0], name, sizeof name), 0);
  ::close(fds[0]);
  ::kill(tester.pid(), SIGTERM);
  ExitStatus status = tester.wait(10s);
  EXPECT_FALSE(status.exited);
  EXPECT_EQ(status.signal, SIGTERM);
  EXPECT_NE(::access((std::string("/dev/shm") + name).c_str(), F_OK), 0) << name;
}

TEST(Cleanup, WatchdogEndsAStuckRun) {
  Child tester = Child::fork([] {
    cleanup::install(std::chrono::seconds(1));
    ::pause();
    return 0;
  });
  ExitStatus status = tester.wait(10s);
  EXPECT_TRUE(status.exited);
  EXPECT_EQ(status.code, 1);
}

// A missing helper is a broken installation (exit 1), not a feature the machine lacks (77).
TEST(HelperPath, AMissingHelperIsAFailureNotASkip) {
  try {
    helper_path("oslab-no-such-helper");
    FAIL();
  } catch (const SkipError&) {
    FAIL() << "a skip";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("oslab-no-such-helper"), std::string::npos);
  }
}

// PR_SET_PDEATHSIG fires when the forking *thread* ends; the child must live on while the
// process does.
TEST(Child, OutlivesTheThreadThatForkedIt) {
  pid_t pid = 0;
  Child child;
  std::thread([&] {
    child = Child::fork([] {
      // The parent-death signal's handler interrupts pause() when the forking thread ends: wait again.
      for (;;) ::pause();
      return 0;
    });
    pid = child.pid();
  }).join();
  std::this_thread::sleep_for(300ms);
  EXPECT_TRUE(alive(pid)) << "the child died with the thread that forked it";
  child.kill();
  EXPECT_FALSE(alive(pid));
}

// The watchdog is a thread: it leaves SIGALRM and alarm() to the labs.
TEST(Cleanup, TheWatchdogUsesNoSignal) {
  Child tester = Child::fork([] {
    cleanup::install(std::chrono::seconds(30));
    struct sigaction current {};
    ::sigaction(SIGALRM, nullptr, &current);
    if (current.sa_handler != SIG_DFL) return 10;
    if (::alarm(0) != 0) return 11;  // no alarm pending
    return 0;
  });
  EXPECT_EQ(tester.wait(10s).code, 0);
}

// Objects tracked and untracked from many threads at once: every slot is claimed once.
TEST(Cleanup, TrackingObjectsIsRaceFree) {
  Child tester = Child::fork([] {
    std::vector<std::thread> threads;
    for (int t = 0; t < 8; ++t)
      threads.emplace_back([t] {
        for (int i = 0; i < 2000; ++i) {
          cleanup::track_object(cleanup::Kind::sysv_shm, nullptr, t * 100000 + i);
          cleanup::untrack_object(cleanup::Kind::sysv_shm, nullptr, t * 100000 + i);
        }
      });
    for (auto& thread : threads) thread.join();
    // Every slot is free again: 64 new objects fit, and removing them (ids that do not exist) is harmless.
    for (int i = 0; i < 64; ++i) cleanup::track_object(cleanup::Kind::sysv_shm, nullptr, -2 - i);
    cleanup::run_now();
    return 0;
  });
  EXPECT_EQ(tester.wait(30s).code, 0);
}

}  // namespace
}  // namespace oslab
