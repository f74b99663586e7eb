// Your filter: see ../README.md and ../allowlist.hpp.
#include "allowlist.hpp"

#include <seccomp.h>

int install_filter() {
  // TODO: seccomp_init(SCMP_ACT_ERRNO(EPERM)); one seccomp_rule_add(ctx, SCMP_ACT_ALLOW, ...)
  // per call hw-wc needs (find them: strace -f ./hw-wc FILE), openat only with
  // (flags & (O_ACCMODE | O_CREAT)) == O_RDONLY; seccomp_load; seccomp_release.
  return 0;
}
