/*
 * SSE oracle: one SSE instruction per input line on the host CPU.
 *   OP MXCSR A0 A1 A2 A3 B0 B1 B2 B3     (hex words, XMM0 = A, XMM1 = B; OP xmm0, xmm1)
 * prints  MXCSR R0 R1 R2 R3 EFLAGS  or, when the instruction raised #XM (SIGFPE),
 *         trap MXCSR-at-the-fault.
 * GPR-result conversions put the integer in R0 (R1 for the high half); GPR-source conversions
 * take it from B0 (B1:B0 for 64-bit).
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <ucontext.h>

uint32_t gA[4], gB[4], gR[4];
uint32_t gMx, gMxOut;
uint64_t gF;
static sigjmp_buf jb;
static volatile uint32_t trapMx;

static void onfpe(int sig, siginfo_t *si, void *ctx) {
  (void)sig; (void)si;
  ucontext_t *uc = ctx;
  trapMx = uc->uc_mcontext.fpregs->mxcsr;
  uc->uc_mcontext.fpregs->mxcsr = 0x1f80;
  siglongjmp(jb, 1);
}

#define PRE "movdqu gA(%%rip), %%xmm0\n\tmovdqu gB(%%rip), %%xmm1\n\tldmxcsr gMx(%%rip)\n\t"
#define POST "\n\tpushfq\n\tpopq gF(%%rip)\n\tstmxcsr gMxOut(%%rip)\n\tmovdqu %%xmm0, gR(%%rip)"
#define OP(nm, insn) \
  if (!strcmp(op, nm)) { __asm__ volatile(PRE insn POST ::: "memory", "cc", "xmm0", "xmm1", "rax"); goto done; }
#define OPG(nm, insn) \
  if (!strcmp(op, nm)) { __asm__ volatile(PRE insn "\n\tpushfq\n\tpopq gF(%%rip)\n\tstmxcsr gMxOut(%%rip)" ::: "memory", "cc", "xmm0", "xmm1", "rax"); goto done; }
#define CMP8(base, insn) \
  OP(base "0", insn " $0, %%xmm1, %%xmm0") OP(base "1", insn " $1, %%xmm1, %%xmm0") \
  OP(base "2", insn " $2, %%xmm1, %%xmm0") OP(base "3", insn " $3, %%xmm1, %%xmm0") \
  OP(base "4", insn " $4, %%xmm1, %%xmm0") OP(base "5", insn " $5, %%xmm1, %%xmm0") \
  OP(base "6", insn " $6, %%xmm1, %%xmm0") OP(base "7", insn " $7, %%xmm1, %%xmm0")
#define RND(base, insn) \
  OP(base "0", insn " $0, %%xmm1, %%xmm0") OP(base "1", insn " $1, %%xmm1, %%xmm0") \
  OP(base "2", insn " $2, %%xmm1, %%xmm0") OP(base "3", insn " $3, %%xmm1, %%xmm0") \
  OP(base "4", insn " $4, %%xmm1, %%xmm0") OP(base "8", insn " $8, %%xmm1, %%xmm0") \
  OP(base "9", insn " $9, %%xmm1, %%xmm0") OP(base "12", insn " $12, %%xmm1, %%xmm0")

int main(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = onfpe;
  sa.sa_flags = SA_SIGINFO | SA_NODEFER;
  sigaction(SIGFPE, &sa, 0);
  char op[32];
  while (scanf("%31s %x %x %x %x %x %x %x %x %x", op, &gMx, &gA[0], &gA[1], &gA[2], &gA[3], &gB[0], &gB[1], &gB[2], &gB[3]) == 10) {
    memset(gR, 0, sizeof gR);
    if (sigsetjmp(jb, 1)) {
      printf("trap %08x\n", trapMx);
      continue;
    }
    OP("addps", "addps %%xmm1, %%xmm0") OP("subps", "subps %%xmm1, %%xmm0") OP("mulps", "mulps %%xmm1, %%xmm0")
    OP("divps", "divps %%xmm1, %%xmm0") OP("sqrtps", "sqrtps %%xmm1, %%xmm0") OP("minps", "minps %%xmm1, %%xmm0")
    OP("maxps", "maxps %%xmm1, %%xmm0")
    OP("addss", "addss %%xmm1, %%xmm0") OP("subss", "subss %%xmm1, %%xmm0") OP("mulss", "mulss %%xmm1, %%xmm0")
    OP("divss", "divss %%xmm1, %%xmm0") OP("sqrtss", "sqrtss %%xmm1, %%xmm0") OP("minss", "minss %%xmm1, %%xmm0")
    OP("maxss", "maxss %%xmm1, %%xmm0")
    OP("addpd", "addpd %%xmm1, %%xmm0") OP("subpd", "subpd %%xmm1, %%xmm0") OP("mulpd", "mulpd %%xmm1, %%xmm0")
    OP("divpd", "divpd %%xmm1, %%xmm0") OP("sqrtpd", "sqrtpd %%xmm1, %%xmm0") OP("minpd", "minpd %%xmm1, %%xmm0")
    OP("maxpd", "maxpd %%xmm1, %%xmm0")
    OP("addsd", "addsd %%xmm1, %%xmm0") OP("subsd", "subsd %%xmm1, %%xmm0") OP("mulsd", "mulsd %%xmm1, %%xmm0")
    OP("divsd", "divsd %%xmm1, %%xmm0") OP("sqrtsd", "sqrtsd %%xmm1, %%xmm0") OP("minsd", "minsd %%xmm1, %%xmm0")
    OP("maxsd", "maxsd %%xmm1, %%xmm0")
    OP("addsubps", "addsubps %%xmm1, %%xmm0") OP("addsubpd", "addsubpd %%xmm1, %%xmm0")
    OP("haddps", "haddps %%xmm1, %%xmm0") OP("hsubps", "hsubps %%xmm1, %%xmm0")
    OP("haddpd", "haddpd %%xmm1, %%xmm0") OP("hsubpd", "hsubpd %%xmm1, %%xmm0")
    CMP8("cmpps", "cmpps") CMP8("cmpss", "cmpss") CMP8("cmppd", "cmppd") CMP8("cmpsd", "cmpsd")
    OP("comiss", "comiss %%xmm1, %%xmm0") OP("ucomiss", "ucomiss %%xmm1, %%xmm0")
    OP("comisd", "comisd %%xmm1, %%xmm0") OP("ucomisd", "ucomisd %%xmm1, %%xmm0")
    OP("cvtss2sd", "cvtss2sd %%xmm1, %%xmm0") OP("cvtsd2ss", "cvtsd2ss %%xmm1, %%xmm0")
    OP("cvtps2pd", "cvtps2pd %%xmm1, %%xmm0") OP("cvtpd2ps", "cvtpd2ps %%xmm1, %%xmm0")
    OP("cvtdq2ps", "cvtdq2ps %%xmm1, %%xmm0") OP("cvtdq2pd", "cvtdq2pd %%xmm1, %%xmm0")
    OP("cvtps2dq", "cvtps2dq %%xmm1, %%xmm0") OP("cvttps2dq", "cvttps2dq %%xmm1, %%xmm0")
    OP("cvtpd2dq", "cvtpd2dq %%xmm1, %%xmm0") OP("cvttpd2dq", "cvttpd2dq %%xmm1, %%xmm0")
    OP("cvtsi2ss", "movl gB(%%rip), %%eax\n\tcvtsi2ssl %%eax, %%xmm0")
    OP("cvtsi2ss64", "movq gB(%%rip), %%rax\n\tcvtsi2ssq %%rax, %%xmm0")
    OP("cvtsi2sd", "movl gB(%%rip), %%eax\n\tcvtsi2sdl %%eax, %%xmm0")
    OP("cvtsi2sd64", "movq gB(%%rip), %%rax\n\tcvtsi2sdq %%rax, %%xmm0")
    OPG("cvtss2si", "cvtss2si %%xmm1, %%eax\n\tmovl %%eax, gR(%%rip)")
    OPG("cvttss2si", "cvttss2si %%xmm1, %%eax\n\tmovl %%eax, gR(%%rip)")
    OPG("cvtsd2si", "cvtsd2si %%xmm1, %%eax\n\tmovl %%eax, gR(%%rip)")
    OPG("cvttsd2si", "cvttsd2si %%xmm1, %%eax\n\tmovl %%eax, gR(%%rip)")
    OPG("cvtss2si64", "cvtss2si %%xmm1, %%rax\n\tmovq %%rax, gR(%%rip)")
    OPG("cvttsd2si64", "cvttsd2si %%xmm1, %%rax\n\tmovq %%rax, gR(%%rip)")
    OPG("cvtsd2si64", "cvtsd2si %%xmm1, %%rax\n\tmovq %%rax, gR(%%rip)")
    RND("roundps", "roundps") RND("roundss", "roundss") RND("roundpd", "roundpd") RND("roundsd", "roundsd")
    OP("dpps_f1", "dpps $0xf1, %%xmm1, %%xmm0") OP("dpps_7e", "dpps $0x7e, %%xmm1, %%xmm0")
    OP("dppd_33", "dppd $0x33, %%xmm1, %%xmm0") OP("dppd_12", "dppd $0x12, %%xmm1, %%xmm0")
    printf("badop %s\n", op);
    continue;
  done:
    printf("%08x %08x %08x %08x %08x %04x\n", gMxOut, gR[0], gR[1], gR[2], gR[3], (unsigned)(gF & 0x8d5));
  }
  return 0;
}
