// Homework: a seccomp filter that allows exactly what a program needs. Implement
// install_filter in allowlist.cpp; main.cpp (given) makes it the program `allowlist PROGRAM`.
// README.md has the task.
#pragma once

// Loads into this process (and so into the program it then execs) a seccomp filter, built with
// libseccomp, that allows exactly the system calls hw-wc needs to count a file, and execve to
// start it; every other call fails with EPERM. openat is allowed only to read: O_WRONLY,
// O_RDWR or O_CREAT fail with EPERM. Returns 0, or a negative errno value (libseccomp's).
int install_filter();
