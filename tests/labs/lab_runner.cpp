#include "lab_runner.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <iterator>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>

#include "oslab/error.hpp"
#include "oslab/handles.hpp"
#include "oslab/process.hpp"

namespace oslab::test {

nlohmann::json RunResult::json() const {
  try {
    return nlohmann::json::parse(out);
  } catch (const std::exception& e) {
    ADD_FAILURE() << "stdout is not JSON: " << e.what() << "\nstdout:\n" << out.substr(0, 2000) << "\nstderr:\n" << err;
    return nlohmann::json::object();
  }
}

std::string bin_dir() {
  return OSLAB_BIN_DIR;
}
std::string lab_path(const std::string& lab) {
  return bin_dir() + "/oslab-" + lab;
}

std::vector<std::string> all_labs() {
  std::vector<std::string> labs;
  if (DIR* listing = ::opendir(bin_dir().c_str())) {
    while (const dirent* entry = ::readdir(listing)) {
      std::string name = entry->d_name;
      if (name.starts_with("oslab-")) labs.push_back(name.substr(6));
    }
    ::closedir(listing);
  }
  std::sort(labs.begin(), labs.end());
  return labs;
}

namespace {

pid_t start_command(std::vector<std::string> owned, int out_fd, int err_fd) {
  const std::string path = owned.front();
  std::vector<char*> argv;
  for (auto& arg : owned) argv.push_back(arg.data());
  argv.push_back(nullptr);
  oslab::flush_stdio();
  pid_t pid = oslab::check_errno("fork", ::fork());
  if (pid == 0) {
    ::setpgid(0, 0);
    int devnull = ::open("/dev/null", O_RDONLY);
    if (devnull >= 0) ::dup2(devnull, STDIN_FILENO);
    if (out_fd >= 0) ::dup2(out_fd, STDOUT_FILENO);
    if (err_fd >= 0) ::dup2(err_fd, STDERR_FILENO);
    ::execv(path.c_str(), argv.data());
    oslab::child_fail("execv", errno);
  }
  ::setpgid(pid, pid);
  return pid;
}

pid_t start(const std::string& lab, const std::vector<std::string>& args, int out_fd, int err_fd) {
  std::vector<std::string> owned{lab_path(lab)};
  owned.insert(owned.end(), args.begin(), args.end());
  return start_command(owned, out_fd, err_fd);
}

}  // namespace

RunResult run_lab(const std::string& lab, const std::vector<std::string>& args, std::chrono::seconds timeout) {
  std::vector<std::string> argv{lab_path(lab)};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_command(argv, timeout);
}

RunResult run_command(const std::vector<std::string>& argv, std::chrono::seconds timeout) {
  RunResult result;
  oslab::Pipe out = oslab::Pipe::create(), err = oslab::Pipe::create();
  pid_t pid = start_command(argv, out.write_end.get(), err.write_end.get());
  out.write_end.reset();
  err.write_end.reset();

  const auto deadline = std::chrono::steady_clock::now() + timeout;
  pollfd fds[2] = {{out.read_end.get(), POLLIN, 0}, {err.read_end.get(), POLLIN, 0}};
  std::string* sinks[2] = {&result.out, &result.err};
  int open_ends = 2;
  while (open_ends > 0) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      result.timed_out = true;
      break;
    }
    int rc = ::poll(fds, 2, static_cast<int>(left.count()));
    if (rc < 0 && errno == EINTR) continue;
    oslab::check_errno("poll", rc);
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      char buffer[65536];
      ssize_t n = ::read(fds[i].fd, buffer, sizeof buffer);
      if (n > 0) {
        sinks[i]->append(buffer, static_cast<size_t>(n));
      } else {
        fds[i].fd = -1;
        --open_ends;
      }
    }
  }
  oslab::ExitStatus status;
  if (result.timed_out) {
    status = oslab::kill_and_reap(pid);
  } else {
    auto waited = oslab::wait_for(pid, std::chrono::seconds(10));
    status = waited ? *waited : oslab::kill_and_reap(pid);
    result.timed_out = !waited;
  }
  result.exit_code = status.exited ? status.code : -1;
  result.signal = status.signal;
  return result;
}

oslab::ExitStatus run_and_signal(const std::string& lab, const std::vector<std::string>& args,
                                 std::chrono::milliseconds after, int signo) {
  int devnull = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
  pid_t pid = start(lab, args, devnull, devnull);
  ::close(devnull);
  std::this_thread::sleep_for(after);
  ::kill(pid, signo);  // the lab alone: what its children do next is what we test
  auto status = oslab::wait_for(pid, std::chrono::seconds(10));
  return status ? *status : oslab::kill_and_reap(pid);
}

IpcSnapshot IpcSnapshot::take() {
  IpcSnapshot snapshot;
  for (const char* kind : {"shm", "sem", "msg"}) {
    std::ifstream table(std::string("/proc/sysvipc/") + kind);
    std::string line;
    std::getline(table, line);  // header
    while (std::getline(table, line)) {
      std::istringstream fields(line);
      std::string key, id;
      fields >> key >> id;
      snapshot.objects.insert(std::string(kind) + " " + id);
    }
  }
  for (const char* dir : {"/dev/shm", "/dev/mqueue"}) {
    if (DIR* listing = ::opendir(dir)) {
      while (const dirent* entry = ::readdir(listing))
        if (entry->d_name[0] != '.') snapshot.objects.insert(std::string(dir) + "/" + entry->d_name);
      ::closedir(listing);
    }
  }
  return snapshot;
}

std::set<std::string> IpcSnapshot::added_since(const IpcSnapshot& before) const {
  std::set<std::string> added;
  std::set_difference(objects.begin(), objects.end(), before.objects.begin(), before.objects.end(),
                      std::inserter(added, added.begin()));
  return added;
}

void become_subreaper() {
  oslab::check_errno("prctl(PR_SET_CHILD_SUBREAPER)", ::prctl(PR_SET_CHILD_SUBREAPER, 1));
}

int orphans_still_running(std::chrono::milliseconds grace) {
  const auto deadline = std::chrono::steady_clock::now() + grace;
  for (;;) {
    // Reap whatever has ended; ECHILD means nothing of ours is left.
    int status = 0;
    pid_t pid;
    while ((pid = ::waitpid(-1, &status, WNOHANG | __WALL)) > 0) {
    }
    if (pid == -1 && errno == ECHILD) return 0;
    if (std::chrono::steady_clock::now() >= deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  int running = 0;
  if (DIR* tasks = ::opendir("/proc")) {
    const std::string me = std::to_string(::getpid());
    while (const dirent* entry = ::readdir(tasks)) {
      std::ifstream stat(std::string("/proc/") + entry->d_name + "/stat");
      std::string pid_field, comm, state, ppid;
      if (!(stat >> pid_field >> comm >> state >> ppid)) continue;
      if (ppid == me) {
        ++running;
        ::kill(std::stoi(pid_field), SIGKILL);
      }
    }
    ::closedir(tasks);
  }
  while (::waitpid(-1, nullptr, __WALL) > 0) {
  }
  return running;
}

nlohmann::json quick_json(const std::string& lab, std::vector<std::string> extra) {
  std::vector<std::string> args{"--quick", "--json"};
  args.insert(args.end(), extra.begin(), extra.end());
  RunResult run = run_lab(lab, args);
  EXPECT_EQ(run.exit_code, 0) << run.err;
  return run.exit_code == 0 ? run.json() : nlohmann::json::object();
}

const nlohmann::json* find_verdict(const nlohmann::json& doc, const std::string& id) {
  if (!doc.contains("verdicts")) return nullptr;  // e.g. quick_json of a run that failed
  for (const auto& verdict : doc["verdicts"])
    if (verdict["id"] == id) return &verdict;
  return nullptr;
}

std::string verdict_state(const nlohmann::json& doc, const std::string& id) {
  const nlohmann::json* verdict = find_verdict(doc, id);
  return verdict == nullptr ? "missing" : (*verdict)["state"].get<std::string>();
}

bool skipped(const nlohmann::json& doc, const std::string& what_part) {
  if (!doc.contains("skipped")) return false;
  for (const auto& skip : doc["skipped"])
    if (skip["what"].get<std::string>().find(what_part) != std::string::npos) return true;
  return false;
}

void expect_holds(const nlohmann::json& doc, const std::string& id) {
  const nlohmann::json* verdict = find_verdict(doc, id);
  ASSERT_NE(verdict, nullptr) << "no verdict " << id << " in " << doc.value("verdicts", nlohmann::json()).dump()
                              << "\nskipped " << doc.value("skipped", nlohmann::json()).dump();
  EXPECT_EQ((*verdict)["state"], "holds") << id << ": " << (*verdict)["evidence"];
  EXPECT_FALSE((*verdict)["measured"].get<bool>()) << id << " is a timing: its state is never asserted";
}

void expect_not_refuted(const nlohmann::json& doc, const std::string& id) {
  const nlohmann::json* verdict = find_verdict(doc, id);
  ASSERT_NE(verdict, nullptr) << "no verdict " << id << " in " << doc["verdicts"].dump();
  const std::string state = (*verdict)["state"];
  EXPECT_TRUE(state == "holds" || state == "does-not-hold" || state == "inconclusive") << verdict->dump();
  EXPECT_FALSE((*verdict)["evidence"].get<std::string>().empty()) << verdict->dump();
  if ((*verdict)["measured"].get<bool>()) {
    ::testing::Test::RecordProperty(id, state);  // seen in the XML report, never asserted
    return;
  }
  EXPECT_NE(state, "does-not-hold") << id << ": " << (*verdict)["evidence"];
}

void expect_usage_error(const std::string& lab, const std::vector<std::string>& args) {
  RunResult run = run_lab(lab, args);
  EXPECT_EQ(run.exit_code, 2) << args[0] << " " << (args.size() > 1 ? args[1] : "") << ": " << run.err;
  EXPECT_EQ(std::count(run.err.begin(), run.err.end(), '\n'), 1) << run.err;
  EXPECT_TRUE(run.out.empty()) << "bad input printed to stdout:\n" << run.out;
}

std::string private_ancestor(const std::string& path) {
  std::string prefix;
  size_t at = 0;
  while ((at = path.find('/', at + 1)) != std::string::npos) {
    prefix = path.substr(0, at);
    struct stat info {};
    if (::stat(prefix.c_str(), &info) == 0 && S_ISDIR(info.st_mode) && (info.st_mode & S_IXOTH) == 0) return prefix;
  }
  return "";
}

}  // namespace oslab::test
