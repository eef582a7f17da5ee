/*
 * x87 oracle: runs one x87 instruction on the host CPU per input line and prints the resulting
 * state. Built by test/fpu-oracle.test.ts with gcc. Input lines (hex fields):
 *   OP CW A_SE A_HI A_LO B_SE B_HI B_LO M_HI M_LO
 * ST(0) = A and ST(1) = B before OP (B is loaded first); M is the 64-bit memory operand (the BCD
 * operand uses M plus the two bytes of A_SE's low half... see "fbld"). Output line:
 *   SW TW ST0_SE ST0_HI ST0_LO ST1_SE ST1_HI ST1_LO M_HI M_LO MB8 MB9 EFLAGS
 * fnstsw/fnsave are non-waiting, so unmasked exceptions stay pending and are seen, not taken.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

struct __attribute__((packed)) x80 { uint64_t m; uint16_t se; };
struct x80 gA, gB;
uint8_t gM[16];
uint16_t gCW, gSW;
uint8_t gSave[108];
uint64_t gF;
uint8_t gFx[512] __attribute__((aligned(64)));
uint32_t gMx;

#define OP(nm, insn)                                                          \
  if (!strcmp(op, nm)) {                                                      \
    __asm__ volatile("fninit\n\tfldcw gCW(%%rip)\n\tfldt gB(%%rip)\n\tfldt gA(%%rip)\n\t" \
                     insn "\n\tpushfq\n\tpopq gF(%%rip)\n\tfnstsw gSW(%%rip)\n\tfnsave gSave(%%rip)\n\tfninit" \
                     ::: "memory", "cc");                                      \
    goto done;                                                                \
  }

static unsigned rd16(const uint8_t *p) { return p[0] | (p[1] << 8); }
static uint32_t rd32(const uint8_t *p) { return p[0] | (p[1] << 8) | (p[2] << 16) | ((uint32_t)p[3] << 24); }

int main(void) {
  char op[32];
  unsigned cw, ase, bse;
  unsigned ahi, alo, bhi, blo, mhi, mlo;
  while (scanf("%31s %x %x %x %x %x %x %x %x %x", op, &cw, &ase, &ahi, &alo, &bse, &bhi, &blo, &mhi, &mlo) == 10) {
    gCW = cw;
    gA.se = ase; gA.m = ((uint64_t)ahi << 32) | alo;
    gB.se = bse; gB.m = ((uint64_t)bhi << 32) | blo;
    memset(gM, 0, sizeof gM);
    uint64_t m = ((uint64_t)mhi << 32) | mlo;
    memcpy(gM, &m, 8);
    gM[8] = ase & 0xff; gM[9] = (ase >> 8) & 0xff; /* fbld: bytes 8,9 from A_SE */
    if (!strcmp(op, "fxsave")) {
      /* FXSAVE64 image after FLD B, FLD A, FDIV; MXCSR from M_LO; XMM0 = M:M. */
      gMx = mlo & 0xffbf;
      __asm__ volatile("fninit\n\tfldcw gCW(%%rip)\n\tfldt gB(%%rip)\n\tfldt gA(%%rip)\n\t.byte 0xd8,0xf1\n\t"
                       "ldmxcsr gMx(%%rip)\n\tmovq gM(%%rip), %%xmm0\n\tmovlhps %%xmm0, %%xmm0\n\t"
                       "fxsave64 gFx(%%rip)\n\tfninit\n\tmovl $0x1f80, gMx(%%rip)\n\tldmxcsr gMx(%%rip)"
                       ::: "memory", "xmm0");
      for (int i = 0; i < 192; i++) printf("%02x", gFx[i]);
      printf("\n");
      continue;
    }
    OP("fadd", ".byte 0xd8,0xc1")
    OP("fmul", ".byte 0xd8,0xc9")
    OP("fsub", ".byte 0xd8,0xe1")
    OP("fsubr", ".byte 0xd8,0xe9")
    OP("fdiv", ".byte 0xd8,0xf1")
    OP("fdivr", ".byte 0xd8,0xf9")
    OP("faddp1", ".byte 0xde,0xc1") /* FADDP ST(1),ST(0) */
    OP("fsubp1", ".byte 0xde,0xe9") /* FSUBP ST(1),ST(0): ST1 = ST1 - ST0 (Intel) */
    OP("fsqrt", ".byte 0xd9,0xfa")
    OP("frndint", ".byte 0xd9,0xfc")
    OP("fcom", ".byte 0xd8,0xd1")
    OP("fucom", ".byte 0xdd,0xe1")
    OP("fcomi", ".byte 0xdb,0xf1")
    OP("fucomi", ".byte 0xdb,0xe9")
    OP("ftst", ".byte 0xd9,0xe4")
    OP("fxam", ".byte 0xd9,0xe5")
    OP("fchs", ".byte 0xd9,0xe0")
    OP("fabs", ".byte 0xd9,0xe1")
    OP("fxch", ".byte 0xd9,0xc9")
    OP("fscale", ".byte 0xd9,0xfd")
    OP("fxtract", ".byte 0xd9,0xf4")
    OP("fprem", ".byte 0xd9,0xf8")
    OP("fprem1", ".byte 0xd9,0xf5")
    OP("fsin", ".byte 0xd9,0xfe")
    OP("fcos", ".byte 0xd9,0xff")
    OP("fsincos", ".byte 0xd9,0xfb")
    OP("fptan", ".byte 0xd9,0xf2")
    OP("fpatan", ".byte 0xd9,0xf3")
    OP("f2xm1", ".byte 0xd9,0xf0")
    OP("fyl2x", ".byte 0xd9,0xf1")
    OP("fyl2xp1", ".byte 0xd9,0xf9")
    OP("fld1", "fld1")
    OP("fldl2t", "fldl2t")
    OP("fldl2e", "fldl2e")
    OP("fldpi", "fldpi")
    OP("fldlg2", "fldlg2")
    OP("fldln2", "fldln2")
    OP("fadd32", "fadds gM(%%rip)")
    OP("fadd64", "faddl gM(%%rip)")
    OP("fdiv32", "fdivs gM(%%rip)")
    OP("fsubr64", "fsubrl gM(%%rip)")
    OP("fiadd16", "fiadds gM(%%rip)")
    OP("fimul32", "fimull gM(%%rip)")
    OP("fcom64", "fcoml gM(%%rip)")
    OP("fld32", "flds gM(%%rip)")
    OP("fld64", "fldl gM(%%rip)")
    OP("fild16", "filds gM(%%rip)")
    OP("fild32", "fildl gM(%%rip)")
    OP("fild64", "fildll gM(%%rip)")
    OP("fbld", "fbld gM(%%rip)")
    OP("fst32", "fsts gM(%%rip)")
    OP("fst64", "fstl gM(%%rip)")
    OP("fstp32", "fstps gM(%%rip)")
    OP("fist16", "fists gM(%%rip)")
    OP("fist32", "fistl gM(%%rip)")
    OP("fistp64", "fistpll gM(%%rip)")
    OP("fisttp16", "fisttps gM(%%rip)")
    OP("fisttp32", "fisttpl gM(%%rip)")
    OP("fisttp64", "fisttpll gM(%%rip)")
    OP("fbstp", "fbstp gM(%%rip)")
    printf("badop\n");
    continue;
  done:;
    const uint8_t *s = gSave;
    const uint8_t *r0 = s + 28, *r1 = s + 38;
    printf("%04x %04x %04x %08x %08x %04x %08x %08x %08x %08x %02x %02x %04x\n", gSW, rd16(s + 8),
           rd16(r0 + 8), rd32(r0 + 4), rd32(r0), rd16(r1 + 8), rd32(r1 + 4), rd32(r1),
           rd32(gM + 4), rd32(gM), gM[8], gM[9], (unsigned)(gF & 0x8d5));
  }
  return 0;
}
