/* hw-wc: the program the seccomp filter must allow exactly. It counts the lines, words and
 * bytes of FILE; with --try ACTION it first tries one thing it does not need and says whether
 * the filter stopped it:
 *   hw-wc [--try socket|fork|getppid|write-file|mkdir|kill|uname] FILE
 * Static, so that the calls it makes do not depend on the dynamic loader. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

static void tried(const char* action, long rc) {
  if (rc == -1)
    printf("%s: %s\n", action, errno == EPERM ? "EPERM (stopped by the filter)" : strerror(errno));
  else
    printf("%s: allowed\n", action);
}

static void try_action(const char* action, const char* file) {
  if (!strcmp(action, "socket")) {
    tried(action, socket(AF_INET, SOCK_STREAM, 0));
  } else if (!strcmp(action, "fork")) {
    long pid = syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
    if (pid == 0) _exit(0);
    if (pid > 0) waitpid((pid_t)pid, NULL, 0);
    tried(action, pid);
  } else if (!strcmp(action, "getppid")) {
    tried(action, syscall(SYS_getppid));
  } else if (!strcmp(action, "write-file")) {
    char path[4096];
    snprintf(path, sizeof path, "%s.copy", file);
    tried(action, open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600));
  } else if (!strcmp(action, "mkdir")) {
    tried(action, mkdir("hw-wc-dir", 0700));
  } else if (!strcmp(action, "kill")) {
    tried(action, kill(0, 0)); /* this process group: allowed, but for the filter */
  } else if (!strcmp(action, "uname")) {
    struct utsname name;
    tried(action, uname(&name));
  } else {
    printf("%s: unknown action\n", action);
  }
}

int main(int argc, char** argv) {
  const char* file = NULL;
  const char* action = NULL;
  for (int i = 1; i < argc; ++i) {
    if (!strcmp(argv[i], "--try") && i + 1 < argc)
      action = argv[++i];
    else
      file = argv[i];
  }
  if (file == NULL) {
    fprintf(stderr, "usage: hw-wc [--try ACTION] FILE\n");
    return 2;
  }
  if (action) try_action(action, file);
  int fd = open(file, O_RDONLY);
  if (fd < 0) {
    printf("hw-wc: %s: %s\n", file, strerror(errno));
    return 1;
  }
  char buffer[4096];
  long lines = 0, words = 0, bytes = 0;
  int in_word = 0;
  ssize_t n;
  while ((n = read(fd, buffer, sizeof buffer)) > 0) {
    for (ssize_t i = 0; i < n; ++i) {
      char c = buffer[i];
      lines += c == '\n';
      int space = c == ' ' || c == '\n' || c == '\t';
      words += !space && !in_word;
      in_word = !space;
    }
    bytes += n;
  }
  close(fd);
  const char* base = strrchr(file, '/');
  printf("%s: %ld lines, %ld words, %ld bytes\n", base ? base + 1 : file, lines, words, bytes);
  return 0;
}
