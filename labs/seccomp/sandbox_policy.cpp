#include "sandbox_policy.hpp"

#include <array>

namespace oslab::sandbox {
namespace {

constexpr std::array<const char*, 6> kDebugging = {"ptrace",          "process_vm_readv", "process_vm_writev",
                                                   "perf_event_open", "pidfd_getfd",      "kcmp"};
constexpr std::array<const char*, 3> kModules = {"init_module", "finit_module", "delete_module"};
constexpr std::array<const char*, 14> kMounts = {"mount",         "umount2", "pivot_root", "chroot",  "move_mount",
                                                 "open_tree",     "fsopen",  "fsconfig",   "fsmount", "fspick",
                                                 "mount_setattr", "swapon",  "swapoff",    "quotactl"};
constexpr std::array<const char*, 2> kNamespaces = {"unshare", "setns"};
constexpr std::array<const char*, 3> kReboot = {"reboot", "kexec_load", "kexec_file_load"};
constexpr std::array<const char*, 2> kBpf = {"bpf", "userfaultfd"};
constexpr std::array<const char*, 3> kIoUring = {"io_uring_setup", "io_uring_enter", "io_uring_register"};
constexpr std::array<const char*, 3> kKeys = {"add_key", "request_key", "keyctl"};
constexpr std::array<const char*, 13> kSystem = {
    "settimeofday", "clock_settime", "clock_adjtime", "adjtimex", "sethostname",       "setdomainname", "acct",
    "iopl",         "ioperm",        "syslog",        "vhangup",  "open_by_handle_at", "lookup_dcookie"};

constexpr std::array<SyscallClass, 9> kClasses = {{
    {"debugging", "reading or controlling another process", kDebugging},
    {"modules", "loading or removing kernel modules", kModules},
    {"mounts", "changing the mount table or the root", kMounts},
    {"namespaces", "creating or entering namespaces", kNamespaces},
    {"reboot", "rebooting or loading a new kernel", kReboot},
    {"bpf", "loading programs into the kernel", kBpf},
    {"io_uring", "io_uring, whose operations seccomp does not see", kIoUring},
    {"keys", "the kernel's key stores", kKeys},
    {"system", "the machine's clock, name, I/O ports and logs", kSystem},
}};

}  // namespace

std::span<const SyscallClass> forbidden_classes() {
  return kClasses;
}

const SyscallClass* class_of(std::string_view syscall) {
  if (syscall == "clone" || syscall == "clone3") return &kClasses[3];  // only with namespace flags
  for (const SyscallClass& forbidden : kClasses)
    for (const char* name : forbidden.syscalls)
      if (syscall == name) return &forbidden;
  return nullptr;
}

}  // namespace oslab::sandbox
