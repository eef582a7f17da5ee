// Alignment-check oracle: runs one instruction at CPL 3 with RFLAGS.AC = 1 on the host (Linux sets
// CR0.AM) and reports whether it raised #AC (SIGBUS, BUS_ADRALN), #GP (SIGSEGV) or nothing.
// Input lines: "<hex bytes> <offset>"; the instruction addresses memory through RBX = buffer + offset
// (the buffer is 64-byte aligned). Output lines: "AC", "GP" or "OK".
#define _GNU_SOURCE
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

static sigjmp_buf env;
static volatile int got;

static void handler(int sig, siginfo_t *si, void *uc) {
  // The kernel leaves AC set for the handler: clear it before any C code runs.
  __asm__ volatile("pushfq; andq $~0x40000, (%%rsp); popfq" ::: "memory", "cc");
  got = sig == SIGBUS && si->si_code == BUS_ADRALN ? 1 : 2;
  siglongjmp(env, 1);
}

int main(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = handler;
  sa.sa_flags = SA_SIGINFO | SA_NODEFER;
  sigaction(SIGBUS, &sa, 0);
  sigaction(SIGSEGV, &sa, 0);
  unsigned char *code = mmap(0, 4096, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  static unsigned char buf[4096] __attribute__((aligned(64)));
  char hexs[128];
  unsigned off;
  while (scanf("%127s %u", hexs, &off) == 2) {
    size_t n = strlen(hexs) / 2;
    for (size_t k = 0; k < n; k++) sscanf(hexs + 2 * k, "%2hhx", &code[k]);
    code[n] = 0xc3; // ret
    got = 0;
    if (sigsetjmp(env, 1) == 0) {
      unsigned char *p = buf + 256 + off;
      __asm__ volatile(
          "pushfq; orq $0x40000, (%%rsp); popfq\n\t"
          "call *%1\n\t"
          "pushfq; andq $~0x40000, (%%rsp); popfq"
          : "+b"(p)
          : "r"(code)
          : "rax", "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10", "r11", "xmm0", "memory", "cc");
    }
    puts(got == 1 ? "AC" : got == 2 ? "GP" : "OK");
    fflush(stdout);
  }
  return 0;
}
