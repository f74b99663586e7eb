/* oslab-seccomp-probe: exec'ed by oslab-seccomp under a filter that denies getppid, to show
 * that the filter survived execve. Exits 3 when getppid failed with EPERM, 0 when it worked. */
#include <errno.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(void) {
  errno = 0;
  long rc = syscall(SYS_getppid);
  return rc == -1 && errno == EPERM ? 3 : rc == -1 ? 4 : 0;
}
