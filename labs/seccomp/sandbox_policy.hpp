// What oslab-sandbox forbids, by class: the system calls that student code has no business
// making (debugging other processes, kernel modules, mounts, new namespaces, reboot, bpf...).
// A forbidden call is stopped by a seccomp filter with SECCOMP_RET_USER_NOTIF, so that the
// supervisor, outside the sandbox, names it: a SIGSYS handler (RET_TRAP) could be replaced by
// the very code it is meant to report.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace oslab::sandbox {

struct SyscallClass {
  const char* id;           // "debugging"
  const char* description;  // "reading or controlling another process"
  std::span<const char* const> syscalls;
};

// Every forbidden class, in the order --list-classes prints them.
std::span<const SyscallClass> forbidden_classes();

// The class a system call (by name) belongs to, or nullptr when it is allowed.
const SyscallClass* class_of(std::string_view syscall);

// clone() flags that create namespaces: a clone with any of them is forbidden (class
// "namespaces"); clone3, whose flags seccomp cannot read, fails with ENOSYS so that the C
// library falls back to clone.
constexpr uint64_t kCloneNamespaceFlags = 0x00020000ull     // CLONE_NEWNS
                                          | 0x02000000ull   // CLONE_NEWCGROUP
                                          | 0x04000000ull   // CLONE_NEWUTS
                                          | 0x08000000ull   // CLONE_NEWIPC
                                          | 0x10000000ull   // CLONE_NEWUSER
                                          | 0x20000000ull   // CLONE_NEWPID
                                          | 0x40000000ull;  // CLONE_NEWNET
constexpr uint64_t kCloneThread = 0x00010000ull;            // CLONE_THREAD

}  // namespace oslab::sandbox
