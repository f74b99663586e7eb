/* sandbox-probe ACTION [ARG]: tries one thing that oslab-sandbox must stop (or allow) and
 * says what happened. The tests run it inside the sandbox, one action each.
 * Exit: 0 the action did what it does outside a sandbox (or the legal program ran);
 *       3 it was refused with an error (the message names it); killed: the sandbox killed it. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int report(const char* what, long rc) {
  if (rc == -1) {
    printf("%s: %s\n", what, strerror(errno));
    return 3;
  }
  printf("%s: succeeded\n", what);
  return 0;
}

static int loopback(void) {
  int server = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in address = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t length = sizeof address;
  if (server < 0 || bind(server, (struct sockaddr*)&address, sizeof address) != 0 || listen(server, 1) != 0 ||
      getsockname(server, (struct sockaddr*)&address, &length) != 0)
    return report("listen on 127.0.0.1", -1);
  int client = socket(AF_INET, SOCK_STREAM, 0);
  if (connect(client, (struct sockaddr*)&address, sizeof address) != 0) return report("connect to 127.0.0.1", -1);
  int accepted = accept(server, NULL, NULL);
  char buffer[8] = {0};
  if (accepted < 0 || write(client, "ping", 4) != 4 || read(accepted, buffer, 4) != 4 || strcmp(buffer, "ping") != 0)
    return report("echo over 127.0.0.1", -1);
  printf("loopback works\n");
  return 0;
}

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: sandbox-probe ACTION [ARG]\n");
    return 2;
  }
  const char* action = argv[1];
  const char* arg = argc > 2 ? argv[2] : "";
  setvbuf(stdout, NULL, _IONBF, 0);
  if (!strcmp(action, "ok")) {
    printf("a legal program ran\n");
    return 0;
  }
  if (!strcmp(action, "ptrace")) return report("ptrace", ptrace(PTRACE_TRACEME, 0, NULL, NULL));
  if (!strcmp(action, "mount")) return report("mount", mount("none", "/mnt", "tmpfs", 0, NULL));
  if (!strcmp(action, "umount")) return report("umount2", umount2("/proc", MNT_DETACH));
  if (!strcmp(action, "chroot")) return report("chroot", chroot("/"));
  if (!strcmp(action, "unshare")) return report("unshare", unshare(CLONE_NEWNS));
  if (!strcmp(action, "setns")) return report("setns", setns(open("/proc/self/ns/net", O_RDONLY), 0));
  if (!strcmp(action, "clone-newnet")) {
    long pid = syscall(SYS_clone, CLONE_NEWNET | SIGCHLD, 0, 0, 0, 0);
    if (pid == 0) _exit(0);
    if (pid > 0) waitpid((pid_t)pid, NULL, 0);
    return report("clone(CLONE_NEWNET)", pid);
  }
  if (!strcmp(action, "clone3")) {
    long rc = syscall(SYS_clone3, NULL, 0);
    return report("clone3", rc);
  }
  if (!strcmp(action, "init-module")) return report("init_module", syscall(SYS_init_module, NULL, 0, ""));
  if (!strcmp(action, "delete-module")) return report("delete_module", syscall(SYS_delete_module, "oslab", 0));
  if (!strcmp(action, "reboot")) return report("reboot", syscall(SYS_reboot, 0, 0, 0, NULL));
  if (!strcmp(action, "kexec")) return report("kexec_load", syscall(SYS_kexec_load, 0, 0, NULL, 0));
  if (!strcmp(action, "bpf")) return report("bpf", syscall(SYS_bpf, 5, NULL, 0));
  if (!strcmp(action, "io-uring")) return report("io_uring_setup", syscall(SYS_io_uring_setup, 1, NULL));
  if (!strcmp(action, "set-clock")) {
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    return report("clock_settime", clock_settime(CLOCK_REALTIME, &now));
  }
  if (!strcmp(action, "write")) return report("open for writing", open(arg, O_WRONLY | O_CREAT, 0600));
  if (!strcmp(action, "read")) return report("open for reading", open(arg, O_RDONLY));
  if (!strcmp(action, "kill")) return report("kill", kill(atoi(arg), 0));
  if (!strcmp(action, "network")) {
    int sock = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons(9)};
    inet_pton(AF_INET, "192.0.2.1", &address.sin_addr);
    return report("connect to 192.0.2.1", connect(sock, (struct sockaddr*)&address, sizeof address));
  }
  if (!strcmp(action, "loopback")) return loopback();
  if (!strcmp(action, "fork-bomb")) {
    for (int made = 0; made < 100000; ++made) {
      pid_t pid = fork();
      if (pid == 0) {
        pause();
        _exit(0);
      }
      if (pid == -1) {
        printf("fork failed after %d children: %s\n", made, strerror(errno));
        return 3;
      }
    }
    printf("fork: 100000 children\n");
    return 0;
  }
  if (!strcmp(action, "memory")) {
    size_t bytes = (size_t)atol(arg) << 20;
    void* block = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (block == MAP_FAILED) return report("mmap", -1);
    memset(block, 1, bytes);
    return report("mmap", 0);
  }
  if (!strcmp(action, "files")) {
    int opened = 0;
    while (open("/dev/null", O_RDONLY) >= 0) ++opened;
    printf("open failed after %d files: %s\n", opened, strerror(errno));
    return 3;
  }
  if (!strcmp(action, "spin")) {
    for (volatile unsigned long i = 0;; ++i) {
    }
  }
  if (!strcmp(action, "hang")) { /* children in their own sessions, then sleep: only a deadline ends this */
    for (int i = 0; i < 3; ++i)
      if (fork() == 0) {
        setsid();
        for (;;) pause();
      }
    for (;;) pause();
  }
  if (!strcmp(action, "count")) { /* 3 children, 2 pipes */
    int fds[2];
    for (int i = 0; i < 2; ++i)
      if (pipe(fds) != 0) return report("pipe", -1);
    for (int i = 0; i < 3; ++i) {
      pid_t pid = fork();
      if (pid == 0) _exit(0);
      waitpid(pid, NULL, 0);
    }
    printf("counted\n");
    return 0;
  }
  fprintf(stderr, "sandbox-probe: unknown action %s\n", action);
  return 2;
}
