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
  if (!strcmp(op, nm)) { __asm__ volatile(PRE insn POST ::: "memory", "cc", "xmm0", "xmm1", "rax", "rcx", "rdx"); goto done; }
#define OPG(nm, insn) \
  if (!strcmp(op, nm)) { __asm__ volatile(PRE insn "\n\tpushfq\n\tpopq gF(%%rip)\n\tstmxcsr gMxOut(%%rip)" ::: "memory", "cc", "xmm0", "xmm1", "rax", "rcx", "rdx"); goto done; }
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
    OP("paddb", "paddb %%xmm1, %%xmm0")
    OP("paddw", "paddw %%xmm1, %%xmm0")
    OP("paddd", "paddd %%xmm1, %%xmm0")
    OP("paddq", "paddq %%xmm1, %%xmm0")
    OP("psubb", "psubb %%xmm1, %%xmm0")
    OP("psubw", "psubw %%xmm1, %%xmm0")
    OP("psubd", "psubd %%xmm1, %%xmm0")
    OP("psubq", "psubq %%xmm1, %%xmm0")
    OP("paddsb", "paddsb %%xmm1, %%xmm0")
    OP("paddsw", "paddsw %%xmm1, %%xmm0")
    OP("paddusb", "paddusb %%xmm1, %%xmm0")
    OP("paddusw", "paddusw %%xmm1, %%xmm0")
    OP("psubsb", "psubsb %%xmm1, %%xmm0")
    OP("psubsw", "psubsw %%xmm1, %%xmm0")
    OP("psubusb", "psubusb %%xmm1, %%xmm0")
    OP("psubusw", "psubusw %%xmm1, %%xmm0")
    OP("pmullw", "pmullw %%xmm1, %%xmm0")
    OP("pmulhw", "pmulhw %%xmm1, %%xmm0")
    OP("pmulhuw", "pmulhuw %%xmm1, %%xmm0")
    OP("pmulld", "pmulld %%xmm1, %%xmm0")
    OP("pmuludq", "pmuludq %%xmm1, %%xmm0")
    OP("pmuldq", "pmuldq %%xmm1, %%xmm0")
    OP("pmaddwd", "pmaddwd %%xmm1, %%xmm0")
    OP("pmaddubsw", "pmaddubsw %%xmm1, %%xmm0")
    OP("pmulhrsw", "pmulhrsw %%xmm1, %%xmm0")
    OP("pavgb", "pavgb %%xmm1, %%xmm0")
    OP("pavgw", "pavgw %%xmm1, %%xmm0")
    OP("pminub", "pminub %%xmm1, %%xmm0")
    OP("pmaxub", "pmaxub %%xmm1, %%xmm0")
    OP("pminsw", "pminsw %%xmm1, %%xmm0")
    OP("pmaxsw", "pmaxsw %%xmm1, %%xmm0")
    OP("pminsb", "pminsb %%xmm1, %%xmm0")
    OP("pmaxsb", "pmaxsb %%xmm1, %%xmm0")
    OP("pminuw", "pminuw %%xmm1, %%xmm0")
    OP("pmaxuw", "pmaxuw %%xmm1, %%xmm0")
    OP("pminsd", "pminsd %%xmm1, %%xmm0")
    OP("pmaxsd", "pmaxsd %%xmm1, %%xmm0")
    OP("pminud", "pminud %%xmm1, %%xmm0")
    OP("pmaxud", "pmaxud %%xmm1, %%xmm0")
    OP("psadbw", "psadbw %%xmm1, %%xmm0")
    OP("pcmpeqb", "pcmpeqb %%xmm1, %%xmm0")
    OP("pcmpeqw", "pcmpeqw %%xmm1, %%xmm0")
    OP("pcmpeqd", "pcmpeqd %%xmm1, %%xmm0")
    OP("pcmpeqq", "pcmpeqq %%xmm1, %%xmm0")
    OP("pcmpgtb", "pcmpgtb %%xmm1, %%xmm0")
    OP("pcmpgtw", "pcmpgtw %%xmm1, %%xmm0")
    OP("pcmpgtd", "pcmpgtd %%xmm1, %%xmm0")
    OP("pcmpgtq", "pcmpgtq %%xmm1, %%xmm0")
    OP("pand", "pand %%xmm1, %%xmm0")
    OP("pandn", "pandn %%xmm1, %%xmm0")
    OP("por", "por %%xmm1, %%xmm0")
    OP("pxor", "pxor %%xmm1, %%xmm0")
    OP("psignb", "psignb %%xmm1, %%xmm0")
    OP("psignw", "psignw %%xmm1, %%xmm0")
    OP("psignd", "psignd %%xmm1, %%xmm0")
    OP("phaddw", "phaddw %%xmm1, %%xmm0")
    OP("phaddd", "phaddd %%xmm1, %%xmm0")
    OP("phaddsw", "phaddsw %%xmm1, %%xmm0")
    OP("phsubw", "phsubw %%xmm1, %%xmm0")
    OP("phsubd", "phsubd %%xmm1, %%xmm0")
    OP("phsubsw", "phsubsw %%xmm1, %%xmm0")
    OP("pabsb", "pabsb %%xmm1, %%xmm0")
    OP("pabsw", "pabsw %%xmm1, %%xmm0")
    OP("pabsd", "pabsd %%xmm1, %%xmm0")
    OP("psllw", "psllw %%xmm1, %%xmm0")
    OP("pslld", "pslld %%xmm1, %%xmm0")
    OP("psllq", "psllq %%xmm1, %%xmm0")
    OP("psrlw", "psrlw %%xmm1, %%xmm0")
    OP("psrld", "psrld %%xmm1, %%xmm0")
    OP("psrlq", "psrlq %%xmm1, %%xmm0")
    OP("psraw", "psraw %%xmm1, %%xmm0")
    OP("psrad", "psrad %%xmm1, %%xmm0")
    OP("pshufb", "pshufb %%xmm1, %%xmm0")
    OP("punpcklbw", "punpcklbw %%xmm1, %%xmm0")
    OP("punpckhbw", "punpckhbw %%xmm1, %%xmm0")
    OP("punpcklwd", "punpcklwd %%xmm1, %%xmm0")
    OP("punpckhwd", "punpckhwd %%xmm1, %%xmm0")
    OP("punpckldq", "punpckldq %%xmm1, %%xmm0")
    OP("punpckhdq", "punpckhdq %%xmm1, %%xmm0")
    OP("punpcklqdq", "punpcklqdq %%xmm1, %%xmm0")
    OP("punpckhqdq", "punpckhqdq %%xmm1, %%xmm0")
    OP("unpcklps", "unpcklps %%xmm1, %%xmm0")
    OP("unpckhps", "unpckhps %%xmm1, %%xmm0")
    OP("unpcklpd", "unpcklpd %%xmm1, %%xmm0")
    OP("unpckhpd", "unpckhpd %%xmm1, %%xmm0")
    OP("packsswb", "packsswb %%xmm1, %%xmm0")
    OP("packssdw", "packssdw %%xmm1, %%xmm0")
    OP("packuswb", "packuswb %%xmm1, %%xmm0")
    OP("packusdw", "packusdw %%xmm1, %%xmm0")
    OP("movsldup", "movsldup %%xmm1, %%xmm0")
    OP("movshdup", "movshdup %%xmm1, %%xmm0")
    OP("movddup", "movddup %%xmm1, %%xmm0")
    OP("phminposuw", "phminposuw %%xmm1, %%xmm0")
    OP("pmovsxbw", "pmovsxbw %%xmm1, %%xmm0")
    OP("pmovzxbw", "pmovzxbw %%xmm1, %%xmm0")
    OP("pmovsxbd", "pmovsxbd %%xmm1, %%xmm0")
    OP("pmovzxbd", "pmovzxbd %%xmm1, %%xmm0")
    OP("pmovsxbq", "pmovsxbq %%xmm1, %%xmm0")
    OP("pmovzxwq", "pmovzxwq %%xmm1, %%xmm0")
    OP("pmovsxwd", "pmovsxwd %%xmm1, %%xmm0")
    OP("pmovzxdq", "pmovzxdq %%xmm1, %%xmm0")
    OP("pmovsxdq", "pmovsxdq %%xmm1, %%xmm0")
    OP("pshufd_1b", "pshufd $0x1b, %%xmm1, %%xmm0")
    OP("pshuflw_4e", "pshuflw $0x4e, %%xmm1, %%xmm0")
    OP("pshufhw_b1", "pshufhw $0xb1, %%xmm1, %%xmm0")
    OP("palignr_5", "palignr $5, %%xmm1, %%xmm0")
    OP("palignr_19", "palignr $19, %%xmm1, %%xmm0")
    OP("shufps_9c", "shufps $0x9c, %%xmm1, %%xmm0")
    OP("shufpd_1", "shufpd $1, %%xmm1, %%xmm0")
    OP("pslldq_3", "movdqa %%xmm1, %%xmm0\n\tpslldq $3, %%xmm0")
    OP("psrldq_7", "movdqa %%xmm1, %%xmm0\n\tpsrldq $7, %%xmm0")
    OP("psllw_i5", "movdqa %%xmm1, %%xmm0\n\tpsllw $5, %%xmm0")
    OP("psrad_i31", "movdqa %%xmm1, %%xmm0\n\tpsrad $31, %%xmm0")
    OP("psrlq_i40", "movdqa %%xmm1, %%xmm0\n\tpsrlq $40, %%xmm0")
    OP("insertps_9a", "insertps $0x9a, %%xmm1, %%xmm0")
    OP("blendps_5", "blendps $5, %%xmm1, %%xmm0")
    OP("blendpd_2", "blendpd $2, %%xmm1, %%xmm0")
    OP("pblendw_a5", "pblendw $0xa5, %%xmm1, %%xmm0")
    OP("mpsadbw_5", "mpsadbw $5, %%xmm1, %%xmm0")
    OP("mpsadbw_2", "mpsadbw $2, %%xmm1, %%xmm0")
    OPG("pcmpistri_00", "pcmpistri $0x00, %%xmm1, %%xmm0\n\tmovl %%ecx, gR(%%rip)")
    OPG("pcmpestri_00", "movl gB+12(%%rip), %%eax\n\tmovl gA+12(%%rip), %%edx\n\tandl $31, %%eax\n\tandl $31, %%edx\n\tsubl $8, %%eax\n\tsubl $8, %%edx\n\tpcmpestri $0x00, %%xmm1, %%xmm0\n\tmovl %%ecx, gR(%%rip)")
    OP("pcmpistrm_00", "pcmpistrm $0x00, %%xmm1, %%xmm0")
    OPG("pcmpistri_04", "pcmpistri $0x04, %%xmm1, %%xmm0\n\tmovl %%ecx, gR(%%rip)")
    OPG("pcmpestri_04", "movl gB+12(%%rip), %%eax\n\tmovl gA+12(%%rip), %%edx\n\tandl $31, %%eax\n\tandl $31, %%edx\n\tsubl $8, %%eax\n\tsubl $8, %%edx\n\tpcmpestri $0x04, %%xmm1, %%xmm0\n\tmovl %%ecx, gR(%%rip)")
    OP("pcmpistrm_04", "pcmpistrm $0x04, %%xmm1, %%xmm0")
    OPG("pcmpistri_08", "pcmpistri $0x08, %%xmm1, %%xmm0\n\tmovl %%ecx, gR(%%rip)")
    OPG("pcmpestri_08", "movl gB+12(%%rip), %%eax\n\tmovl gA+12(%%rip), %%edx\n\tandl $31, %%eax\n\tandl $31, %%edx\n\tsubl $8, %%eax\n\tsubl $8, %%edx\n\tpcmpestri $0x08, %%xmm1, %%xmm0\n\tmovl %%ecx, gR(%%rip)")
    OP("pcmpistrm_08", "pcmpistrm $0x08, %%xmm1, %%xmm0")
    OPG("pcmpistri_0c", "pcmpistri $0x0c, %%xmm1, %%xmm0\n\tmovl %%ecx, gR(%%rip)")
    OPG("pcmpestri_0c", "movl gB+12(%%rip), %%eax\n\tmovl gA+12(%%rip), %%edx\n\tandl $31, %%eax\n\tandl $31, %%edx\n\tsubl $8, %%eax\n\tsubl $8, %%edx\n\tpcmpestri $0x0c, %%xmm1, %%xmm0\n\tmovl %%ecx, gR(%%rip)")
    OP("pcmpistrm_0c", "pcmpistrm $0x0c, %%xmm1, %%xmm0")
    OPG("pcmpistri_14", "pcmpistri $0x14, %%xmm1, %%xmm0\n\tmovl %%ecx, gR(%%rip)")
    OPG("pcmpestri_14", "movl gB+12(%%rip), %%eax\n\tmovl gA+12(%%rip), %%edx\n\tandl $31, %%eax\n\tandl $31, %%edx\n\tsubl $8, %%eax\n\tsubl $8, %%edx\n\tpcmpestri $0x14, %%xmm1, %%xmm0\n\tmovl %%ecx, gR(%%rip)")
    OP("pcmpistrm_14", "pcmpistrm $0x14, %%xmm1, %%xmm0")
    OPG("pcmpistri_3a", "pcmpistri $0x3a, %%xmm1, %%xmm0\n\tmovl %%ecx, gR(%%rip)")
    OPG("pcmpestri_3a", "movl gB+12(%%rip), %%eax\n\tmovl gA+12(%%rip), %%edx\n\tandl $31, %%eax\n\tandl $31, %%edx\n\tsubl $8, %%eax\n\tsubl $8, %%edx\n\tpcmpestri $0x3a, %%xmm1, %%xmm0\n\tmovl %%ecx, gR(%%rip)")
    OP("pcmpistrm_3a", "pcmpistrm $0x3a, %%xmm1, %%xmm0")
    OPG("pcmpistri_44", "pcmpistri $0x44, %%xmm1, %%xmm0\n\tmovl %%ecx, gR(%%rip)")
    OPG("pcmpestri_44", "movl gB+12(%%rip), %%eax\n\tmovl gA+12(%%rip), %%edx\n\tandl $31, %%eax\n\tandl $31, %%edx\n\tsubl $8, %%eax\n\tsubl $8, %%edx\n\tpcmpestri $0x44, %%xmm1, %%xmm0\n\tmovl %%ecx, gR(%%rip)")
    OP("pcmpistrm_44", "pcmpistrm $0x44, %%xmm1, %%xmm0")
    OPG("pcmpistri_70", "pcmpistri $0x70, %%xmm1, %%xmm0\n\tmovl %%ecx, gR(%%rip)")
    OPG("pcmpestri_70", "movl gB+12(%%rip), %%eax\n\tmovl gA+12(%%rip), %%edx\n\tandl $31, %%eax\n\tandl $31, %%edx\n\tsubl $8, %%eax\n\tsubl $8, %%edx\n\tpcmpestri $0x70, %%xmm1, %%xmm0\n\tmovl %%ecx, gR(%%rip)")
    OP("pcmpistrm_70", "pcmpistrm $0x70, %%xmm1, %%xmm0")
    OPG("pcmpistri_01", "pcmpistri $0x01, %%xmm1, %%xmm0\n\tmovl %%ecx, gR(%%rip)")
    OPG("pcmpestri_01", "movl gB+12(%%rip), %%eax\n\tmovl gA+12(%%rip), %%edx\n\tandl $31, %%eax\n\tandl $31, %%edx\n\tsubl $8, %%eax\n\tsubl $8, %%edx\n\tpcmpestri $0x01, %%xmm1, %%xmm0\n\tmovl %%ecx, gR(%%rip)")
    OP("pcmpistrm_01", "pcmpistrm $0x01, %%xmm1, %%xmm0")
    OPG("pcmpistri_0d", "pcmpistri $0x0d, %%xmm1, %%xmm0\n\tmovl %%ecx, gR(%%rip)")
    OPG("pcmpestri_0d", "movl gB+12(%%rip), %%eax\n\tmovl gA+12(%%rip), %%edx\n\tandl $31, %%eax\n\tandl $31, %%edx\n\tsubl $8, %%eax\n\tsubl $8, %%edx\n\tpcmpestri $0x0d, %%xmm1, %%xmm0\n\tmovl %%ecx, gR(%%rip)")
    OP("pcmpistrm_0d", "pcmpistrm $0x0d, %%xmm1, %%xmm0")
    OPG("pcmpistri_4e", "pcmpistri $0x4e, %%xmm1, %%xmm0\n\tmovl %%ecx, gR(%%rip)")
    OPG("pcmpestri_4e", "movl gB+12(%%rip), %%eax\n\tmovl gA+12(%%rip), %%edx\n\tandl $31, %%eax\n\tandl $31, %%edx\n\tsubl $8, %%eax\n\tsubl $8, %%edx\n\tpcmpestri $0x4e, %%xmm1, %%xmm0\n\tmovl %%ecx, gR(%%rip)")
    OP("pcmpistrm_4e", "pcmpistrm $0x4e, %%xmm1, %%xmm0")
    OPG("ptest", "ptest %%xmm1, %%xmm0")
    OPG("pmovmskb", "pmovmskb %%xmm1, %%eax\n\tmovl %%eax, gR(%%rip)")
    OPG("crc32q", "movl gA(%%rip), %%eax\n\tmovq gB(%%rip), %%rcx\n\tcrc32q %%rcx, %%rax\n\tmovl %%eax, gR(%%rip)")
    OPG("crc32b", "movl gA(%%rip), %%eax\n\tmovb gB(%%rip), %%cl\n\tcrc32b %%cl, %%eax\n\tmovl %%eax, gR(%%rip)")
    OPG("popcnt", "movq gB(%%rip), %%rcx\n\tpopcntq %%rcx, %%rax\n\tmovl %%eax, gR(%%rip)")
    OPG("lzcnt", "movl gB(%%rip), %%ecx\n\tlzcntl %%ecx, %%eax\n\tmovl %%eax, gR(%%rip)")
    OPG("tzcnt", "movq gB(%%rip), %%rcx\n\ttzcntq %%rcx, %%rax\n\tmovl %%eax, gR(%%rip)")
    printf("badop %s\n", op);
    continue;
  done:
    printf("%08x %08x %08x %08x %08x %04x\n", gMxOut, gR[0], gR[1], gR[2], gR[3], (unsigned)(gF & 0x8d5));
  }
  return 0;
}
