// Contexts and the switch between them (context.hpp); the assembly is in switch_x86_64.S.

#include "context.hpp"

#include <pthread.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "oslab/error.hpp"

namespace oslab::uthread {

const char* to_string(Backend backend) {
  switch (backend) {
    case Backend::assembly: return "assembly";
    case Backend::assembly_no_fpu: return "assembly-no-fpu";
    case Backend::ucontext: return "ucontext";
  }
  return "?";
}

bool available(Backend backend) {
#if defined(__x86_64__)
  (void)backend;
  return true;
#else
  return backend == Backend::ucontext;
#endif
}

Backend default_backend() {
  return available(Backend::assembly) ? Backend::assembly : Backend::ucontext;
}

Backend parse_backend(std::string_view name) {
  for (Backend backend : {Backend::assembly, Backend::assembly_no_fpu, Backend::ucontext})
    if (name == to_string(backend)) {
      if (!available(backend)) throw UsageError(std::string("backend ") + to_string(backend) + " needs x86-64");
      return backend;
    }
  throw UsageError("unknown backend '" + std::string(name) + "' (assembly, assembly-no-fpu, ucontext)");
}

bool built_with_asan() {
#ifdef OSLAB_UTHREAD_ASAN
  return true;
#else
  return false;
#endif
}

bool built_with_tsan() {
#ifdef OSLAB_UTHREAD_TSAN
  return true;
#else
  return false;
#endif
}

Context::~Context() {  // NOLINT(modernize-use-equals-default): not empty under TSan
#ifdef OSLAB_UTHREAD_TSAN
  if (tsan_owned_) __tsan_destroy_fiber(tsan_fiber_);
#endif
}

void Context::adopt_this_thread() {
  pthread_attr_t attr;
  check_errnum("pthread_getattr_np", ::pthread_getattr_np(::pthread_self(), &attr));
  void* low = nullptr;
  size_t bytes = 0;
  ::pthread_attr_getstack(&attr, &low, &bytes);
  ::pthread_attr_destroy(&attr);
  stack_ = {low, bytes};
#ifdef OSLAB_UTHREAD_TSAN
  tsan_fiber_ = __tsan_get_current_fiber();
#endif
}

// Every new flow starts here, on its own stack: tell ASan the switch has landed, then run.
void Context::first_run(void* self) {
  auto* context = static_cast<Context*>(self);
#ifdef OSLAB_UTHREAD_ASAN
  __sanitizer_finish_switch_fiber(nullptr, nullptr, nullptr);
#endif
  context->entry_(context->arg_);
  __builtin_trap();  // an entry function must not return
}

// makecontext passes int arguments only: the Context's address comes in two halves.
void Context::first_run_ucontext(unsigned high, unsigned low) {
  first_run(reinterpret_cast<void*>((static_cast<uintptr_t>(high) << 32) | low));
}

void Context::make(Backend backend, StackBounds stack, Entry entry, void* arg) {
  stack_ = stack;
  entry_ = entry;
  arg_ = arg;
#ifdef OSLAB_UTHREAD_TSAN
  if (!tsan_owned_) {
    tsan_fiber_ = __tsan_create_fiber(0);
    tsan_owned_ = true;
  }
#endif
  if (backend == Backend::ucontext) {
    if (!uc_) uc_ = std::make_unique<ucontext_t>();
    check_errno("getcontext", ::getcontext(uc_.get()));
    uc_->uc_stack.ss_sp = stack.low;
    uc_->uc_stack.ss_size = stack.bytes;
    uc_->uc_link = nullptr;
    const auto address = reinterpret_cast<uintptr_t>(this);
    ::makecontext(uc_.get(), reinterpret_cast<void (*)()>(first_run_ucontext), 2, static_cast<unsigned>(address >> 32),
                  static_cast<unsigned>(address & 0xffff'ffffu));
    return;
  }
#if defined(__x86_64__)
  // The frame oslab_context_switch pops (see switch_x86_64.S), at the top of the new stack,
  // placed so that the stack pointer is 16-byte aligned when oslab_context_start calls.
  auto top = (reinterpret_cast<uintptr_t>(stack.low) + stack.bytes) & ~uintptr_t{15};
  auto* frame = reinterpret_cast<uint64_t*>(top - 64);
  // A new thread inherits the creator's floating-point environment, as pthread_create's does.
  uint32_t mxcsr = 0;
  uint16_t x87_control = 0;
  asm volatile("stmxcsr %0" : "=m"(mxcsr));
  asm volatile("fnstcw %0" : "=m"(x87_control));
  std::memcpy(&frame[0], &mxcsr, sizeof mxcsr);
  std::memcpy(reinterpret_cast<char*>(&frame[0]) + 4, &x87_control, sizeof x87_control);
  frame[1] = 0;                                                 // r15
  frame[2] = 0;                                                 // r14
  frame[3] = reinterpret_cast<uint64_t>(this);                  // r13: the argument
  frame[4] = reinterpret_cast<uint64_t>(&Context::first_run);   // r12: the entry
  frame[5] = 0;                                                 // rbx
  frame[6] = 0;                                                 // rbp: end of the frame chain
  frame[7] = reinterpret_cast<uint64_t>(&oslab_context_start);  // where `ret` goes
  sp_ = frame;
#else
  throw UsageError("the assembly backend needs x86-64");
#endif
}

void Context::bad_switch() noexcept {
  write_stderr("oslab uthread: the assembly switch is not built for this machine\n");
  std::abort();
}

void Context::swap_ucontext(Context& from, Context& to) noexcept {
  if (!from.uc_) from.uc_ = std::make_unique<ucontext_t>();
  if (::swapcontext(from.uc_.get(), to.uc_.get()) != 0) std::abort();
}

}  // namespace oslab::uthread
