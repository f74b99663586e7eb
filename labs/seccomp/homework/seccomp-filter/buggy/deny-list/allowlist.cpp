// Buggy solution (deny-list): forbids the calls it thought of and allows everything else.
// Not for students: `scripts/oslab handout` leaves it out.
#include "allowlist.hpp"

#include <fcntl.h>
#include <seccomp.h>

#include <cerrno>

int install_filter() {
  scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
  if (ctx == nullptr) return -ENOMEM;
  const int bad[] = {SCMP_SYS(socket), SCMP_SYS(clone), SCMP_SYS(fork), SCMP_SYS(kill), SCMP_SYS(ptrace)};
  int rc = 0;
  for (int call : bad)
    if (rc == 0) rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), call, 0);
  if (rc == 0) rc = seccomp_load(ctx);
  seccomp_release(ctx);
  return rc;
}
