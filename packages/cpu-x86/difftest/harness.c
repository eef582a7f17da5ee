// Differential-test harness: runs x86-64 snippets on the host CPU in user mode, many per process.
//
// Protocol (little-endian, fixed-size records): read `struct in_rec` from stdin, write `struct out_rec`
// to stdout, until EOF. Each snippet starts from the given GPRs, RFLAGS (arithmetic flags and DF), XMM
// registers, MXCSR and a 1 KiB memory window, runs from CODE_BASE and ends at the INT3 placed right
// after it (or at the first fault).
//
// Context switches use signals only: the harness executes UD2; the SIGILL handler saves the harness's
// context and rewrites the signal frame with the snippet's registers, so `sigreturn` starts the
// snippet. Whatever ends the snippet (INT3, #PF, #GP, #DE, #UD...) lands in the same handler, which
// records the frame (REG_TRAPNO gives the vector, REG_ERR the error code, si_addr the fault address)
// and rewrites the frame back to the harness. Handlers run on an alternate stack, so a snippet may
// leave RSP anywhere. No fork per snippet: ~10^5 snippets per second.
//
// 32-bit snippets: when the high dword of in_rec.rflags is 32, the snippet runs in compatibility mode
// (CS = 0x23, Linux's 32-bit user code segment, set in the signal frame); DS and ES are loaded with
// the flat user data selector 0x2b so 32-bit code can address memory.
//
// 16-bit snippets (high dword 16): two LDT entries made with modify_ldt, a 16-bit code segment based at
// CODE_BASE (selector 0x07) and a 16-bit data segment based at DATA_BASE (0x0f), both 64 KiB; the
// signal frame gets CS 0x07 and SS 0x0f (UC_STRICT_RESTORE_SS), DS and ES are loaded with 0x0f before
// the snippet. RIP is then the 16-bit offset in the code segment. 64-bit code ignores DS/ES bases.
//
// x87 state: `fx` is bytes 0..159 of an FXSAVE image (FCW, FSW, abridged FTW, FOP, FIP, FDP, MXCSR
// slot unused, ST0..ST7), loaded into and read back from the signal frame's fpstate (same format).
//
// Build: gcc -O2 -o harness harness.c
#define _GNU_SOURCE
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <asm/ldt.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#ifndef UC_STRICT_RESTORE_SS
#define UC_STRICT_RESTORE_SS 0x4
#endif
#define SEL_CODE16 0x07
#define SEL_DATA16 0x0f

#define CODE_BASE 0x20000000UL
#define DATA_BASE 0x10000000UL
#define PAGE 4096
#define WIN_OFF 0x600
#define WIN 1024
#define CODE_MAX 32
#define FX 160

struct in_rec {
  uint64_t regs[16];
  uint64_t rflags;
  uint8_t xmm[16][16];
  uint32_t mxcsr;
  uint32_t code_len;
  uint8_t code[CODE_MAX];
  uint8_t mem[WIN];
  uint8_t fx[FX];
};

struct out_rec {
  uint64_t regs[16];
  uint64_t rip;
  uint64_t rflags;
  uint8_t xmm[16][16];
  uint32_t mxcsr;
  int32_t trapno; // -1: reached the final INT3 normally
  uint64_t err;
  uint64_t addr;
  uint8_t mem[WIN];
  int32_t outside_off; // first changed byte of the data page outside the window, or -1
  uint32_t outside_val;
  uint8_t fx[FX];
};

// Order of struct in_rec.regs: rax rcx rdx rbx rsp rbp rsi rdi r8..r15 (SDM encoding order).
static const int greg_index[16] = {REG_RAX, REG_RCX, REG_RDX, REG_RBX, REG_RSP, REG_RBP, REG_RSI, REG_RDI,
                                   REG_R8,  REG_R9,  REG_R10, REG_R11, REG_R12, REG_R13, REG_R14, REG_R15};

static volatile int phase;
static struct in_rec cur_in;
static struct out_rec cur_out;
static gregset_t saved_gregs;
static struct _libc_fpstate saved_fp;
static uint32_t code_len;
static uint32_t mode; // 0 (64-bit), 32 or 16

/** Where the snippet starts, as RIP: a linear address, or the offset in the 16-bit code segment. */
static uint64_t code_start(void) { return mode == 16 ? 0 : CODE_BASE; }

static int ldt_entry(unsigned n, unsigned long base, int code) {
  struct user_desc d;
  memset(&d, 0, sizeof d);
  d.entry_number = n;
  d.base_addr = (unsigned)base;
  d.limit = 0xffff;
  d.seg_32bit = 0;
  d.contents = code ? MODIFY_LDT_CONTENTS_CODE : MODIFY_LDT_CONTENTS_DATA;
  d.read_exec_only = 0;
  d.limit_in_pages = 0;
  d.seg_not_present = 0;
  d.useable = 1;
  return (int)syscall(SYS_modify_ldt, 1, &d, sizeof d);
}

static void handler(int sig, siginfo_t *si, void *ctx) {
  ucontext_t *uc = (ucontext_t *)ctx;
  greg_t *g = uc->uc_mcontext.gregs;
  struct _libc_fpstate *fp = uc->uc_mcontext.fpregs;
  if (phase == 0) {
    // Start: save the harness, load the snippet.
    memcpy(saved_gregs, g, sizeof(gregset_t));
    memcpy(&saved_fp, fp, sizeof(saved_fp));
    saved_gregs[REG_RIP] += 2; // past UD2
    for (int i = 0; i < 16; i++) g[greg_index[i]] = (greg_t)cur_in.regs[i];
    g[REG_EFL] = (greg_t)(cur_in.rflags & 0xffffffffu);
    if (mode == 32) g[REG_CSGSFS] = (g[REG_CSGSFS] & ~(greg_t)0xffff) | 0x23;
    if (mode == 16) {
      // CS in bits 15:0, SS in bits 63:48 of the packed cs/gs/fs/ss word.
      g[REG_CSGSFS] = (g[REG_CSGSFS] & (greg_t)0x0000ffffffff0000ULL) | SEL_CODE16 | ((greg_t)SEL_DATA16 << 48);
      uc->uc_flags |= UC_STRICT_RESTORE_SS;
    }
    g[REG_RIP] = (greg_t)code_start();
    memcpy(fp->_xmm, cur_in.xmm, sizeof(cur_in.xmm));
    memcpy(fp, cur_in.fx, 24);                          // FCW .. FDP
    memcpy((uint8_t *)fp + 32, cur_in.fx + 32, FX - 32); // ST0..ST7
    fp->mxcsr = cur_in.mxcsr;
    phase = 1;
    return;
  }
  // End: record and return to the harness.
  for (int i = 0; i < 16; i++) cur_out.regs[i] = (uint64_t)g[greg_index[i]];
  cur_out.rip = (uint64_t)g[REG_RIP];
  cur_out.rflags = (uint64_t)g[REG_EFL];
  memcpy(cur_out.xmm, fp->_xmm, sizeof(cur_out.xmm));
  memcpy(cur_out.fx, fp, FX);
  cur_out.mxcsr = fp->mxcsr;
  cur_out.trapno = (int32_t)g[REG_TRAPNO];
  cur_out.err = (uint64_t)g[REG_ERR];
  cur_out.addr = (uint64_t)si->si_addr;
  if (sig == SIGTRAP && cur_out.trapno == 3 && cur_out.rip == code_start() + code_len + 1) {
    cur_out.trapno = -1; // the final INT3
    cur_out.rip -= 1;
  }
  memcpy(g, saved_gregs, sizeof(gregset_t));
  memcpy(fp, &saved_fp, sizeof(saved_fp));
  phase = 0;
}

int main(void) {
  uint8_t *code = mmap((void *)CODE_BASE, PAGE, PROT_READ | PROT_WRITE | PROT_EXEC,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
  uint8_t *data = mmap((void *)DATA_BASE, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE,
                       -1, 0);
  if (code != (void *)CODE_BASE || data != (void *)DATA_BASE) {
    fprintf(stderr, "harness: cannot map the fixed pages\n");
    return 2;
  }
  static uint8_t altstack[65536];
  stack_t ss = {.ss_sp = altstack, .ss_size = sizeof(altstack), .ss_flags = 0};
  sigaltstack(&ss, NULL);
  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_sigaction = handler;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  int sigs[] = {SIGILL, SIGTRAP, SIGSEGV, SIGBUS, SIGFPE};
  for (unsigned i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) sigaction(sigs[i], &sa, NULL);
  memset(code, 0xcc, PAGE);
  if (ldt_entry(0, CODE_BASE, 1) != 0 || ldt_entry(1, DATA_BASE, 0) != 0) {
    fprintf(stderr, "harness: modify_ldt failed\n");
    return 2;
  }
  static uint8_t zero_page[PAGE];
  setvbuf(stdout, NULL, _IOFBF, 1 << 20);
  while (fread(&cur_in, sizeof(cur_in), 1, stdin) == 1) {
    code_len = cur_in.code_len > CODE_MAX ? CODE_MAX : cur_in.code_len;
    mode = (uint32_t)(cur_in.rflags >> 32);
    uint32_t dsel = mode == 16 ? SEL_DATA16 : 0x2b;
    __asm__ volatile("mov %0, %%ds\n\tmov %0, %%es" ::"r"(dsel) : "memory");
    memcpy(code, cur_in.code, code_len);
    memset(data, 0, PAGE);
    memcpy(data + WIN_OFF, cur_in.mem, WIN);
    memset(&cur_out, 0, sizeof(cur_out));
    phase = 0;
    alarm(2); // a snippet that hangs (or a signal storm) ends the process; the driver isolates it
    __asm__ volatile("ud2" ::: "memory");
    alarm(0);
    memcpy(cur_out.mem, data + WIN_OFF, WIN);
    cur_out.outside_off = -1;
    for (int i = 0; i < PAGE; i++) {
      if (i == WIN_OFF) i += WIN;
      if (i < PAGE && data[i] != 0) {
        cur_out.outside_off = i;
        cur_out.outside_val = data[i];
        break;
      }
    }
    (void)zero_page;
    memset(code, 0xcc, PAGE); // the snippet may have written anywhere in the code page
    fwrite(&cur_out, sizeof(cur_out), 1, stdout);
  }
  fflush(stdout);
  return 0;
}
