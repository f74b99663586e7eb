#include "oslab/fdpass.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "oslab/handles.hpp"

namespace oslab {
namespace {

TEST(FdPass, TheReceivedFdIsTheSameOpenFileAndCloseOnExec) {
  int sockets[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sockets), 0);
  UniqueFd a(sockets[0]), b(sockets[1]);
  Pipe pipe = Pipe::create();
  send_fd(a.get(), pipe.write_end.get());
  UniqueFd received(receive_fd(b.get()));
  ASSERT_TRUE(received.valid());
  EXPECT_NE(received.get(), pipe.write_end.get());
  EXPECT_NE(::fcntl(received.get(), F_GETFD) & FD_CLOEXEC, 0);
  ASSERT_EQ(::write(received.get(), "x", 1), 1);  // written through the copy, read from the pipe
  char byte = 0;
  ASSERT_EQ(::read(pipe.read_end.get(), &byte, 1), 1);
  EXPECT_EQ(byte, 'x');
}

TEST(FdPass, AClosedPeerGivesMinusOne) {
  int sockets[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sockets), 0);
  UniqueFd b(sockets[1]);
  ::close(sockets[0]);
  EXPECT_EQ(receive_fd(b.get()), -1);
}

}  // namespace
}  // namespace oslab
