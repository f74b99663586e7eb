// oslab-admin: what the driver asks of common/ without running a lab (libexec/oslab-admin).
//   oslab-admin machine    the machine description of every lab's JSON document, as JSON
//   oslab-admin cleanup    removes POSIX IPC objects of oslab runs whose process is gone
#include <iostream>
#include <string_view>

#include <fmt/format.h>

#include "oslab/error.hpp"
#include "oslab/ipc.hpp"
#include "oslab/machine.hpp"

int main(int argc, char** argv) {
  oslab::set_program_name("oslab-admin");
  const std::string_view command = argc == 2 ? argv[1] : "";
  try {
    if (command == "machine") {
      std::cout << oslab::machine().to_json().dump(2) << std::endl;
      return std::cout.good() ? 0 : 1;
    }
    if (command == "cleanup") {
      const int removed = oslab::reap_stale_ipc_objects();
      fmt::print("removed {} POSIX IPC object(s) of oslab runs that are gone (/dev/shm, /dev/mqueue)\n", removed);
      fmt::print("System V objects are IPC_PRIVATE and removed by the labs as soon as both sides hold them; "
                 "`ipcs` lists any that remain\n");
      return 0;
    }
  } catch (const std::exception& e) {
    fmt::print(stderr, "oslab-admin: {}\n", e.what());
    return 1;
  }
  fmt::print(stderr, "usage: oslab-admin machine|cleanup\n");
  return 2;
}
