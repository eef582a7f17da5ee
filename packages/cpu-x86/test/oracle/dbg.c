/*
 * Data-breakpoint oracle: runs a code snippet at CPL 3 on the host CPU in a forked child whose
 * DR0-DR3 / DR7 the parent programs through ptrace(PTRACE_POKEUSER, u_debugreg[n]), and prints one
 * line per input line with every SIGTRAP the child takes: the trapping RIP as an offset into the
 * snippet ("x" when outside it) and DR6 (PTRACE_PEEKUSER u_debugreg[6]; Linux reports B0-B3 of the
 * breakpoints that fired and BS, reset at every #DB).
 *
 * Layout (the emulator side copies it): the snippet is at CODE; DATA is four read/write pages; the
 * snippet is entered by a CALL with RDI = DATA + 0x1000 and RSP = DATA + 0x3000 (so the return
 * address is at DATA + 0x2ff8) and must end with RET.
 *
 * Input line: "dr7 off0 off1 off2 off3 code" (hex; offN is DRn - DATA). Output line: "off:dr6 ..."
 * (hex), or "ERR <step> <errno>" when the kernel refused a debug register.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

#define CODE 0x10000000UL
#define DATA 0x20000000UL

static void child(void) {
  /* Without a tracer (ptrace forbidden here) the SIGSTOP below would stop the child for good. */
  if (ptrace(PTRACE_TRACEME, 0, 0, 0) != 0) _exit(99);
  raise(SIGSTOP);
  __asm__ volatile(
      "mov %0, %%rsp\n\t"
      "mov %1, %%rdi\n\t"
      "call *%2\n\t"
      "mov $60, %%eax\n\t"
      "xor %%edi, %%edi\n\t"
      "syscall\n\t"
      :
      : "r"(DATA + 0x3000), "r"(DATA + 0x1000), "r"(CODE)
      : "memory");
}

static long dr_off(int n) { return (long)offsetof(struct user, u_debugreg[n]); }

int main(void) {
  uint8_t *code = mmap((void *)CODE, 4096, PROT_READ | PROT_WRITE | PROT_EXEC,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
  uint8_t *data = mmap((void *)DATA, 4 * 4096, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
  if (code == MAP_FAILED || data == MAP_FAILED) return 2;
  static char line[8192];
  while (fgets(line, sizeof line, stdin)) {
    unsigned long dr7, off[4];
    char hex[4096];
    if (sscanf(line, "%lx %lx %lx %lx %lx %4095s", &dr7, &off[0], &off[1], &off[2], &off[3], hex) != 6)
      return 3;
    size_t len = 0;
    for (char *p = hex; p[0] && p[1]; p += 2) {
      unsigned v;
      sscanf(p, "%2x", &v);
      code[len++] = (uint8_t)v;
    }
    for (int k = 0; k < 4 * 4096; k++) data[k] = (uint8_t)k;
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
      child();
      _exit(0);
    }
    int st;
    waitpid(pid, &st, 0);
    if (!WIFSTOPPED(st)) {
      printf("ERR traceme\n");
      continue;
    }
    char out[4096];
    size_t n = 0;
    out[0] = 0;
    int err = 0;
    for (int k = 0; k < 4 && !err; k++)
      if (ptrace(PTRACE_POKEUSER, pid, dr_off(k), DATA + off[k]) != 0)
        n += (size_t)snprintf(out + n, sizeof out - n, "ERR dr%d %d", k, err = errno);
    if (!err && ptrace(PTRACE_POKEUSER, pid, dr_off(7), dr7) != 0)
      n += (size_t)snprintf(out + n, sizeof out - n, "ERR dr7 %d", err = errno);
    if (err) {
      kill(pid, SIGKILL);
      waitpid(pid, &st, 0);
      printf("%s\n", out);
      continue;
    }
    ptrace(PTRACE_CONT, pid, 0, 0);
    for (int traps = 0; traps < 100; traps++) {
      if (waitpid(pid, &st, 0) < 0 || !WIFSTOPPED(st)) break;
      if (WSTOPSIG(st) != SIGTRAP) {
        n += (size_t)snprintf(out + n, sizeof out - n, "%ssig%d", n ? " " : "", WSTOPSIG(st));
        kill(pid, SIGKILL);
        break;
      }
      struct user_regs_struct r;
      ptrace(PTRACE_GETREGS, pid, 0, &r);
      unsigned long dr6 = (unsigned long)ptrace(PTRACE_PEEKUSER, pid, dr_off(6), 0);
      if (r.rip >= CODE && r.rip < CODE + len)
        n += (size_t)snprintf(out + n, sizeof out - n, "%s%lx:%lx", n ? " " : "",
                              (unsigned long)(r.rip - CODE), dr6 & 0x400f);
      else
        n += (size_t)snprintf(out + n, sizeof out - n, "%sx:%lx", n ? " " : "", dr6 & 0x400f);
      ptrace(PTRACE_CONT, pid, 0, 0);
    }
    waitpid(pid, &st, WNOHANG);
    printf("%s\n", out);
    fflush(stdout);
  }
  return 0;
}
