/* oslab-exec-target: the smallest program the process labs exec (fork+exec, vfork+exec,
 * posix_spawn). It exits 0 at once, so that what is timed is the kernel's exec and exit,
 * not the work of a real program. */
int main(void) {
  return 0;
}
