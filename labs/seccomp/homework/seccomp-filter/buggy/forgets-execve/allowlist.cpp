// Buggy solution (forgets-execve): allows what hw-wc needs, but not the execve that starts it.
// Not for students: `scripts/oslab handout` leaves it out.
#include "allowlist.hpp"

#include <fcntl.h>
#include <seccomp.h>

#include <cerrno>

int install_filter() {
  scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ERRNO(EPERM));
  if (ctx == nullptr) return -ENOMEM;
  // What hw-wc makes, from `strace -f hw-wc FILE`: the C library's start (a static binary),
  // reading the file, writing the counts, and leaving; execve to start it at all.
  const int needed[] = {
      SCMP_SYS(brk),        SCMP_SYS(arch_prctl), SCMP_SYS(set_tid_address), SCMP_SYS(set_robust_list),
      SCMP_SYS(rseq),       SCMP_SYS(prlimit64),  SCMP_SYS(readlink),        SCMP_SYS(getrandom),
      SCMP_SYS(mprotect),   SCMP_SYS(mmap),       SCMP_SYS(munmap),          SCMP_SYS(newfstatat),
      SCMP_SYS(fstat),      SCMP_SYS(read),       SCMP_SYS(write),           SCMP_SYS(close),
      SCMP_SYS(exit_group), SCMP_SYS(exit),
  };
  int rc = 0;
  for (int call : needed)
    if (rc == 0) rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, call, 0);
  // Open to read only: the access mode and O_CREAT are in the flags, openat's third argument.
  if (rc == 0)
    rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(openat), 1,
                          SCMP_A2(SCMP_CMP_MASKED_EQ, O_ACCMODE | O_CREAT, O_RDONLY));
  if (rc == 0) rc = seccomp_load(ctx);
  seccomp_release(ctx);
  return rc;
}
