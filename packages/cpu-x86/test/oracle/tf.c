/*
 * Single-step oracle: runs a code snippet in user mode on the host CPU with RFLAGS.TF set and
 * prints one line per single-step trap (SIGTRAP): the trapping RIP as an offset into the snippet
 * and RCX. Input lines: the snippet's bytes in hex. The snippet is entered by a CALL after a POPFQ
 * that sets TF; it must end with `pushfq; and qword [rsp], ~0x100; popfq; ret` (TF off again).
 * Output line: "off:rcx off:rcx ..." (hex), one per input line.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <ucontext.h>

static uint8_t *code;
static size_t code_len;
static char out[1 << 16];
static size_t out_len;

static void on_trap(int sig, siginfo_t *si, void *ctx) {
  (void)sig;
  (void)si;
  ucontext_t *uc = ctx;
  uint64_t rip = (uint64_t)uc->uc_mcontext.gregs[REG_RIP];
  uint64_t rcx = (uint64_t)uc->uc_mcontext.gregs[REG_RCX];
  /* Traps outside the snippet (after its final RET, in the caller) are not reported. */
  if (rip < (uint64_t)code || rip >= (uint64_t)code + code_len) return;
  if (out_len + 64 < sizeof out)
    out_len += (size_t)snprintf(out + out_len, sizeof out - out_len, "%s%lx:%lx", out_len ? " " : "",
                                (unsigned long)(rip - (uint64_t)code), (unsigned long)rcx);
}

static void run(void) {
  __asm__ volatile(
      "pushfq\n\t"
      "orq $0x100, (%%rsp)\n\t"
      "popfq\n\t"
      "call *%0\n\t"
      :
      : "r"(code)
      : "rax", "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10", "r11", "memory", "cc");
}

int main(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = on_trap;
  sa.sa_flags = SA_SIGINFO;
  sigaction(SIGTRAP, &sa, NULL);
  code = mmap(NULL, 4096, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  static char line[8192];
  while (fgets(line, sizeof line, stdin)) {
    code_len = 0;
    for (char *p = line; p[0] && p[1] && p[0] != '\n'; p += 2) {
      unsigned v;
      sscanf(p, "%2x", &v);
      code[code_len++] = (uint8_t)v;
    }
    out_len = 0;
    out[0] = 0;
    run();
    printf("%s\n", out);
    fflush(stdout);
  }
  return 0;
}
