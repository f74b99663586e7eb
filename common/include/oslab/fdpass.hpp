// Passing an open file descriptor to another process over a Unix socket (SCM_RIGHTS): how a
// process that loads a seccomp filter hands its notification fd to the supervisor that answers
// it (oslab-sandbox, oslab-seccomp).
#pragma once

namespace oslab {

// Sends a copy of `fd` (and one byte) over the connected Unix socket `socket`. Throws SysError.
void send_fd(int socket, int fd);

// Receives a descriptor sent with send_fd, close-on-exec. Returns -1 when the peer closed the
// socket (or sent no descriptor); throws SysError on other failures.
int receive_fd(int socket);

}  // namespace oslab
