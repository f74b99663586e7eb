// oslab-sandbox: runs one program the way a grader must run student code. Each part does what
// it can and what the others cannot:
//   namespaces  mount, PID, network (loopback only, brought up), IPC and UTS: the program sees
//               only its own processes, cannot reach the network, and its System V and POSIX
//               IPC objects (a private /dev/shm) vanish with it;
//   Landlock    the filesystem: read only where --ro says (everywhere by default), write only
//               where --rw says; detected, and said when the kernel lacks it;
//   setrlimit   CPU seconds, address space, open files, processes, file size, no core dumps;
//   seccomp     classes of system calls (sandbox_policy.cpp) stopped with
//               SECCOMP_RET_USER_NOTIF: this supervisor, outside the sandbox, names each one;
//               --count counts chosen calls the same way (proof that a solution used them);
//   deadline    at --timeout the whole PID namespace (else the process group) is killed.
// As root the program runs as an unprivileged user of its own (uid 10000000 + pid), so the
// process limit counts only its processes; otherwise a user namespace gives the namespaces.
//
// Try:     oslab-sandbox -- /bin/echo hello
//          oslab-sandbox --report r.json --count clone,pipe,pipe2 -- sh -c 'ls | wc -l'
//          oslab-sandbox -- strace true          (ptrace: forbidden, named, killed)
// Exit:    the program's exit code; 128+N when it was killed by signal N; 124 at the deadline;
//          159 (128+SIGSYS) when it made a forbidden call; 125 when the sandbox failed; 2 usage.

#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/close_range.h>
#include <linux/seccomp.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#ifdef OSLAB_HAVE_LIBSECCOMP
#include <seccomp.h>
#endif

#include "oslab/error.hpp"
#include "oslab/fdpass.hpp"
#include "oslab/handles.hpp"
#include "oslab/process.hpp"
#include "oslab/syscalls.hpp"
#include "oslab/version.hpp"
#include "sandbox_policy.hpp"

namespace {

using oslab::check_errno;
using oslab::describe_errno;
using oslab::SysError;
using oslab::UniqueFd;

constexpr int kExitTimeout = 124;
constexpr int kExitSandboxError = 125;
constexpr int kExitNotFound = 127;
constexpr int kExitForbidden = 128 + SIGSYS;

struct Options {
  std::vector<std::string> command;
  double timeout_s = 10;
  long cpu_s = 10;
  long memory_mib = 1024;
  long files = 256;
  long processes = 256;
  long fsize_mib = 64;
  std::vector<std::string> ro, rw;
  std::vector<std::string> count;
  std::string report_path;
  std::string chdir;
  long uid = -1;  // -1: 10000000 + pid when root; unchanged otherwise
  bool namespaces = true;
  bool landlock = true;
  bool seccomp = true;
  bool allow_violations = false;
  bool quiet = false;
};

// What the run found, for the report and the exit code.
struct Outcome {
  std::string namespaces, landlock, seccomp;
  std::vector<nlohmann::json> violations;
  std::map<std::string, uint64_t> counts;
  std::optional<int> target_status;  // raw wait status of the program
  bool timed_out = false;
  bool killed_for_violation = false;
  int stopped_by = 0;  // the sandbox itself got SIGINT, SIGTERM or SIGHUP
  std::string error;   // the sandbox itself failed
};

void say(const Options& options, const std::string& line) {
  if (!options.quiet) std::cerr << "oslab-sandbox: " << line << '\n';
}

// ---- Landlock (uapi structures defined here: Debian 12's headers stop at ABI 1) ----

struct LandlockRulesetAttr {
  uint64_t handled_access_fs;
  uint64_t handled_access_net;
  uint64_t scoped;
};
struct LandlockPathBeneath {
  uint64_t allowed_access;
  int32_t parent_fd;
} __attribute__((packed));

constexpr uint64_t kFsExecute = 1ull << 0, kFsWriteFile = 1ull << 1, kFsReadFile = 1ull << 2, kFsReadDir = 1ull << 3,
                   kFsRefer = 1ull << 13, kFsTruncate = 1ull << 14, kFsIoctlDev = 1ull << 15;
constexpr uint64_t kScopeAbstractUnixSocket = 1ull << 0, kScopeSignal = 1ull << 1;
constexpr int kLandlockRulePathBeneath = 1;
constexpr unsigned kLandlockCreateRulesetVersion = 1u << 0;

long landlock_abi() {
  return ::syscall(SYS_landlock_create_ruleset, nullptr, 0, kLandlockCreateRulesetVersion);
}

// Builds and enforces the ruleset in the calling (target) process (when the kernel has Landlock).
void apply_landlock(const Options& options, bool in_namespaces) {
  const long abi = landlock_abi();
  if (abi < 0) return;
  uint64_t fs = (1ull << 13) - 1;  // ABI 1: execute .. make_sym
  if (abi >= 2) fs |= kFsRefer;
  if (abi >= 3) fs |= kFsTruncate;
  if (abi >= 5) fs |= kFsIoctlDev;
  LandlockRulesetAttr attr{fs, 0, 0};
  size_t attr_size = sizeof(uint64_t);
  if (abi >= 6) {  // signals and abstract sockets stay within the sandbox
    attr.scoped = kScopeAbstractUnixSocket | kScopeSignal;
    attr_size = sizeof attr;
  }
  UniqueFd ruleset(static_cast<int>(
      check_errno("landlock_create_ruleset", ::syscall(SYS_landlock_create_ruleset, &attr, attr_size, 0))));
  const uint64_t read_dir = kFsExecute | kFsReadFile | kFsReadDir;
  const uint64_t read_file = kFsExecute | kFsReadFile;
  const uint64_t write_file = read_file | kFsWriteFile | (fs & (kFsTruncate | kFsIoctlDev));
  auto allow = [&](const std::string& path, bool writable) {
    UniqueFd fd(::open(path.c_str(), O_PATH | O_CLOEXEC));
    if (!fd.valid()) return;  // a path this system does not have (/lib64)
    struct stat st {};
    check_errno("fstat", ::fstat(fd.get(), &st));
    const bool dir = S_ISDIR(st.st_mode);
    LandlockPathBeneath rule{dir ? (writable ? fs : read_dir) : (writable ? write_file : read_file), fd.get()};
    check_errno(fmt::format("landlock_add_rule {}", path),
                ::syscall(SYS_landlock_add_rule, ruleset.get(), kLandlockRulePathBeneath, &rule, 0));
  };
  std::vector<std::string> ro = options.ro;
  if (ro.empty()) ro.emplace_back("/");
  for (const auto& path : ro) allow(path, false);
  for (const char* device : {"/dev/null", "/dev/zero", "/dev/full"}) allow(device, true);
  if (in_namespaces) {  // private to the sandbox: a fresh tmpfs, the namespace's queues
    allow("/dev/shm", true);
    allow("/dev/mqueue", true);
  }
  for (const auto& path : options.rw) allow(path, true);
  check_errno("landlock_restrict_self", ::syscall(SYS_landlock_restrict_self, ruleset.get(), 0));
}

std::string describe_landlock(const Options& options) {
  if (!options.landlock) return "off (--no-landlock)";
  const long abi = landlock_abi();
  if (abi < 0)
    return fmt::format("unavailable ({}): the filesystem is limited only by permissions", describe_errno(errno));
  return fmt::format(
      "ABI {}: read {}; write {}{}", abi,
      options.ro.empty() ? "everywhere" : fmt::format("{}", fmt::join(options.ro, ", ")),
      options.rw.empty() ? "/dev/null and the private /dev/shm" : fmt::format("{}", fmt::join(options.rw, ", ")),
      abi >= 6 ? "; signals and abstract sockets scoped to the sandbox" : "");
}

// ---- seccomp ----

#ifdef OSLAB_HAVE_LIBSECCOMP
int resolve(const char* name) {
  return seccomp_syscall_resolve_name(name);
}

// Loads the filter into the calling (target) process and returns the notification fd.
int load_filter(const Options& options) {
  scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
  if (ctx == nullptr) throw std::runtime_error("seccomp_init failed");
  auto rule = [&](uint32_t action, int nr, unsigned args, scmp_arg_cmp cmp) {
    const int rc = args == 0 ? seccomp_rule_add(ctx, action, nr, 0) : seccomp_rule_add(ctx, action, nr, 1, cmp);
    if (rc != 0) throw SysError(fmt::format("seccomp_rule_add {}", oslab::syscall_name(nr)), -rc);
  };
  for (const auto& forbidden : oslab::sandbox::forbidden_classes())
    for (const char* name : forbidden.syscalls)
      if (const int nr = resolve(name); nr >= 0) rule(SCMP_ACT_NOTIFY, nr, 0, {});
  bool count_clone = false;
  for (const auto& name : options.count) {
    if (name == "clone") count_clone = true;
    if (oslab::sandbox::class_of(name) != nullptr) continue;  // clone below; the others are forbidden anyway
    if (const int nr = resolve(name.c_str()); nr >= 0) rule(SCMP_ACT_NOTIFY, nr, 0, {});
  }
  const int clone = resolve("clone");
  if (count_clone) {
    rule(SCMP_ACT_NOTIFY, clone, 0, {});
  } else {
    for (uint64_t bit = 1; bit != 0; bit <<= 1)
      if ((oslab::sandbox::kCloneNamespaceFlags & bit) != 0)
        rule(SCMP_ACT_NOTIFY, clone, 1, SCMP_A0(SCMP_CMP_MASKED_EQ, bit, bit));
  }
  if (const int clone3 = resolve("clone3"); clone3 >= 0) rule(SCMP_ACT_ERRNO(ENOSYS), clone3, 0, {});
  if (const int rc = seccomp_load(ctx); rc != 0) {
    seccomp_release(ctx);
    throw SysError("seccomp_load", -rc);
  }
  const int fd = seccomp_notify_fd(ctx);
  seccomp_release(ctx);
  if (fd < 0) throw SysError("seccomp_notify_fd", -fd);
  return fd;
}
#endif

// ---- namespaces ----

void write_file(const std::string& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
  out.flush();
  if (!out) throw std::runtime_error(fmt::format("writing {}: {}", path, describe_errno(errno)));
}

void bring_up_loopback() {
  UniqueFd sock(check_errno("socket", ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)));
  ifreq request{};
  std::strncpy(request.ifr_name, "lo", IFNAMSIZ - 1);
  check_errno("ioctl SIOCGIFFLAGS lo", ::ioctl(sock.get(), SIOCGIFFLAGS, &request));
  request.ifr_flags = static_cast<short>(request.ifr_flags | IFF_UP | IFF_RUNNING);
  check_errno("ioctl SIOCSIFFLAGS lo", ::ioctl(sock.get(), SIOCSIFFLAGS, &request));
}

// Enters new namespaces in this (supervisor) process: its next child is PID 1 of a fresh PID
// namespace, with a private mount table, /dev/shm and /dev/mqueue, and only a loopback.
std::string enter_namespaces() {
  const uid_t uid = ::geteuid();
  const gid_t gid = ::getegid();
  std::string how = "pid, mount, network (loopback), ipc, uts";
  if (uid != 0) {
    check_errno("unshare(CLONE_NEWUSER)", ::unshare(CLONE_NEWUSER));
    write_file("/proc/self/setgroups", "deny");
    write_file("/proc/self/uid_map", fmt::format("0 {} 1", uid));
    write_file("/proc/self/gid_map", fmt::format("0 {} 1", gid));
    how += ", user";
  }
  check_errno("unshare(CLONE_NEWNS|NEWPID|NEWNET|NEWIPC|NEWUTS)",
              ::unshare(CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS));
  check_errno("mount / private", ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr));
  if (::access("/dev/shm", F_OK) == 0)
    check_errno("mount tmpfs /dev/shm",
                ::mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777,size=256m"));
  if (::access("/dev/mqueue", F_OK) == 0)
    (void)::mount("mqueue", "/dev/mqueue", "mqueue", MS_NOSUID | MS_NODEV, nullptr);
  bring_up_loopback();
  (void)::sethostname("oslab-sandbox", 13);
  return how;
}

// ---- the target: the program itself, after every restriction ----

void set_limit(int resource, rlim_t soft, rlim_t hard, const char* name) {
  rlimit limit{soft, hard};
  check_errno(name, ::setrlimit(resource, &limit));
}

void drop_capabilities() {
  for (int cap = 0; cap <= 63; ++cap) (void)::prctl(PR_CAPBSET_DROP, cap, 0, 0, 0);
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2] = {};
  check_errno("capset", ::syscall(SYS_capset, &header, data));
}

[[noreturn]] void run_target(const Options& options, uid_t run_as, int notify_socket, bool in_namespaces) {
  try {
    check_errno("setpgid", ::setpgid(0, 0));
    // The program gets stdin, stdout and stderr, nothing else of ours or of whoever ran us.
    check_errno("close_range", ::syscall(SYS_close_range, 3u, ~0u, CLOSE_RANGE_CLOEXEC));
    if (!options.chdir.empty()) check_errno(fmt::format("chdir {}", options.chdir), ::chdir(options.chdir.c_str()));
    constexpr rlim_t kMiB = 1024 * 1024;
    if (options.cpu_s > 0) set_limit(RLIMIT_CPU, options.cpu_s, options.cpu_s + 1, "setrlimit RLIMIT_CPU");
    if (options.memory_mib > 0)
      set_limit(RLIMIT_AS, options.memory_mib * kMiB, options.memory_mib * kMiB, "setrlimit RLIMIT_AS");
    set_limit(RLIMIT_NOFILE, options.files, options.files, "setrlimit RLIMIT_NOFILE");
    set_limit(RLIMIT_NPROC, options.processes, options.processes, "setrlimit RLIMIT_NPROC");
    set_limit(RLIMIT_FSIZE, options.fsize_mib * kMiB, options.fsize_mib * kMiB, "setrlimit RLIMIT_FSIZE");
    set_limit(RLIMIT_CORE, 0, 0, "setrlimit RLIMIT_CORE");
    if (run_as != 0) {  // we are root: become a user of the program's own
      check_errno("setgroups", ::setgroups(0, nullptr));
      check_errno("setresgid", ::setresgid(run_as, run_as, run_as));
      check_errno("setresuid", ::setresuid(run_as, run_as, run_as));
    } else if (in_namespaces) {
      drop_capabilities();  // root of its own user namespace only: give that up too
    }
    check_errno("prctl(PR_SET_NO_NEW_PRIVS)", ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0));
    if (options.landlock) apply_landlock(options, in_namespaces);
#ifdef OSLAB_HAVE_LIBSECCOMP
    if (options.seccomp) {
      UniqueFd notify(load_filter(options));
      oslab::send_fd(notify_socket, notify.get());
    }
#endif
    ::close(notify_socket);
    std::vector<char*> argv;
    for (const auto& word : options.command) argv.push_back(const_cast<char*>(word.c_str()));
    argv.push_back(nullptr);
    ::execvp(argv[0], argv.data());
    const int errnum = errno;
    std::cerr << fmt::format("oslab-sandbox: {}: {}\n", options.command[0], describe_errno(errnum));
    ::_exit(errnum == ENOENT ? kExitNotFound : 126);
  } catch (const std::exception& error) {
    std::cerr << "oslab-sandbox: " << error.what() << '\n';
    ::_exit(kExitSandboxError);
  }
}

// PID 1 of the sandbox's namespace (or a plain parent without one): mounts /proc, starts
// the program, reaps every orphan, and reports the program's status. When it returns, the
// kernel kills whatever the program left running in the namespace.
[[noreturn]] void run_init(const Options& options, uid_t run_as, int notify_socket, int status_pipe,
                           bool in_namespaces) {
  try {
    check_errno("prctl(PR_SET_PDEATHSIG)", ::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0));
    if (in_namespaces)
      check_errno("mount /proc", ::mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr));
    oslab::flush_stdio();
    const pid_t target = check_errno("fork", ::fork());
    if (target == 0) run_target(options, run_as, notify_socket, in_namespaces);
    ::close(notify_socket);
    const int32_t pid_message[2] = {-1, static_cast<int32_t>(target)};  // the target's pid (fallback mode)
    (void)::write(status_pipe, pid_message, sizeof pid_message);
    for (;;) {
      int status = 0;
      const pid_t pid = ::waitpid(-1, &status, 0);
      if (pid == -1 && errno == EINTR) continue;
      if (pid == -1) break;
      if (pid == target) {
        const int32_t message[2] = {0, status};
        (void)::write(status_pipe, message, sizeof message);
        break;
      }
    }
    ::_exit(0);
  } catch (const std::exception& error) {
    std::cerr << "oslab-sandbox: " << error.what() << '\n';
    ::_exit(kExitSandboxError);
  }
}

// ---- the supervisor ----

#ifdef OSLAB_HAVE_LIBSECCOMP
// Answers one notification: counts it, or records a violation. Returns true on a violation.
bool handle_notification(int notify_fd, const Options& options, Outcome& outcome) {
  seccomp_notif request{};
  if (::ioctl(notify_fd, SECCOMP_IOCTL_NOTIF_RECV, &request) != 0) return false;  // the caller died meanwhile
  const std::string name = oslab::syscall_name(request.data.nr);
  const oslab::sandbox::SyscallClass* forbidden = oslab::sandbox::class_of(name);
  if (name == "clone") {
    const uint64_t flags = request.data.args[0];
    forbidden = (flags & oslab::sandbox::kCloneNamespaceFlags) != 0 ? forbidden : nullptr;
    if (forbidden == nullptr) {
      ++outcome.counts["clone"];
      if ((flags & oslab::sandbox::kCloneThread) != 0) ++outcome.counts["clone(CLONE_THREAD)"];
    }
  } else if (forbidden == nullptr) {
    ++outcome.counts[name];
  }
  seccomp_notif_resp response{};
  response.id = request.id;
  if (forbidden != nullptr) {
    response.error = -EPERM;
    outcome.violations.push_back(
        {{"syscall", name}, {"class", forbidden->id}, {"why", forbidden->description}, {"pid", request.pid}});
    say(options, fmt::format("forbidden system call: {} ({}: {}){}", name, forbidden->id, forbidden->description,
                             options.allow_violations ? ", refused with EPERM" : "; the program is killed"));
  } else {
    response.flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
  }
  (void)::ioctl(notify_fd, SECCOMP_IOCTL_NOTIF_SEND, &response);
  return forbidden != nullptr;
}
#endif

struct Running {
  pid_t init = -1;
  pid_t target = -1;  // in our PID namespace (fallback mode only)
  bool in_namespaces = false;
  void kill_all() const {
    if (!in_namespaces && target > 0) (void)::kill(-target, SIGKILL);
    if (init > 0) (void)::kill(init, SIGKILL);  // PID 1: the kernel kills the whole namespace
  }
};

void supervise(const Options& options, Running& running, int notify_socket, int status_pipe, Outcome& outcome) {
  sigset_t signals;
  sigemptyset(&signals);
  for (int signo : {SIGINT, SIGTERM, SIGHUP}) sigaddset(&signals, signo);
  UniqueFd signal_fd(check_errno("signalfd", ::signalfd(-1, &signals, SFD_CLOEXEC)));
  UniqueFd init_fd(static_cast<int>(check_errno("pidfd_open", ::syscall(SYS_pidfd_open, running.init, 0))));
  UniqueFd notify_fd;
  bool socket_open = true, pipe_open = true, init_running = true;
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(static_cast<int64_t>(options.timeout_s * 1000));
  while (init_running || pipe_open) {
    std::vector<pollfd> fds = {{signal_fd.get(), POLLIN, 0}, {init_fd.get(), POLLIN, 0}, {status_pipe, POLLIN, 0}};
    if (!pipe_open) fds[2].fd = -1;
    fds.push_back({socket_open ? notify_socket : -1, POLLIN, 0});
    fds.push_back({notify_fd.valid() ? notify_fd.get() : -1, POLLIN, 0});
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0 && !outcome.timed_out) {
      outcome.timed_out = true;
      say(options,
          fmt::format("time limit of {} s reached: killing the program and everything it started", options.timeout_s));
      running.kill_all();
    }
    const int ready = ::poll(fds.data(), fds.size(), outcome.timed_out ? 1000 : static_cast<int>(left.count()) + 1);
    if (ready == -1 && errno == EINTR) continue;
    check_errno("poll", ready);
    if ((fds[0].revents & POLLIN) != 0) {
      signalfd_siginfo info{};
      (void)::read(signal_fd.get(), &info, sizeof info);
      running.kill_all();
      outcome.stopped_by = static_cast<int>(info.ssi_signo);
    }
    if (fds[2].revents != 0) {
      int32_t message[2];
      const ssize_t got = ::read(status_pipe, message, sizeof message);
      if (got == sizeof message && message[0] == -1)
        running.target = message[1];
      else if (got == sizeof message)
        outcome.target_status = message[1];
      else
        pipe_open = false;
    }
    if (fds[3].revents != 0) {
      const int fd = oslab::receive_fd(notify_socket);
      if (fd >= 0) notify_fd.reset(fd);
      socket_open = false;
    }
#ifdef OSLAB_HAVE_LIBSECCOMP
    if (fds[4].revents & POLLIN) {
      if (handle_notification(notify_fd.get(), options, outcome) && !options.allow_violations &&
          !outcome.killed_for_violation) {
        outcome.killed_for_violation = true;
        running.kill_all();
      }
    } else if (fds[4].revents & (POLLHUP | POLLERR)) {
      notify_fd.reset();  // no process uses the filter any more
    }
#endif
    if ((fds[1].revents & POLLIN) != 0 && init_running) {
      int status = 0;
      if (::waitpid(running.init, &status, WNOHANG) == running.init) {
        init_running = false;
        if (!running.in_namespaces && running.target > 0) (void)::kill(-running.target, SIGKILL);
        if (!oslab::ExitStatus::decode(status).success() && !outcome.target_status && outcome.error.empty() &&
            !outcome.timed_out && !outcome.killed_for_violation && outcome.stopped_by == 0)
          outcome.error = "the sandbox's init " + oslab::ExitStatus::decode(status).describe();
      }
    }
  }
}

int exit_code_of(const Outcome& outcome) {
  if (outcome.stopped_by != 0) return 128 + outcome.stopped_by;
  if (outcome.killed_for_violation) return kExitForbidden;
  if (outcome.timed_out) return kExitTimeout;
  if (!outcome.target_status) return kExitSandboxError;
  const oslab::ExitStatus status = oslab::ExitStatus::decode(*outcome.target_status);
  return status.exited ? status.code : 128 + status.signal;
}

void write_report(const Options& options, const Outcome& outcome, int exit_code, double elapsed_s) {
  rusage usage{};
  ::getrusage(RUSAGE_CHILDREN, &usage);
  nlohmann::json report = {
      {"command", options.command},
      {"exit_code", exit_code},
      {"timed_out", outcome.timed_out},
      {"forbidden", outcome.killed_for_violation || !outcome.violations.empty()},
      {"violations", outcome.violations},
      {"counts", outcome.counts},
      {"elapsed_s", elapsed_s},
      {"cpu_s", static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
                    static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6},
      {"max_rss_kib", usage.ru_maxrss},
      {"namespaces", outcome.namespaces},
      {"landlock", outcome.landlock},
      {"seccomp", outcome.seccomp},
      {"limits",
       {{"timeout_s", options.timeout_s},
        {"cpu_s", options.cpu_s},
        {"memory_mib", options.memory_mib},
        {"files", options.files},
        {"processes", options.processes},
        {"fsize_mib", options.fsize_mib}}},
  };
  if (outcome.target_status) {
    const auto status = oslab::ExitStatus::decode(*outcome.target_status);
    report["status"] = status.describe();
    report["signal"] = status.exited ? 0 : status.signal;
  }
  if (!outcome.error.empty()) report["error"] = outcome.error;
  std::ofstream out(options.report_path);
  out << report.dump(2) << '\n';
  if (!out) std::cerr << "oslab-sandbox: cannot write " << options.report_path << '\n';
}

std::string seccomp_description(const Options& options) {
#ifdef OSLAB_HAVE_LIBSECCOMP
  if (!options.seccomp) return "off (--no-seccomp)";
  size_t calls = 0;
  for (const auto& forbidden : oslab::sandbox::forbidden_classes()) calls += forbidden.syscalls.size();
  return fmt::format("{} forbidden calls in {} classes, reported through SECCOMP_RET_USER_NOTIF{}", calls,
                     oslab::sandbox::forbidden_classes().size(),
                     options.count.empty() ? "" : fmt::format("; counting {}", fmt::join(options.count, ",")));
#else
  (void)options;
  return "unavailable: oslab was built without libseccomp (apt-get install libseccomp-dev)";
#endif
}

void list_classes() {
  for (const auto& forbidden : oslab::sandbox::forbidden_classes())
    std::cout << fmt::format("{:<11} {}: {}\n", forbidden.id, forbidden.description,
                             fmt::join(forbidden.syscalls, ", "));
  std::cout << fmt::format("{:<11} {}: {}\n", "namespaces", "clone with a CLONE_NEW* flag", "clone");
}

Options parse(int argc, char** argv, bool& done) {
  Options options;
  CLI::App app{
      "oslab-sandbox: runs a program in namespaces, under Landlock, resource limits and a seccomp "
      "filter that names every forbidden system call"};
  app.set_version_flag("--version", std::string("oslab-sandbox (oslab) ") + oslab::kVersion);
  app.add_option("--timeout", options.timeout_s, "Wall-clock seconds before everything is killed (exit 124)")
      ->check(CLI::Range(0.01, 86400.0))
      ->default_val(10);
  app.add_option("--cpu", options.cpu_s, "RLIMIT_CPU seconds (0: none)")
      ->check(CLI::Range(0L, 86400L))
      ->default_val(10);
  app.add_option("--memory", options.memory_mib, "RLIMIT_AS MiB (0: none)")
      ->check(CLI::Range(0L, 1L << 20))
      ->default_val(1024);
  app.add_option("--files", options.files, "RLIMIT_NOFILE")->check(CLI::Range(8L, 1L << 20))->default_val(256);
  app.add_option("--processes", options.processes, "RLIMIT_NPROC (tasks of the sandbox's user)")
      ->check(CLI::Range(1L, 1L << 20))
      ->default_val(256);
  app.add_option("--fsize", options.fsize_mib, "RLIMIT_FSIZE MiB")->check(CLI::Range(1L, 1L << 20))->default_val(64);
  app.add_option("--ro", options.ro, "Readable path (repeat); without any, everything is readable");
  app.add_option("--rw", options.rw, "Writable path (repeat); without any, only /dev/null and the private /dev/shm");
  app.add_option("--count", options.count, "System calls to count, by name (comma-separated): in the report")
      ->delimiter(',');
  app.add_option("--report", options.report_path, "Write a JSON report of the run here");
  app.add_option("--chdir", options.chdir, "Working directory of the program");
  app.add_option("--uid", options.uid, "As root: run as this uid and gid (default 10000000 + pid)")
      ->check(CLI::Range(1L, 4'000'000'000L));
  app.add_flag("!--no-namespaces", options.namespaces, "Do not create namespaces");
  app.add_flag("!--no-landlock", options.landlock, "Do not use Landlock");
  app.add_flag("!--no-seccomp", options.seccomp, "Do not load the seccomp filter");
  app.add_flag("--allow-violations", options.allow_violations,
               "Refuse forbidden calls with EPERM and carry on (default: kill the program)");
  app.add_flag("-q,--quiet", options.quiet, "No messages on stderr (the report still has them)");
  bool list = false;
  app.add_flag("--list-classes", list, "Print the forbidden classes of system calls and exit");
  // The program and its arguments follow "--", split off here: CLI11 would let a repeated
  // option swallow them.
  int ours = argc;
  for (int i = 1; i < argc; ++i)
    if (std::string_view(argv[i]) == "--") {
      ours = i;
      break;
    }
  for (int i = ours + 1; i < argc; ++i) options.command.emplace_back(argv[i]);
  app.footer("The program and its arguments follow --: oslab-sandbox [OPTIONS] -- PROGRAM [ARGS...]");
  try {
    app.parse(ours, argv);
  } catch (const CLI::CallForHelp& help) {
    std::cout << app.help();
    done = true;
    return options;
  } catch (const CLI::CallForVersion&) {
    std::cout << "oslab-sandbox (oslab) " << oslab::kVersion << '\n';
    done = true;
    return options;
  } catch (const CLI::ParseError& error) {
    throw oslab::UsageError(error.what());
  }
  if (list) {
    list_classes();
    done = true;
    return options;
  }
  if (options.command.empty()) throw oslab::UsageError("no program to run (oslab-sandbox [OPTIONS] -- PROGRAM [ARGS])");
  return options;
}

}  // namespace

int main(int argc, char** argv) {
  oslab::set_program_name("oslab-sandbox");
  Options options;
  try {
    bool done = false;
    options = parse(argc, argv, done);
    if (done) return 0;
  } catch (const oslab::UsageError& error) {
    std::cerr << "oslab-sandbox: " << error.what() << '\n';
    return 2;
  }
  const auto started = std::chrono::steady_clock::now();
  Outcome outcome;
  int exit_code = kExitSandboxError;
  try {
    sigset_t signals;
    sigemptyset(&signals);
    for (int signo : {SIGINT, SIGTERM, SIGHUP}) sigaddset(&signals, signo);
    check_errno("sigprocmask", ::sigprocmask(SIG_BLOCK, &signals, nullptr));
    // 0: not root, the program keeps our uid (root of its user namespace, without capabilities).
    const uid_t run_as = ::geteuid() != 0  ? 0
                         : options.uid > 0 ? static_cast<uid_t>(options.uid)
                                           : static_cast<uid_t>(10'000'000 + ::getpid());
    Running running;
    if (options.namespaces) {
      try {
        outcome.namespaces = enter_namespaces();
        running.in_namespaces = true;
      } catch (const std::exception& error) {
        outcome.namespaces = std::string("unavailable: ") + error.what();
        say(options,
            "no namespaces (" + std::string(error.what()) + "): the program sees the machine's processes and network");
      }
    } else {
      outcome.namespaces = "off (--no-namespaces)";
    }
    outcome.landlock = describe_landlock(options);
    if (options.landlock && landlock_abi() < 0) say(options, "no Landlock: " + outcome.landlock);
    outcome.seccomp = seccomp_description(options);
    int sockets[2];
    check_errno("socketpair", ::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sockets));
    UniqueFd supervisor_socket(sockets[0]), target_socket(sockets[1]);
    oslab::Pipe status = oslab::Pipe::create();
    oslab::flush_stdio();
    running.init = check_errno("fork", ::fork());
    if (running.init == 0) {
      ::sigprocmask(SIG_UNBLOCK, &signals, nullptr);
      supervisor_socket.reset();
      status.read_end.reset();
      run_init(options, run_as, target_socket.get(), status.write_end.get(), running.in_namespaces);
    }
    target_socket.reset();
    status.write_end.reset();
    supervise(options, running, supervisor_socket.get(), status.read_end.get(), outcome);
    exit_code = outcome.error.empty() || outcome.target_status ? exit_code_of(outcome) : kExitSandboxError;
    if (!outcome.error.empty()) say(options, outcome.error);
  } catch (const std::exception& error) {
    outcome.error = error.what();
    say(options, error.what());
    exit_code = kExitSandboxError;
  }
  if (!options.report_path.empty())
    write_report(options, outcome, exit_code,
                 std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
  return exit_code;
}
