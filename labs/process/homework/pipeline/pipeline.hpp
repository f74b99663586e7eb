// Homework: a shell pipeline runner. Implement both functions in pipeline.cpp; main.cpp (given)
// turns them into the program `pipeline 'cmd1 args | cmd2 args | ...'`. README.md has the task.
#pragma once

#include <string>
#include <string_view>
#include <vector>

// One command and its words: {"sort", "-r"}.
using Command = std::vector<std::string>;

// Splits "cmd1 a b | cmd2 | cmd3" into commands and their words. Words are separated by spaces
// and tabs; there is no quoting and no expansion ("$HOME" is the five characters $HOME).
// A blank line is no command (an empty list). A command with no words ("a | | b", "| a",
// "a |") throws std::invalid_argument("syntax error").
std::vector<Command> parse_pipeline(std::string_view line);

// Runs the commands at the same time, each one's standard output connected by a pipe to the
// next one's standard input (the first reads this process's stdin, the last writes its
// stdout), with fork, pipe, dup2 and execvp (found through PATH). Every command sees only
// fds 0, 1 and 2. Waits for every command and returns the status of the last: its exit code,
// or 128 + N if signal N killed it. A command that cannot be run prints
// "pipeline: NAME: command not found" on stderr and exits with 127.
int run_pipeline(const std::vector<Command>& commands);
