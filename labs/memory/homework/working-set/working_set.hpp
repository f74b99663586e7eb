// Homework: the working set of a reference string (Denning). Implement the five functions in
// working_set.cpp; main.cpp (given) makes them the program `working-set`. README.md has the task.
#pragma once

#include <cstddef>
#include <vector>

// W(D, t): the distinct pages among the last D references up to and including time t,
// refs[t-D+1 .. t] (fewer at the start: refs[0 .. t] when t < D), in increasing order.
std::vector<int> working_set(const std::vector<int>& refs, size_t t, size_t window);

// The mean of |W(D, t)| over t = 0 .. n-1 (0 for an empty string).
double mean_working_set_size(const std::vector<int>& refs, size_t window);

// The faults of the working-set policy with window D: the reference at time t faults when its
// page is not in W(D, t-1); the first reference always faults.
size_t ws_faults(const std::vector<int>& refs, size_t window);

// The fault curve: curve[D-1] = ws_faults(refs, D) for D = 1 .. max_window.
std::vector<size_t> fault_curve(const std::vector<int>& refs, size_t max_window);

// The knee of a curve: the smallest window D (counted from 1) whose faults are at most 1.1
// times the faults at the largest window (curve.back()); 0 for an empty curve.
size_t knee(const std::vector<size_t>& curve);
