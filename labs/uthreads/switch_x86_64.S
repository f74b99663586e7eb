// The context switch of oslab's green threads, for x86-64 (System V ABI). Read this file
// with context.hpp beside it; it is the part of the library a student writes in homework.
//
// A switch is a function call that returns in another thread. The caller of
//     void oslab_context_switch(void** save_sp, void* load_sp);
// has, by the ABI, already saved every caller-saved register it still needs. So only the
// callee-saved state must survive: rbx, rbp, r12-r15, the stack pointer, and two control
// words the ABI also makes callee-saved: the SSE control/status register's control bits
// (MXCSR: rounding mode, exceptions masked, flush-to-zero) and the x87 FPU control word
// (precision and rounding). Omitting the control words is a real bug: a thread that sets
// a rounding mode (fesetround) would hand it to every thread it switches to.
//
// The registers are stored in a frame on the running thread's own stack, below the return
// address its call pushed, and the stack pointer goes to *save_sp: a suspended thread is
// nothing but its stack pointer. Loading the other thread's stack pointer and reading its
// frame resumes it where it called the switch: we pop its return address and jump there.
// No system call, no signal mask (glibc's swapcontext saves the signal mask with an
// rt_sigprocmask system call on every switch, and the argument registers, which a call
// does not need kept).
//
// Two details that cost a lot when missed, both measured by oslab-uthreads:
//  - `jmp`, not `ret`: the CPU predicts a `ret` from its return stack buffer, which holds
//    where the matching call came from; a switch returns somewhere else, so every such
//    `ret` would be mispredicted. The indirect jump is predicted from its own history (as
//    in Boost.Context), and its target is loaded first, before the slow control-word loads.
//  - A new thread inherits its creator's MXCSR and x87 control word (as pthread_create's
//    does), so ldmxcsr usually loads the value already there. Loading a different value
//    (even one that differs only in a sticky status flag) drains the pipeline: tens of ns.
//
// The frame, from the saved stack pointer upwards (64 bytes):
//     0: MXCSR (4 bytes)   4: x87 control word (2 bytes, 2 unused)
//     8: r15  16: r14  24: r13  32: r12  40: rbx  48: rbp  56: return address
// context.cpp builds the same frame on a new stack so that the first switch to a new thread
// "returns" into oslab_context_start.

        .text

// void oslab_context_switch(void** save_sp /* rdi */, void* load_sp /* rsi */)
        .globl  oslab_context_switch
        .type   oslab_context_switch, @function
        .p2align 4
oslab_context_switch:
        .cfi_startproc
        leaq    -56(%rsp), %rsp     // the frame below the return address the call pushed
        stmxcsr (%rsp)              // the SSE control bits (and status bits, harmlessly)
        fnstcw  4(%rsp)             // the x87 control word
        movq    %r15, 8(%rsp)
        movq    %r14, 16(%rsp)
        movq    %r13, 24(%rsp)
        movq    %r12, 32(%rsp)
        movq    %rbx, 40(%rsp)
        movq    %rbp, 48(%rsp)
        movq    %rsp, (%rdi)        // the running thread is now suspended: *save_sp = rsp
        movq    %rsi, %rsp          // from here on we run on the other thread's stack
        movq    56(%rsp), %rcx      // its return address, early: the jump below needs it
        ldmxcsr (%rsp)
        fldcw   4(%rsp)
        movq    8(%rsp), %r15
        movq    16(%rsp), %r14
        movq    24(%rsp), %r13
        movq    32(%rsp), %r12
        movq    40(%rsp), %rbx
        movq    48(%rsp), %rbp
        leaq    64(%rsp), %rsp      // the frame and the return address
        jmpq    *%rcx               // into the other thread, where it called the switch
        .cfi_endproc
        .size   oslab_context_switch, .-oslab_context_switch

// The same switch without the two control words: what a first attempt usually looks like.
// The lab measures what the control words cost; a unit test shows the bug it causes. The
// frame keeps its 8-byte slot, so the two switches build and read the same frame.
        .globl  oslab_context_switch_no_fpu
        .type   oslab_context_switch_no_fpu, @function
        .p2align 4
oslab_context_switch_no_fpu:
        .cfi_startproc
        leaq    -56(%rsp), %rsp
        movq    %r15, 8(%rsp)
        movq    %r14, 16(%rsp)
        movq    %r13, 24(%rsp)
        movq    %r12, 32(%rsp)
        movq    %rbx, 40(%rsp)
        movq    %rbp, 48(%rsp)
        movq    %rsp, (%rdi)
        movq    %rsi, %rsp
        movq    56(%rsp), %rcx
        movq    8(%rsp), %r15
        movq    16(%rsp), %r14
        movq    24(%rsp), %r13
        movq    32(%rsp), %r12
        movq    40(%rsp), %rbx
        movq    48(%rsp), %rbp
        leaq    64(%rsp), %rsp
        jmpq    *%rcx
        .cfi_endproc
        .size   oslab_context_switch_no_fpu, .-oslab_context_switch_no_fpu

// Where a new thread's first switch returns to. context.cpp put the entry function in r12
// and its argument in r13; the stack pointer is 16-byte aligned here, as a call requires.
// The entry function never returns (a finished thread switches away for good); if it did,
// ud2 stops the program at once rather than running off the stack.
        .globl  oslab_context_start
        .type   oslab_context_start, @function
        .p2align 4
oslab_context_start:
        .cfi_startproc
        .cfi_undefined rip          // the bottom of this thread's call stack, for debuggers
        movq    %r13, %rdi
        callq   *%r12
        ud2
        .cfi_endproc
        .size   oslab_context_start, .-oslab_context_start

        .section .note.GNU-stack,"",@progbits   // this file needs no executable stack
