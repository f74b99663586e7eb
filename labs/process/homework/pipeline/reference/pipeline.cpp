// Reference solution. Not for students: `scripts/oslab handout` leaves it out.
#include "pipeline.hpp"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <system_error>

std::vector<Command> parse_pipeline(std::string_view line) {
  std::vector<Command> commands(1);
  bool any_word = false;
  std::string word;
  auto end_word = [&] {
    if (!word.empty()) commands.back().push_back(std::move(word));
    word.clear();
  };
  for (char c : line) {
    if (c == '|') {
      end_word();
      if (commands.back().empty()) throw std::invalid_argument("syntax error");
      commands.emplace_back();
    } else if (c == ' ' || c == '\t' || c == '\n') {
      end_word();
    } else {
      word += c;
      any_word = true;
    }
  }
  end_word();
  if (commands.back().empty()) {
    if (!any_word && commands.size() == 1) return {};
    throw std::invalid_argument("syntax error");
  }
  return commands;
}

namespace {

// The child: only async-signal-safe calls between fork and exec.
[[noreturn]] void exec_command(const Command& command, int in, int out, const std::vector<int>& pipe_fds) {
  if (in != STDIN_FILENO && dup2(in, STDIN_FILENO) == -1) _exit(126);
  if (out != STDOUT_FILENO && dup2(out, STDOUT_FILENO) == -1) _exit(126);
  for (int fd : pipe_fds) close(fd);
  std::vector<char*> argv;
  for (const auto& word : command) argv.push_back(const_cast<char*>(word.c_str()));
  argv.push_back(nullptr);
  execvp(argv[0], argv.data());
  const char* name = argv[0];
  (void)!write(STDERR_FILENO, "pipeline: ", 10);
  (void)!write(STDERR_FILENO, name, strlen(name));
  (void)!write(STDERR_FILENO, ": command not found\n", 20);
  _exit(127);
}

}  // namespace

int run_pipeline(const std::vector<Command>& commands) {
  const size_t n = commands.size();
  std::vector<int> pipe_fds;  // read end, write end, for each pipe between two commands
  for (size_t i = 0; i + 1 < n; ++i) {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) == -1) throw std::system_error(errno, std::generic_category(), "pipe");
    pipe_fds.push_back(fds[0]);
    pipe_fds.push_back(fds[1]);
  }
  (void)std::fflush(nullptr);
  std::vector<pid_t> pids;
  for (size_t i = 0; i < n; ++i) {
    const int in = i == 0 ? STDIN_FILENO : pipe_fds[2 * (i - 1)];
    const int out = i + 1 == n ? STDOUT_FILENO : pipe_fds[2 * i + 1];
    const pid_t pid = fork();
    if (pid == -1) throw std::system_error(errno, std::generic_category(), "fork");
    if (pid == 0) exec_command(commands[i], in, out, pipe_fds);
    pids.push_back(pid);
  }
  for (int fd : pipe_fds) close(fd);  // or the readers never see end of file
  int last = 0;
  for (pid_t pid : pids) {
    int status = 0;
    while (waitpid(pid, &status, 0) == -1)
      if (errno != EINTR) throw std::system_error(errno, std::generic_category(), "waitpid");
    if (pid == pids.back()) last = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
  return last;
}
