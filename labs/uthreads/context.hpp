// The lowest layer of oslab's green threads: a context (a suspended flow of control) and the
// switch between two contexts, with three interchangeable backends:
//
//   assembly         switch_x86_64.S: saves the callee-saved registers, MXCSR and the x87
//                    control word on the thread's own stack; a context is a stack pointer.
//   assembly-no-fpu  the same without the two control words (a measured, documented bug).
//   ucontext         glibc's makecontext/swapcontext: saves the callee-saved and argument
//                    registers, the FPU environment and MXCSR, and, with an rt_sigprocmask
//                    system call, the signal mask, on every switch.
//
// The assembly backends exist on x86-64 only; elsewhere ucontext is the default.
//
// Sanitizers: AddressSanitizer and ThreadSanitizer track one stack per kernel thread. Every
// switch here tells them that the stack changes (their "fiber" interfaces), so that the
// library and the labs run under both.
#pragma once

#include <ucontext.h>

#if defined(__SANITIZE_ADDRESS__)
#define OSLAB_UTHREAD_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define OSLAB_UTHREAD_ASAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define OSLAB_UTHREAD_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define OSLAB_UTHREAD_TSAN 1
#endif
#endif
#ifdef OSLAB_UTHREAD_ASAN
#include <sanitizer/common_interface_defs.h>
#endif
#ifdef OSLAB_UTHREAD_TSAN
#include <sanitizer/tsan_interface.h>
#endif

#include <cstddef>
#include <memory>
#include <string_view>

namespace oslab::uthread {

enum class Backend { assembly, assembly_no_fpu, ucontext };

const char* to_string(Backend backend);        // "assembly", "assembly-no-fpu", "ucontext"
bool available(Backend backend);               // the assembly backends: x86-64 only
Backend default_backend();                     // assembly where available, else ucontext
Backend parse_backend(std::string_view name);  // throws UsageError on an unknown name

// Built with a sanitizer that needs the fiber annotations (or that cannot follow a switch
// made from a signal handler).
bool built_with_asan();
bool built_with_tsan();

// The memory a context runs on. {nullptr, 0} for a kernel thread's own stack.
struct StackBounds {
  void* low = nullptr;
  size_t bytes = 0;
};

// One flow of control that can be suspended and resumed. A Context must not move once made
// (the new thread's first switch finds its entry function through it).
class Context {
 public:
  using Entry = void (*)(void* arg);  // must never return: a finished flow switches away

  Context() = default;
  ~Context();
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  // The context of the calling kernel thread's own stack: what a switch saves into when the
  // kernel thread leaves its own stack for a green thread.
  void adopt_this_thread();
  // Prepares a new flow that, on the first switch to it, runs entry(arg) on `stack`.
  void make(Backend backend, StackBounds stack, Entry entry, void* arg);

  const StackBounds& stack() const noexcept { return stack_; }

 private:
  friend void switch_context(Backend backend, Context& from, Context& to, bool from_finished) noexcept;
  static void first_run(void* self);
  [[noreturn]] static void bad_switch() noexcept;  // a backend this machine lacks
  static void swap_ucontext(Context& from, Context& to) noexcept;
  static void first_run_ucontext(unsigned high, unsigned low);

  void* sp_ = nullptr;              // assembly backends: the saved stack pointer
  std::unique_ptr<ucontext_t> uc_;  // ucontext backend
  StackBounds stack_;
  Entry entry_ = nullptr;
  void* arg_ = nullptr;
  void* asan_fake_stack_ = nullptr;  // AddressSanitizer's per-fiber state
  void* tsan_fiber_ = nullptr;       // ThreadSanitizer's fiber
  bool tsan_owned_ = false;
};

}  // namespace oslab::uthread

// The assembly (switch_x86_64.S).
extern "C" {
void oslab_context_switch(void** save_sp, void* load_sp);
void oslab_context_switch_no_fpu(void** save_sp, void* load_sp);
void oslab_context_start();
}

namespace oslab::uthread {

// Saves the running flow into `from` and resumes `to`; returns when a switch resumes `from`.
// `from_finished`: the running flow will never be resumed (lets ASan free its state).
// Inline, so that the assembly is called straight from the code that switches.
inline void switch_context(Backend backend, Context& from, Context& to, bool from_finished = false) noexcept {
#ifdef OSLAB_UTHREAD_ASAN
  __sanitizer_start_switch_fiber(from_finished ? nullptr : &from.asan_fake_stack_, to.stack_.low, to.stack_.bytes);
#else
  (void)from_finished;
#endif
#ifdef OSLAB_UTHREAD_TSAN
  __tsan_switch_to_fiber(to.tsan_fiber_, 0);
#endif
  switch (backend) {
#if defined(__x86_64__)
    case Backend::assembly: oslab_context_switch(&from.sp_, to.sp_); break;
    case Backend::assembly_no_fpu: oslab_context_switch_no_fpu(&from.sp_, to.sp_); break;
#else
    case Backend::assembly:
    case Backend::assembly_no_fpu: Context::bad_switch();
#endif
    case Backend::ucontext: Context::swap_ucontext(from, to); break;
  }
#ifdef OSLAB_UTHREAD_ASAN
  // Back in `from`, resumed by some later switch.
  __sanitizer_finish_switch_fiber(from.asan_fake_stack_, nullptr, nullptr);
#endif
}

}  // namespace oslab::uthread
