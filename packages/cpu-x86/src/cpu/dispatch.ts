/**
 * Chooses the semantics of each decoded instruction once, when its block is built: the handler, the
 * operand size of the form, a sub-kind, the memory operand's segment, and whether the instruction ends
 * the block (anything that may change RIP non-linearly, the mode, or interrupt recognition).
 * Keyed on the generated `Op` ids; forms are told apart by their SDM opcode bytes.
 */
import { DecodeStatus, NO_SEG, Prefix } from "../decoder/insn.js";
import { OP_COUNT, Op } from "../generated/ops.js";
import { prepareUnits } from "./dispatch-units.js";
import * as Fa from "./exec-far.js";
import * as Fl from "./exec-flow.js";
import * as A from "./exec-int.js";
import { stringOp } from "./exec-string.js";
import * as S from "./exec-system.js";
import { type BuildInsn, OpCpu, type XHandler } from "./operands.js";
import { Seg } from "./state.js";

type H = XHandler;
// Handlers typed on the full Cpu are stored as the generic handler type.
const h = (f: unknown): H => f as H;

const ALU: Partial<Record<number, number>> = {
  [Op.ADD]: 0,
  [Op.OR]: 1,
  [Op.ADC]: 2,
  [Op.SBB]: 3,
  [Op.AND]: 4,
  [Op.SUB]: 5,
  [Op.XOR]: 6,
  [Op.CMP]: 7,
};
const SHIFT: Partial<Record<number, number>> = {
  [Op.ROL]: 0,
  [Op.ROR]: 1,
  [Op.RCL]: 2,
  [Op.RCR]: 3,
  [Op.SHL]: 4,
  [Op.SHR]: 5,
  [Op.SAL]: 6,
  [Op.SAR]: 7,
};
const JCC = [
  Op.JO,
  Op.JNO,
  Op.JB,
  Op.JAE,
  Op.JE,
  Op.JNE,
  Op.JBE,
  Op.JA,
  Op.JS,
  Op.JNS,
  Op.JP,
  Op.JNP,
  Op.JL,
  Op.JGE,
  Op.JLE,
  Op.JG,
];
const SETCC = [
  Op.SETO,
  Op.SETNO,
  Op.SETB,
  Op.SETAE,
  Op.SETE,
  Op.SETNE,
  Op.SETBE,
  Op.SETA,
  Op.SETS,
  Op.SETNS,
  Op.SETP,
  Op.SETNP,
  Op.SETL,
  Op.SETGE,
  Op.SETLE,
  Op.SETG,
];
const CMOVCC = [
  Op.CMOVO,
  Op.CMOVNO,
  Op.CMOVB,
  Op.CMOVAE,
  Op.CMOVE,
  Op.CMOVNE,
  Op.CMOVBE,
  Op.CMOVA,
  Op.CMOVS,
  Op.CMOVNS,
  Op.CMOVP,
  Op.CMOVNP,
  Op.CMOVL,
  Op.CMOVGE,
  Op.CMOVLE,
  Op.CMOVG,
];
const CC = new Int8Array(OP_COUNT).fill(-1);
const CC_KIND = new Int8Array(OP_COUNT); // 1 jcc, 2 setcc, 3 cmovcc
JCC.forEach((o, k) => {
  CC[o] = k;
  CC_KIND[o] = 1;
});
SETCC.forEach((o, k) => {
  CC[o] = k;
  CC_KIND[o] = 2;
});
CMOVCC.forEach((o, k) => {
  CC[o] = k;
  CC_KIND[o] = 3;
});

const STRING: Partial<Record<number, [number, number]>> = {
  [Op.MOVSB]: [0, 1],
  [Op.MOVSW]: [0, 2],
  [Op.MOVSD]: [0, 4],
  [Op.MOVSQ]: [0, 8],
  [Op.CMPSB]: [1, 1],
  [Op.CMPSW]: [1, 2],
  [Op.CMPSD]: [1, 4],
  [Op.CMPSQ]: [1, 8],
  [Op.STOSB]: [2, 1],
  [Op.STOSW]: [2, 2],
  [Op.STOSD]: [2, 4],
  [Op.STOSQ]: [2, 8],
  [Op.LODSB]: [3, 1],
  [Op.LODSW]: [3, 2],
  [Op.LODSD]: [3, 4],
  [Op.LODSQ]: [3, 8],
  [Op.SCASB]: [4, 1],
  [Op.SCASW]: [4, 2],
  [Op.SCASD]: [4, 4],
  [Op.SCASQ]: [4, 8],
  [Op.INSB]: [5, 1],
  [Op.INSW]: [5, 2],
  [Op.INSD]: [5, 4],
  [Op.OUTSB]: [6, 1],
  [Op.OUTSW]: [6, 2],
  [Op.OUTSD]: [6, 4],
};

/** The +r register of a one-byte opcode (REX.B extends it). */
function plusR(i: BuildInsn): number {
  return (i.opcode & 7) | ((i.rex & 1) << 3);
}

/** Rewrites an accumulator form to an r/m = register-0 form. */
function acc(i: BuildInsn): void {
  i.isMem = false;
  i.rm = 0;
}

/** The operand size of a form whose opcode's low bit clear means a byte operand. */
function sizeOf(i: BuildInsn): number {
  return (i.opcode & 1) === 0 ? 1 : i.opSize;
}

/**
 * Fills the handler fields of one op's instructions once `sz`, `k`, `sg` hold their defaults; returns
 * true when the instruction is "plain". `st` is only read by the entry for failed decodes.
 */
type Prep = (i: BuildInsn, st: number) => boolean;

// One function per op group, called through this table (index: the op; OP_COUNT: a failed decode).
// A call through a table is not inlined, so V8 compiles each group on its own: an op first seen after
// `prepare` was optimised costs at most a re-compile of its own small group, not of every group.
const FAILED = OP_COUNT;
const PREP: Prep[] = new Array<Prep>(OP_COUNT + 1).fill(prepareUnits);
const UD = h(S.ud);

/**
 * Fills `i.fn`, `i.sz`, `i.k`, `i.sg` for a decoded instruction with status `st`. Returns true when
 * the instruction is "plain" (the block may continue after it).
 */
export function prepare(i: BuildInsn, st: number): boolean {
  i.sz = i.opSize;
  i.k = 0;
  i.mmx = false;
  i.inner = null;
  i.sg = i.isMem ? OpCpu.defaultSeg(i) : i.seg !== NO_SEG ? i.seg : Seg.DS;
  return PREP[st === DecodeStatus.Ok ? i.op : FAILED]!(i, st);
}

function on(ops: readonly number[], f: Prep): void {
  for (const o of ops) PREP[o] = f;
}

function prepFailed(i: BuildInsn, st: number): boolean {
  i.fn = st === DecodeStatus.TooLong ? h(S.gp0) : UD;
  // A failed decode writes no sizes (decode.ts): the defaults, not the last instruction's.
  i.opSize = i.sz = 4;
  i.addrSize = 8;
  if (i.length === 0) i.length = 1;
  return false;
}
on([FAILED], prepFailed);

// ---------------------------------------------------------------- ops with a fixed handler
/** The block may continue after the instruction. */
const PLAIN = 1;
/** The opcode's low bit clear means a byte operand. */
const SIZED = 2;
/** The register form is #UD. */
const MEM = 4;
const FIXED_FN: H[] = new Array<H>(OP_COUNT).fill(UD);
const FIXED_K = new Int8Array(OP_COUNT);
const FIXED_FLAGS = new Uint8Array(OP_COUNT);

function prepFixed(i: BuildInsn): boolean {
  const op = i.op;
  const f = FIXED_FLAGS[op]!;
  i.k = FIXED_K[op]!;
  if (f & SIZED) i.sz = sizeOf(i);
  i.fn = f & MEM && !i.isMem ? UD : FIXED_FN[op]!;
  return (f & PLAIN) !== 0;
}

/** Ops whose handler is `fn` whatever the form; `i.k` is `k`, or else the op's index in `ops`. */
function fixed(fn: unknown, flags: number, ops: readonly number[], k?: number): void {
  ops.forEach((o, n) => {
    PREP[o] = prepFixed;
    FIXED_FN[o] = h(fn);
    FIXED_K[o] = k ?? n;
    FIXED_FLAGS[o] = flags;
  });
}

fixed(A.notE, PLAIN | SIZED, [Op.NOT]);
fixed(A.negE, PLAIN | SIZED, [Op.NEG]);
fixed(A.mulE, PLAIN | SIZED, [Op.MUL]);
fixed(A.divE, PLAIN | SIZED, [Op.DIV]);
fixed(A.divE, PLAIN | SIZED, [Op.IDIV], 1);
fixed(A.lea, PLAIN | MEM, [Op.LEA]);
fixed(A.xaddEG, PLAIN | SIZED, [Op.XADD]);
fixed(A.cmpxchg, PLAIN | SIZED, [Op.CMPXCHG]);
fixed(A.cmpxchg8b, PLAIN | MEM, [Op.CMPXCHG8B, Op.CMPXCHG16B]);
fixed(A.bitScan, PLAIN, [Op.BSF, Op.BSR]);
fixed(A.countBits, PLAIN, [Op.POPCNT, Op.LZCNT, Op.TZCNT]);
fixed(A.signExtendAcc, PLAIN, [Op.CBW, Op.CWDE, Op.CDQE], 0);
fixed(A.signExtendAcc, PLAIN, [Op.CWD, Op.CDQ, Op.CQO], 1);
fixed(A.flagOp, PLAIN, [Op.CLC, Op.STC, Op.CMC, Op.CLD, Op.STD]);
fixed(A.lahf, PLAIN, [Op.LAHF]);
fixed(A.sahf, PLAIN, [Op.SAHF]);
fixed(A.salc, PLAIN, [Op.SALC]);
const NOPS = [Op.NOP, Op.PREFETCHNTA, Op.PREFETCHT0, Op.PREFETCHT1, Op.PREFETCHT2, Op.PREFETCHW];
fixed(S.nop, PLAIN, [...NOPS, Op.LFENCE, Op.MFENCE, Op.SFENCE, Op.CLFLUSH, Op.CLFLUSHOPT, Op.CLWB], 0);
// ---------------------------------------------------------------- stack
fixed(Fl.pusha, PLAIN, [Op.PUSHA, Op.PUSHAD], 0);
fixed(Fl.popa, PLAIN, [Op.POPA, Op.POPAD], 0);
/** ENTER: `k` is the nesting level, mod 32 (SDM Vol. 2 ENTER). */
function prepEnter(i: BuildInsn): boolean {
  i.k = i.imm2 & 31;
  i.fn = Fl.enter;
  return true;
}
on([Op.ENTER], prepEnter);
fixed(Fl.leave, PLAIN, [Op.LEAVE]);
fixed(S.pushf, PLAIN, [Op.PUSHF, Op.PUSHFD, Op.PUSHFQ], 0);
fixed(S.popf, 0, [Op.POPF, Op.POPFD, Op.POPFQ], 0);
// ---------------------------------------------------------------- control flow
fixed(Fl.loop, 0, [Op.LOOP, Op.LOOPE, Op.LOOPNE]);
fixed(Fl.jrcxz, 0, [Op.JCXZ, Op.JECXZ, Op.JRCXZ], 0);
fixed(S.intN, 0, [Op.INT, Op.INT3, Op.INTO, Op.INT1]);
fixed(Fa.iret, 0, [Op.IRET, Op.IRETD, Op.IRETQ], 0);
// ---------------------------------------------------------------- BCD / legacy
fixed(Fl.daaDas, PLAIN, [Op.DAA, Op.DAS]);
fixed(Fl.aaaAas, PLAIN, [Op.AAA, Op.AAS]);
fixed(Fl.aamAad, PLAIN, [Op.AAM, Op.AAD]);
fixed(Fl.bound, PLAIN, [Op.BOUND]);
// ---------------------------------------------------------------- segments and far transfers
fixed(Fa.loadFarPtr, 0, [Op.LDS], Seg.DS);
fixed(Fa.loadFarPtr, 0, [Op.LES], Seg.ES);
fixed(Fa.loadFarPtr, 0, [Op.LFS], Seg.FS);
fixed(Fa.loadFarPtr, 0, [Op.LGS], Seg.GS);
fixed(Fa.loadFarPtr, 0, [Op.LSS], Seg.SS);
fixed(Fa.syscall, 0, [Op.SYSCALL]);
fixed(Fa.sysret, 0, [Op.SYSRET, Op.SYSRETQ], 0);
fixed(Fa.sysenter, 0, [Op.SYSENTER]);
fixed(Fa.sysexit, 0, [Op.SYSEXIT, Op.SYSEXITQ], 0);
// ---------------------------------------------------------------- system
fixed(S.hlt, 0, [Op.HLT]);
fixed(S.cliSti, 0, [Op.CLI, Op.STI]);
fixed(S.cpuid, 0, [Op.CPUID]);
fixed(S.rdtsc, 0, [Op.RDTSC, Op.RDTSCP]);
fixed(S.rdmsr, 0, [Op.RDMSR]);
fixed(S.wrmsr, 0, [Op.WRMSR]);
fixed(S.rdpmc, 0, [Op.RDPMC]);
fixed(S.clts, 0, [Op.CLTS]);
fixed(S.lmsw, 0, [Op.LMSW]);
fixed(S.smsw, PLAIN, [Op.SMSW]);
fixed(S.invlpg, MEM, [Op.INVLPG]);
fixed(S.invpcid, 0, [Op.INVPCID]);
fixed(S.wbinvd, 0, [Op.WBINVD, Op.INVD]);
fixed(S.lgdt, MEM, [Op.LGDT, Op.LIDT]);
fixed(S.sgdt, MEM, [Op.SGDT, Op.SIDT]);
fixed(S.sldt, 0, [Op.SLDT, Op.STR]);
fixed(S.lldt, 0, [Op.LLDT, Op.LTR]);
fixed(S.lar, 0, [Op.LAR, Op.LSL, Op.VERR, Op.VERW]);
fixed(S.arpl, 0, [Op.ARPL]);
fixed(S.swapgs, 0, [Op.SWAPGS]);
fixed(S.fsgsbase, 0, [Op.RDFSBASE, Op.RDGSBASE, Op.WRFSBASE, Op.WRGSBASE]);
fixed(S.rdrand, 0, [Op.RDRAND, Op.RDSEED]);
fixed(S.rdpid, 0, [Op.RDPID]);
fixed(S.xgetbv, 0, [Op.XGETBV]);
fixed(S.stac, 0, [Op.CLAC, Op.STAC]);
fixed(S.rdpkru, 0, [Op.RDPKRU]);
fixed(S.wrpkru, 0, [Op.WRPKRU]);
fixed(S.xsetbv, 0, [Op.XSETBV]);
fixed(S.monitor, 0, [Op.MONITOR, Op.MWAIT]);
fixed(S.pause, 0, [Op.PAUSE]);
const VMX = [Op.VMCALL, Op.VMCLEAR, Op.VMFUNC, Op.VMLAUNCH, Op.VMPTRLD, Op.VMPTRST, Op.VMREAD];
fixed(S.vmxInsn, 0, [...VMX, Op.VMRESUME, Op.VMWRITE, Op.VMXOFF, Op.VMXON, Op.INVEPT, Op.INVVPID], 0);

// ---------------------------------------------------------------- ops whose form picks the handler
function prepAlu(i: BuildInsn): boolean {
  const alu = ALU[i.op]!;
  const b = i.opcode;
  i.k = alu;
  if (i.map === 0 && b < 0x40) {
    const f = b & 7;
    i.sz = f === 4 || ((f & 1) === 0 && f < 4) ? 1 : i.opSize;
    if (f >= 4) {
      acc(i);
      i.fn = A.aluEI;
    } else if (f <= 1) {
      i.fn = !i.isMem && i.sz === 4 && alu !== 2 && alu !== 3 ? A.aluRR32 : A.aluEG;
    } else i.fn = A.aluGE;
  } else {
    i.sz = b === 0x81 || b === 0x83 ? i.opSize : 1;
    i.fn = A.aluEI;
  }
  return true;
}
on(Object.keys(ALU).map(Number), prepAlu);

function prepShift(i: BuildInsn): boolean {
  const b = i.opcode;
  i.sz = sizeOf(i);
  const mode = b === 0xc0 || b === 0xc1 ? 0 : b === 0xd2 || b === 0xd3 ? 1 : 2;
  i.k = SHIFT[i.op]! | (mode << 3);
  i.fn = A.shiftE;
  return true;
}
on(Object.keys(SHIFT).map(Number), prepShift);

function prepCc(i: BuildInsn): boolean {
  const op = i.op;
  const cc = CC[op]!;
  i.k = cc;
  const kind = CC_KIND[op];
  if (kind === 1) {
    i.fn = cc === 4 || cc === 5 ? Fl.jccZ : Fl.jcc;
    return false;
  }
  i.fn = kind === 2 ? A.setcc : A.cmovcc;
  return true;
}
on([...JCC, ...SETCC, ...CMOVCC], prepCc);

function prepString(i: BuildInsn): boolean {
  if (i.map !== 0) return prepareUnits(i); // MOVSD/CMPSD in the 0F map are SSE
  const str = STRING[i.op]!;
  i.k = str[0];
  i.sz = str[1];
  i.sg = i.seg !== NO_SEG ? i.seg : Seg.DS;
  i.fn = h(stringOp);
  return (i.prefixes & (Prefix.REP | Prefix.REPNE)) === 0 && str[0] < 5;
}
on(Object.keys(STRING).map(Number), prepString);

function prepTest(i: BuildInsn): boolean {
  const b = i.opcode;
  i.sz = sizeOf(i);
  if (b === 0xa8 || b === 0xa9) acc(i);
  i.fn = b === 0x84 || b === 0x85 ? A.testEG : A.testEI;
  return true;
}
on([Op.TEST], prepTest);

function prepIncDec(i: BuildInsn): boolean {
  const b = i.opcode;
  i.k = i.op === Op.DEC ? 1 : 0;
  if (i.map === 0 && b >= 0x40 && b <= 0x4f) {
    i.isMem = false;
    i.rm = b & 7;
  } else i.sz = sizeOf(i);
  i.fn = A.incDecE;
  return true;
}
on([Op.INC, Op.DEC], prepIncDec);

function prepImul(i: BuildInsn): boolean {
  const b = i.opcode;
  if (i.map === 0 && (b === 0xf6 || b === 0xf7)) {
    i.sz = sizeOf(i);
    i.k = 1;
    i.fn = A.mulE;
  } else {
    i.k = i.map === 0 ? 1 : 0;
    i.fn = A.imulGE;
  }
  return true;
}
on([Op.IMUL], prepImul);

on([Op.MOV], prepareMov);

function prepMovExt(i: BuildInsn): boolean {
  i.k = (i.op === Op.MOVSX ? 1 : 0) | (((i.opcode & 1) === 0 ? 1 : 2) << 2);
  i.fn = A.movExt;
  return true;
}
on([Op.MOVZX, Op.MOVSX], prepMovExt);

function prepMovsxd(i: BuildInsn): boolean {
  i.k = 2 | ((i.opSize === 8 ? 4 : i.opSize) << 2);
  i.fn = A.movExt;
  return true;
}
on([Op.MOVSXD], prepMovsxd);

function prepXchg(i: BuildInsn): boolean {
  const b = i.opcode;
  if (i.map === 0 && b >= 0x90 && b <= 0x97) {
    i.isMem = false;
    i.rm = plusR(i);
    i.reg = 0;
  } else i.sz = sizeOf(i);
  i.fn = A.xchgEG;
  return true;
}
on([Op.XCHG], prepXchg);

function prepBswap(i: BuildInsn): boolean {
  i.rm = plusR(i);
  i.fn = A.bswap;
  return true;
}
on([Op.BSWAP], prepBswap);

function prepMovbe(i: BuildInsn): boolean {
  i.k = (i.opcode & 1) === 0 ? 0 : 1;
  i.fn = A.movbe;
  return true;
}
on([Op.MOVBE], prepMovbe);

function prepShiftDouble(i: BuildInsn): boolean {
  i.k = (i.op === Op.SHRD ? 1 : 0) | ((i.opcode & 1) === 1 ? 2 : 0);
  i.fn = A.shiftDouble;
  return true;
}
on([Op.SHLD, Op.SHRD], prepShiftDouble);

const BT: readonly number[] = [Op.BT, Op.BTS, Op.BTR, Op.BTC];
function prepBitTest(i: BuildInsn): boolean {
  i.k = BT.indexOf(i.op) | (i.opcode === 0xba ? 4 : 0);
  i.fn = A.bitTest;
  return true;
}
on(BT, prepBitTest);

// ---------------------------------------------------------------- stack
function prepPush(i: BuildInsn): boolean {
  const b = i.opcode;
  const m = i.map;
  if (m === 0 && b >= 0x50 && b <= 0x57) {
    i.rm = plusR(i);
    i.fn = Fl.pushR;
  } else if (b === 0x68 || b === 0x6a) i.fn = Fl.pushI;
  else if (m === 0 && b === 0xff) i.fn = Fl.pushE;
  else {
    i.k = segOfPushPop(i);
    i.fn = Fl.pushSeg;
  }
  return true;
}
on([Op.PUSH], prepPush);

function prepPop(i: BuildInsn): boolean {
  const b = i.opcode;
  const m = i.map;
  if (m === 0 && b >= 0x58 && b <= 0x5f) {
    i.rm = plusR(i);
    i.fn = Fl.popR;
    return true;
  }
  if (m === 0 && b === 0x8f) {
    i.fn = Fl.popE;
    return true;
  }
  i.k = segOfPushPop(i);
  i.fn = Fl.popSeg;
  return i.k !== Seg.SS;
}
on([Op.POP], prepPop);

// ---------------------------------------------------------------- control flow
function prepJmp(i: BuildInsn): boolean {
  const b = i.opcode;
  if (i.map === 0 && (b === 0xe9 || b === 0xeb)) i.fn = Fl.jmpRel;
  else if (b === 0xea || (b === 0xff && i.reg === 5)) farForm(i, Fa.jmpFar);
  else i.fn = Fl.jmpE;
  return false;
}
on([Op.JMP], prepJmp);

function prepCall(i: BuildInsn): boolean {
  const b = i.opcode;
  if (b === 0xe8) i.fn = Fl.callRel;
  else if (b === 0x9a || (b === 0xff && i.reg === 3)) farForm(i, Fa.callFar);
  else i.fn = Fl.callE;
  return false;
}
on([Op.CALL], prepCall);

/** JMP/CALL far: `k` is the selector of a ptr16:16/32 operand (EA, 9A), -1 for m16:16/32/64 (FF /5, /3). */
function farForm(i: BuildInsn, fn: unknown): void {
  i.k = i.hasModrm ? -1 : i.imm2 & 0xffff;
  i.fn = h(fn);
}

function prepRet(i: BuildInsn): boolean {
  i.k = i.opcode === 0xc2 ? 1 : 0;
  i.fn = Fl.retNear;
  return false;
}
on([Op.RET], prepRet);

function prepRetf(i: BuildInsn): boolean {
  i.k = i.opcode === 0xca ? 1 : 0;
  i.fn = h(Fa.retFar);
  return false;
}
on([Op.RETF], prepRetf);

function prepXlat(i: BuildInsn): boolean {
  i.sg = i.seg !== NO_SEG ? i.seg : Seg.DS;
  i.fn = Fl.xlat;
  return true;
}
on([Op.XLATB], prepXlat);

// ---------------------------------------------------------------- system
function prepInOut(i: BuildInsn): boolean {
  i.k = i.op === Op.OUT ? 1 : 0;
  i.sz = (i.opcode & 1) === 0 ? 1 : i.opSize === 2 ? 2 : 4;
  i.fn = h(S.inOut);
  return false;
}
on([Op.IN, Op.OUT], prepInOut);

function segOfPushPop(i: BuildInsn): number {
  if (i.map === 1) return i.opcode === 0xa0 || i.opcode === 0xa1 ? Seg.FS : Seg.GS;
  return (i.opcode >> 3) & 3; // 06/07 ES, 0E CS, 16/17 SS, 1E/1F DS
}

function prepareMov(i: BuildInsn): boolean {
  const b = i.opcode;
  if (i.map === 1) {
    // 0F 20-23: MOV to/from CR/DR (ModRM.mod is ignored: always registers).
    i.isMem = false;
    i.k = b & 2 ? 1 : 0;
    i.fn = b & 1 ? h(S.movDr) : h(S.movCr);
    return false;
  }
  switch (b) {
    case 0x88:
    case 0x89:
      i.sz = sizeOf(i);
      i.fn = A.movEG;
      return true;
    case 0x8a:
    case 0x8b:
      i.sz = sizeOf(i);
      i.fn = !i.isMem && i.sz === 4 ? A.movRR32 : !i.isMem && i.sz === 8 ? A.movRR64 : A.movGE;
      return true;
    case 0x8c:
      i.k = i.reg & 7;
      i.fn = h(Fa.movFromSeg);
      return true;
    case 0x8e:
      i.k = i.reg & 7;
      i.fn = h(Fa.movToSeg);
      return false;
    case 0xc6:
    case 0xc7:
      i.sz = sizeOf(i);
      i.fn = A.movEI;
      return true;
    case 0xa0:
    case 0xa1:
    case 0xa2:
    case 0xa3:
      i.sz = sizeOf(i);
      i.k = b >= 0xa2 ? 1 : 0;
      i.fn = A.movMoffs;
      return true;
    default:
      // B0-B7: MOV r8, imm8; B8-BF: MOV r, imm.
      i.isMem = false;
      i.rm = plusR(i);
      i.sz = b < 0xb8 ? 1 : i.opSize;
      i.fn = A.movEI;
      return true;
  }
}
