// oslab-sandbox, the launcher graders run student code in: a legal program runs; each
// forbidden action is stopped, and the report names the system call and its class; the
// filesystem, network, process, memory, file and CPU limits hold; the deadline kills the
// program and everything it started.

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "../labs/lab_runner.hpp"

namespace oslab::test {
namespace {

const std::string kSandbox = std::string(OSLAB_LIBEXEC_DIR) + "/oslab-sandbox";
const std::string kProbe = std::string(OSLAB_TESTS_DIR) + "/sandbox-probe";

// As root the sandbox runs the program as an unprivileged user, who must be able to reach it.
class ReachableProbe : public ::testing::Environment {
 public:
  void SetUp() override {
    if (::geteuid() != 0) return;
    if (const std::string closed = private_ancestor(kProbe); !closed.empty())
      GTEST_SKIP() << closed << " is not searchable by other users: the sandboxed program cannot run from here";
  }
};
[[maybe_unused]] ::testing::Environment* const kReachableProbe =
    ::testing::AddGlobalTestEnvironment(new ReachableProbe);

// A scratch directory anyone may write (so that only Landlock, not permissions, can refuse).
class Scratch {
 public:
  Scratch() {
    char pattern[] = "/tmp/oslab-sandbox-test.XXXXXX";
    path_ = ::mkdtemp(pattern);
    ::chmod(path_.c_str(), 0777);
  }
  ~Scratch() { std::filesystem::remove_all(path_); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

struct Sandboxed {
  RunResult run;
  nlohmann::json report;
};

Sandboxed sandboxed(std::vector<std::string> options, const std::vector<std::string>& probe_args) {
  Scratch scratch;
  const std::string report_path = scratch.path() + "/report.json";
  std::vector<std::string> argv{kSandbox, "--report", report_path};
  argv.insert(argv.end(), options.begin(), options.end());
  argv.emplace_back("--");
  argv.push_back(kProbe);
  argv.insert(argv.end(), probe_args.begin(), probe_args.end());
  Sandboxed result{run_command(argv, std::chrono::seconds(30)), {}};
  std::ifstream in(report_path);
  if (in) result.report = nlohmann::json::parse(in, nullptr, false);
  return result;
}

bool seccomp_built(const nlohmann::json& report) {
  return report.value("seccomp", "").find("unavailable") == std::string::npos;
}
bool landlock_here(const nlohmann::json& report) {
  return report.value("landlock", "").starts_with("ABI");
}
bool namespaces_here(const nlohmann::json& report) {
  return report.value("namespaces", "").starts_with("pid");
}

TEST(Sandbox, ALegalProgramRuns) {
  Sandboxed s = sandboxed({}, {"ok"});
  EXPECT_EQ(s.run.exit_code, 0) << s.run.err;
  EXPECT_EQ(s.run.out, "a legal program ran\n");
  EXPECT_EQ(s.report["exit_code"], 0);
  EXPECT_EQ(s.report["violations"].size(), 0u);
  EXPECT_FALSE(s.report["timed_out"].get<bool>());
  for (const char* field : {"namespaces", "landlock", "seccomp", "limits", "cpu_s", "elapsed_s"})
    EXPECT_TRUE(s.report.contains(field)) << field;
}

struct Forbidden {
  const char* action;
  const char* syscall;
  const char* klass;
};

class SandboxForbids : public ::testing::TestWithParam<Forbidden> {};

TEST_P(SandboxForbids, StopsItNamesItAndKills) {
  const Forbidden& forbidden = GetParam();
  Sandboxed s = sandboxed({}, {forbidden.action});
  if (!seccomp_built(s.report)) GTEST_SKIP() << s.report.value("seccomp", "");
  EXPECT_EQ(s.run.exit_code, 159) << "stdout: " << s.run.out << "\nstderr: " << s.run.err;
  ASSERT_GE(s.report["violations"].size(), 1u) << s.report.dump();
  EXPECT_EQ(s.report["violations"][0]["syscall"], forbidden.syscall);
  EXPECT_EQ(s.report["violations"][0]["class"], forbidden.klass);
  EXPECT_TRUE(s.report["forbidden"].get<bool>());
  EXPECT_NE(s.run.err.find(std::string("forbidden system call: ") + forbidden.syscall), std::string::npos) << s.run.err;
  EXPECT_EQ(s.run.out.find("succeeded"), std::string::npos) << s.run.out;
}

INSTANTIATE_TEST_SUITE_P(
    EachAction, SandboxForbids,
    ::testing::Values(Forbidden{"ptrace", "ptrace", "debugging"}, Forbidden{"mount", "mount", "mounts"},
                      Forbidden{"umount", "umount2", "mounts"}, Forbidden{"chroot", "chroot", "mounts"},
                      Forbidden{"unshare", "unshare", "namespaces"}, Forbidden{"setns", "setns", "namespaces"},
                      Forbidden{"clone-newnet", "clone", "namespaces"},
                      Forbidden{"init-module", "init_module", "modules"},
                      Forbidden{"delete-module", "delete_module", "modules"}, Forbidden{"reboot", "reboot", "reboot"},
                      Forbidden{"kexec", "kexec_load", "reboot"}, Forbidden{"bpf", "bpf", "bpf"},
                      Forbidden{"io-uring", "io_uring_setup", "io_uring"},
                      Forbidden{"set-clock", "clock_settime", "system"}),
    [](const ::testing::TestParamInfo<Forbidden>& param) {
      std::string name = param.param.action;
      std::replace(name.begin(), name.end(), '-', '_');
      return name;
    });

TEST(Sandbox, AllowViolationsRefusesWithEpermAndCarriesOn) {
  Sandboxed s = sandboxed({"--allow-violations"}, {"ptrace"});
  if (!seccomp_built(s.report)) GTEST_SKIP() << s.report.value("seccomp", "");
  EXPECT_EQ(s.run.exit_code, 3);
  EXPECT_EQ(s.run.out, "ptrace: Operation not permitted\n");
  EXPECT_EQ(s.report["violations"][0]["syscall"], "ptrace");
}

TEST(Sandbox, Clone3FailsWithEnosysSoTheCLibraryFallsBackToClone) {
  Sandboxed s = sandboxed({}, {"clone3"});
  if (!seccomp_built(s.report)) GTEST_SKIP() << s.report.value("seccomp", "");
  EXPECT_EQ(s.run.exit_code, 3);
  EXPECT_EQ(s.run.out, "clone3: Function not implemented\n");
  EXPECT_EQ(s.report["violations"].size(), 0u);
}

TEST(Sandbox, WritesOnlyWhereAllowed) {
  Scratch outside, inside;
  Sandboxed refused = sandboxed({"--rw", inside.path()}, {"write", outside.path() + "/file"});
  if (!landlock_here(refused.report)) GTEST_SKIP() << refused.report.value("landlock", "");
  EXPECT_EQ(refused.run.exit_code, 3);
  EXPECT_EQ(refused.run.out, "open for writing: Permission denied\n");
  Sandboxed allowed = sandboxed({"--rw", inside.path()}, {"write", inside.path() + "/file"});
  EXPECT_EQ(allowed.run.exit_code, 0) << allowed.run.out << allowed.run.err;
}

TEST(Sandbox, ReadsOnlyWhereAllowed) {
  Scratch secret;
  { std::ofstream(secret.path() + "/answers.txt") << "the reference solution\n"; }
  ::chmod((secret.path() + "/answers.txt").c_str(), 0644);
  const std::vector<std::string> ro = {"--ro",   "/usr", "--ro", "/lib", "--ro",
                                       "/lib64", "--ro", "/etc", "--ro", OSLAB_TESTS_DIR};
  Sandboxed refused = sandboxed(ro, {"read", secret.path() + "/answers.txt"});
  if (!landlock_here(refused.report)) GTEST_SKIP() << refused.report.value("landlock", "");
  EXPECT_EQ(refused.run.exit_code, 3) << refused.run.err;
  EXPECT_EQ(refused.run.out, "open for reading: Permission denied\n");
  Sandboxed everywhere = sandboxed({}, {"read", secret.path() + "/answers.txt"});
  EXPECT_EQ(everywhere.run.exit_code, 0) << everywhere.run.out << everywhere.run.err;
}

TEST(Sandbox, NoNetworkButLoopback) {
  Sandboxed network = sandboxed({}, {"network"});
  if (!namespaces_here(network.report)) GTEST_SKIP() << network.report.value("namespaces", "");
  EXPECT_EQ(network.run.exit_code, 3);
  EXPECT_EQ(network.run.out, "connect to 192.0.2.1: Network is unreachable\n");
  Sandboxed loopback = sandboxed({}, {"loopback"});
  EXPECT_EQ(loopback.run.exit_code, 0) << loopback.run.out << loopback.run.err;
  EXPECT_EQ(loopback.run.out, "loopback works\n");
}

TEST(Sandbox, CannotSeeProcessesOutside) {
  Sandboxed s = sandboxed({}, {"kill", std::to_string(::getpid())});
  if (!namespaces_here(s.report)) GTEST_SKIP() << s.report.value("namespaces", "");
  EXPECT_EQ(s.run.exit_code, 3);
  EXPECT_EQ(s.run.out, "kill: No such process\n");
}

TEST(Sandbox, ForkBombHitsTheProcessLimit) {
  Sandboxed s = sandboxed({"--processes", "20"}, {"fork-bomb"});
  EXPECT_EQ(s.run.exit_code, 3) << s.run.out << s.run.err;
  EXPECT_NE(s.run.out.find("Resource temporarily unavailable"), std::string::npos) << s.run.out;
}

TEST(Sandbox, MemoryLimit) {
  Sandboxed s = sandboxed({"--memory", "64"}, {"memory", "128"});
  EXPECT_EQ(s.run.exit_code, 3);
  EXPECT_EQ(s.run.out, "mmap: Cannot allocate memory\n");
}

TEST(Sandbox, FileLimit) {
  Sandboxed s = sandboxed({"--files", "16"}, {"files"});
  EXPECT_EQ(s.run.exit_code, 3);
  EXPECT_EQ(s.run.out, "open failed after 13 files: Too many open files\n");
}

TEST(Sandbox, CpuLimit) {
  Sandboxed s = sandboxed({"--cpu", "1", "--timeout", "20"}, {"spin"});
  EXPECT_TRUE(s.run.exit_code == 128 + SIGXCPU || s.run.exit_code == 128 + SIGKILL) << s.run.exit_code;
  EXPECT_FALSE(s.report["timed_out"].get<bool>());
  EXPECT_GE(s.report["cpu_s"].get<double>(), 0.9);
}

// The uid's processes, from /proc: what the sandbox must not leave behind.
int processes_of(uid_t uid) {
  int count = 0;
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    std::ifstream status(entry.path() / "status");
    std::string line;
    while (std::getline(status, line))
      if (line.starts_with("Uid:")) {
        if (std::stoul(line.substr(4)) == uid) ++count;
        break;
      }
  }
  return count;
}

TEST(Sandbox, TheDeadlineKillsEverythingItStarted) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to choose the uid the program runs as";
  const uid_t uid = 3'900'000 + static_cast<uid_t>(::getpid() % 100'000);
  Sandboxed s = sandboxed({"--timeout", "1", "--uid", std::to_string(uid)}, {"hang"});
  EXPECT_EQ(s.run.exit_code, 124) << s.run.err;
  EXPECT_TRUE(s.report["timed_out"].get<bool>());
  EXPECT_NE(s.run.err.find("time limit of 1 s reached"), std::string::npos) << s.run.err;
  EXPECT_EQ(processes_of(uid), 0) << "the program's children (in their own sessions) survived";
}

TEST(Sandbox, CountsTheCallsItIsAskedTo) {
  Sandboxed s = sandboxed({"--count", "clone,pipe,pipe2"}, {"count"});
  if (!seccomp_built(s.report)) GTEST_SKIP() << s.report.value("seccomp", "");
  EXPECT_EQ(s.run.exit_code, 0) << s.run.err;
  const auto& counts = s.report["counts"];
  EXPECT_EQ(counts.value("clone", 0), 3);
  EXPECT_EQ(counts.value("pipe", 0) + counts.value("pipe2", 0), 2);
}

TEST(Sandbox, BadInputIsOneLineAndExitTwo) {
  for (const auto& args : std::vector<std::vector<std::string>>{
           {}, {"--timeout", "0", "--", "/bin/true"}, {"--no-such-option"}, {"--files", "x"}}) {
    std::vector<std::string> argv{kSandbox};
    argv.insert(argv.end(), args.begin(), args.end());
    RunResult run = run_command(argv);
    EXPECT_EQ(run.exit_code, 2) << run.err;
    EXPECT_EQ(std::count(run.err.begin(), run.err.end(), '\n'), 1) << run.err;
  }
}

TEST(Sandbox, ListsTheForbiddenClasses) {
  RunResult run = run_command({kSandbox, "--list-classes"});
  EXPECT_EQ(run.exit_code, 0);
  for (const char* klass : {"debugging", "modules", "mounts", "namespaces", "reboot", "bpf", "io_uring", "system"})
    EXPECT_NE(run.out.find(klass), std::string::npos) << klass;
}

}  // namespace
}  // namespace oslab::test
