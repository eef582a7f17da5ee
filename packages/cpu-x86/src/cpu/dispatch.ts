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
import { OpCpu, type XInsn } from "./operands.js";
import { Seg } from "./state.js";

type H = XInsn["fn"];
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
function plusR(i: XInsn): number {
  return (i.opcode & 7) | ((i.rex & 1) << 3);
}

/** Rewrites an accumulator form to an r/m = register-0 form. */
function acc(i: XInsn): void {
  i.isMem = false;
  i.rm = 0;
}

/**
 * Fills `i.fn`, `i.sz`, `i.k`, `i.sg` for a decoded instruction with status `st`. Returns true when
 * the instruction is "plain" (the block may continue after it).
 */
export function prepare(i: XInsn, st: number): boolean {
  i.sz = i.opSize;
  i.k = 0;
  i.sg = i.isMem ? OpCpu.defaultSeg(i) : i.seg !== NO_SEG ? i.seg : Seg.DS;
  if (st !== DecodeStatus.Ok) {
    i.fn = st === DecodeStatus.TooLong ? h(S.gp0) : h(S.ud);
    if (i.length === 0) i.length = 1;
    return false;
  }
  const op = i.op;
  const b = i.opcode;
  const m = i.map;
  const byteForm = (b & 1) === 0;

  const alu = ALU[op];
  if (alu !== undefined) {
    i.k = alu;
    if (m === 0 && b < 0x40) {
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
  const sh = SHIFT[op];
  if (sh !== undefined) {
    i.sz = byteForm ? 1 : i.opSize;
    const mode = b === 0xc0 || b === 0xc1 ? 0 : b === 0xd2 || b === 0xd3 ? 1 : 2;
    i.k = sh | (mode << 3);
    i.fn = A.shiftE;
    return true;
  }
  const cc = CC[op]!;
  if (cc >= 0) {
    i.k = cc;
    const kind = CC_KIND[op];
    if (kind === 1) {
      i.fn = cc === 4 || cc === 5 ? Fl.jccZ : Fl.jcc;
      return false;
    }
    i.fn = kind === 2 ? A.setcc : A.cmovcc;
    return true;
  }
  const str = m === 0 ? STRING[op] : undefined; // MOVSD/CMPSD in the 0F map are SSE
  if (str !== undefined) {
    i.k = str[0];
    i.sz = str[1];
    i.sg = i.seg !== NO_SEG ? i.seg : Seg.DS;
    i.fn = h(stringOp);
    return (i.prefixes & (Prefix.REP | Prefix.REPNE)) === 0 && str[0] < 5;
  }

  switch (op) {
    case Op.TEST:
      i.sz = byteForm ? 1 : i.opSize;
      if (b === 0xa8 || b === 0xa9) acc(i);
      i.fn = b === 0x84 || b === 0x85 ? A.testEG : A.testEI;
      return true;
    case Op.INC:
    case Op.DEC:
      i.k = op === Op.DEC ? 1 : 0;
      if (m === 0 && b >= 0x40 && b <= 0x4f) {
        i.isMem = false;
        i.rm = b & 7;
        i.sz = i.opSize;
      } else i.sz = byteForm ? 1 : i.opSize;
      i.fn = A.incDecE;
      return true;
    case Op.NOT:
      i.sz = byteForm ? 1 : i.opSize;
      i.fn = A.notE;
      return true;
    case Op.NEG:
      i.sz = byteForm ? 1 : i.opSize;
      i.fn = A.negE;
      return true;
    case Op.MUL:
    case Op.DIV:
      i.sz = byteForm ? 1 : i.opSize;
      i.fn = op === Op.MUL ? A.mulE : A.divE;
      return true;
    case Op.IMUL:
      if (m === 0 && (b === 0xf6 || b === 0xf7)) {
        i.sz = byteForm ? 1 : i.opSize;
        i.k = 1;
        i.fn = A.mulE;
      } else {
        i.k = m === 0 ? 1 : 0;
        i.fn = A.imulGE;
      }
      return true;
    case Op.IDIV:
      i.sz = byteForm ? 1 : i.opSize;
      i.k = 1;
      i.fn = A.divE;
      return true;
    case Op.MOV:
      return prepareMov(i);
    case Op.MOVZX:
    case Op.MOVSX:
      i.k = (op === Op.MOVSX ? 1 : 0) | ((byteForm ? 1 : 2) << 2);
      i.fn = A.movExt;
      return true;
    case Op.MOVSXD:
      i.k = 2 | ((i.opSize === 8 ? 4 : i.opSize) << 2);
      i.fn = A.movExt;
      return true;
    case Op.LEA:
      if (!i.isMem) i.fn = h(S.ud);
      else i.fn = A.lea;
      return true;
    case Op.XCHG:
      if (m === 0 && b >= 0x90 && b <= 0x97) {
        i.isMem = false;
        i.rm = plusR(i);
        i.reg = 0;
        i.sz = i.opSize;
      } else i.sz = byteForm ? 1 : i.opSize;
      i.fn = A.xchgEG;
      return true;
    case Op.XADD:
      i.sz = byteForm ? 1 : i.opSize;
      i.fn = A.xaddEG;
      return true;
    case Op.CMPXCHG:
      i.sz = byteForm ? 1 : i.opSize;
      i.fn = A.cmpxchg;
      return true;
    case Op.CMPXCHG8B:
    case Op.CMPXCHG16B:
      i.k = op === Op.CMPXCHG16B ? 1 : 0;
      i.fn = i.isMem ? A.cmpxchg8b : h(S.ud);
      return true;
    case Op.BSWAP:
      i.rm = plusR(i);
      i.fn = A.bswap;
      return true;
    case Op.MOVBE:
      i.k = (b & 1) === 0 ? 0 : 1;
      i.fn = A.movbe;
      return true;
    case Op.SHLD:
    case Op.SHRD:
      i.k = (op === Op.SHRD ? 1 : 0) | ((b & 1) === 1 ? 2 : 0);
      i.fn = A.shiftDouble;
      return true;
    case Op.BT:
    case Op.BTS:
    case Op.BTR:
    case Op.BTC:
      i.k = (op === Op.BT ? 0 : op === Op.BTS ? 1 : op === Op.BTR ? 2 : 3) | (b === 0xba ? 4 : 0);
      i.fn = A.bitTest;
      return true;
    case Op.BSF:
    case Op.BSR:
      i.k = op === Op.BSR ? 1 : 0;
      i.fn = A.bitScan;
      return true;
    case Op.POPCNT:
    case Op.LZCNT:
    case Op.TZCNT:
      i.k = op === Op.POPCNT ? 0 : op === Op.LZCNT ? 1 : 2;
      i.fn = A.countBits;
      return true;
    case Op.CBW:
    case Op.CWDE:
    case Op.CDQE:
      i.fn = A.signExtendAcc;
      return true;
    case Op.CWD:
    case Op.CDQ:
    case Op.CQO:
      i.k = 1;
      i.fn = A.signExtendAcc;
      return true;
    case Op.CLC:
    case Op.STC:
    case Op.CMC:
    case Op.CLD:
    case Op.STD:
      i.k = op === Op.CLC ? 0 : op === Op.STC ? 1 : op === Op.CMC ? 2 : op === Op.CLD ? 3 : 4;
      i.fn = A.flagOp;
      return true;
    case Op.LAHF:
      i.fn = A.lahf;
      return true;
    case Op.SAHF:
      i.fn = A.sahf;
      return true;
    case Op.SALC:
      i.fn = A.salc;
      return true;
    case Op.NOP:
    case Op.PREFETCHNTA:
    case Op.PREFETCHT0:
    case Op.PREFETCHT1:
    case Op.PREFETCHT2:
    case Op.PREFETCHW:
    case Op.LFENCE:
    case Op.MFENCE:
    case Op.SFENCE:
    case Op.CLFLUSH:
    case Op.CLFLUSHOPT:
    case Op.CLWB:
      i.fn = h(S.nop);
      return true;
    // ---------------------------------------------------------------- stack
    case Op.PUSH:
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
    case Op.POP:
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
    case Op.PUSHA:
    case Op.PUSHAD:
      i.fn = Fl.pusha;
      return true;
    case Op.POPA:
    case Op.POPAD:
      i.fn = Fl.popa;
      return true;
    case Op.ENTER:
      i.fn = Fl.enter;
      return true;
    case Op.LEAVE:
      i.fn = Fl.leave;
      return true;
    case Op.PUSHF:
    case Op.PUSHFD:
    case Op.PUSHFQ:
      i.fn = h(S.pushf);
      return true;
    case Op.POPF:
    case Op.POPFD:
    case Op.POPFQ:
      i.fn = h(S.popf);
      return false;
    // ---------------------------------------------------------------- control flow
    case Op.JMP:
      if (m === 0 && (b === 0xe9 || b === 0xeb)) i.fn = Fl.jmpRel;
      else if (b === 0xea || (b === 0xff && i.reg === 5)) i.fn = h(Fa.jmpFar);
      else i.fn = Fl.jmpE;
      return false;
    case Op.CALL:
      if (b === 0xe8) i.fn = Fl.callRel;
      else if (b === 0x9a || (b === 0xff && i.reg === 3)) i.fn = h(Fa.callFar);
      else i.fn = Fl.callE;
      return false;
    case Op.RET:
      i.k = b === 0xc2 ? 1 : 0;
      i.fn = Fl.retNear;
      return false;
    case Op.RETF:
      i.k = b === 0xca ? 1 : 0;
      i.fn = h(Fa.retFar);
      return false;
    case Op.LOOP:
    case Op.LOOPE:
    case Op.LOOPNE:
      i.k = op === Op.LOOP ? 0 : op === Op.LOOPE ? 1 : 2;
      i.fn = Fl.loop;
      return false;
    case Op.JCXZ:
    case Op.JECXZ:
    case Op.JRCXZ:
      i.fn = Fl.jrcxz;
      return false;
    case Op.INT:
    case Op.INT3:
    case Op.INTO:
    case Op.INT1:
      i.k = op === Op.INT ? 0 : op === Op.INT3 ? 1 : op === Op.INTO ? 2 : 3;
      i.fn = h(S.intN);
      return false;
    case Op.IRET:
    case Op.IRETD:
    case Op.IRETQ:
      i.fn = h(Fa.iret);
      return false;
    // ---------------------------------------------------------------- BCD / legacy
    case Op.DAA:
    case Op.DAS:
      i.k = op === Op.DAS ? 1 : 0;
      i.fn = Fl.daaDas;
      return true;
    case Op.AAA:
    case Op.AAS:
      i.k = op === Op.AAS ? 1 : 0;
      i.fn = Fl.aaaAas;
      return true;
    case Op.AAM:
    case Op.AAD:
      i.k = op === Op.AAD ? 1 : 0;
      i.fn = Fl.aamAad;
      return true;
    case Op.XLATB:
      i.sg = i.seg !== NO_SEG ? i.seg : Seg.DS;
      i.fn = Fl.xlat;
      return true;
    case Op.BOUND:
      i.fn = Fl.bound;
      return true;
    // ---------------------------------------------------------------- segments and far transfers
    case Op.LDS:
    case Op.LES:
    case Op.LFS:
    case Op.LGS:
    case Op.LSS:
      i.k =
        op === Op.LDS
          ? Seg.DS
          : op === Op.LES
            ? Seg.ES
            : op === Op.LFS
              ? Seg.FS
              : op === Op.LGS
                ? Seg.GS
                : Seg.SS;
      i.fn = h(Fa.loadFarPtr);
      return false;
    case Op.SYSCALL:
      i.fn = h(Fa.syscall);
      return false;
    case Op.SYSRET:
    case Op.SYSRETQ:
      i.fn = h(Fa.sysret);
      return false;
    case Op.SYSENTER:
      i.fn = h(Fa.sysenter);
      return false;
    case Op.SYSEXIT:
    case Op.SYSEXITQ:
      i.fn = h(Fa.sysexit);
      return false;
    // ---------------------------------------------------------------- system
    case Op.HLT:
      i.fn = h(S.hlt);
      return false;
    case Op.CLI:
    case Op.STI:
      i.k = op === Op.STI ? 1 : 0;
      i.fn = h(S.cliSti);
      return false;
    case Op.IN:
    case Op.OUT:
      i.k = op === Op.OUT ? 1 : 0;
      i.sz = byteForm ? 1 : i.opSize === 2 ? 2 : 4;
      i.fn = h(S.inOut);
      return false;
    case Op.CPUID:
      i.fn = h(S.cpuid);
      return false;
    case Op.RDTSC:
    case Op.RDTSCP:
      i.k = op === Op.RDTSCP ? 1 : 0;
      i.fn = h(S.rdtsc);
      return false;
    case Op.RDMSR:
      i.fn = h(S.rdmsr);
      return false;
    case Op.WRMSR:
      i.fn = h(S.wrmsr);
      return false;
    case Op.RDPMC:
      i.fn = h(S.rdpmc);
      return false;
    case Op.CLTS:
      i.fn = h(S.clts);
      return false;
    case Op.LMSW:
      i.fn = h(S.lmsw);
      return false;
    case Op.SMSW:
      i.fn = h(S.smsw);
      return true;
    case Op.INVLPG:
      i.fn = i.isMem ? h(S.invlpg) : h(S.ud);
      return false;
    case Op.INVPCID:
      i.fn = h(S.invpcid);
      return false;
    case Op.WBINVD:
    case Op.INVD:
      i.k = op === Op.INVD ? 1 : 0;
      i.fn = h(S.wbinvd);
      return false;
    case Op.LGDT:
    case Op.LIDT:
      i.k = op === Op.LIDT ? 1 : 0;
      i.fn = i.isMem ? h(S.lgdt) : h(S.ud);
      return false;
    case Op.SGDT:
    case Op.SIDT:
      i.k = op === Op.SIDT ? 1 : 0;
      i.fn = i.isMem ? h(S.sgdt) : h(S.ud);
      return false;
    case Op.SLDT:
    case Op.STR:
      i.k = op === Op.STR ? 1 : 0;
      i.fn = h(S.sldt);
      return false;
    case Op.LLDT:
    case Op.LTR:
      i.k = op === Op.LTR ? 1 : 0;
      i.fn = h(S.lldt);
      return false;
    case Op.LAR:
    case Op.LSL:
    case Op.VERR:
    case Op.VERW:
      i.k = op === Op.LAR ? 0 : op === Op.LSL ? 1 : op === Op.VERR ? 2 : 3;
      i.fn = h(S.lar);
      return false;
    case Op.ARPL:
      i.fn = h(S.arpl);
      return false;
    case Op.SWAPGS:
      i.fn = h(S.swapgs);
      return false;
    case Op.RDFSBASE:
    case Op.RDGSBASE:
    case Op.WRFSBASE:
    case Op.WRGSBASE:
      i.k = op === Op.RDFSBASE ? 0 : op === Op.RDGSBASE ? 1 : op === Op.WRFSBASE ? 2 : 3;
      i.fn = h(S.fsgsbase);
      return false;
    case Op.RDRAND:
    case Op.RDSEED:
      i.k = op === Op.RDSEED ? 1 : 0;
      i.fn = h(S.rdrand);
      return false;
    case Op.RDPID:
      i.fn = h(S.rdpid);
      return false;
    case Op.XGETBV:
      i.fn = h(S.xgetbv);
      return false;
    case Op.CLAC:
    case Op.STAC:
      i.k = op === Op.STAC ? 1 : 0;
      i.fn = h(S.stac);
      return false;
    case Op.RDPKRU:
      i.fn = h(S.rdpkru);
      return false;
    case Op.WRPKRU:
      i.fn = h(S.wrpkru);
      return false;
    case Op.XSETBV:
      i.fn = h(S.xsetbv);
      return false;
    case Op.MONITOR:
    case Op.MWAIT:
      i.k = op === Op.MWAIT ? 1 : 0;
      i.fn = h(S.monitor);
      return false;
    case Op.PAUSE:
      i.fn = h(S.pause);
      return false;
    case Op.VMCALL:
    case Op.VMCLEAR:
    case Op.VMFUNC:
    case Op.VMLAUNCH:
    case Op.VMPTRLD:
    case Op.VMPTRST:
    case Op.VMREAD:
    case Op.VMRESUME:
    case Op.VMWRITE:
    case Op.VMXOFF:
    case Op.VMXON:
    case Op.INVEPT:
    case Op.INVVPID:
      i.fn = h(S.vmxInsn);
      return false;
    default:
      return prepareUnits(i);
  }
}

function segOfPushPop(i: XInsn): number {
  if (i.map === 1) return i.opcode === 0xa0 || i.opcode === 0xa1 ? Seg.FS : Seg.GS;
  return (i.opcode >> 3) & 3; // 06/07 ES, 0E CS, 16/17 SS, 1E/1F DS
}

function prepareMov(i: XInsn): boolean {
  const b = i.opcode;
  if (i.map === 1) {
    // 0F 20-23: MOV to/from CR/DR (ModRM.mod is ignored: always registers).
    i.isMem = false;
    i.k = b & 2 ? 1 : 0;
    i.fn = b & 1 ? h(S.movDr) : h(S.movCr);
    return false;
  }
  const byteForm = (b & 1) === 0;
  switch (b) {
    case 0x88:
    case 0x89:
      i.sz = byteForm ? 1 : i.opSize;
      i.fn = A.movEG;
      return true;
    case 0x8a:
    case 0x8b:
      i.sz = byteForm ? 1 : i.opSize;
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
      i.sz = byteForm ? 1 : i.opSize;
      i.fn = A.movEI;
      return true;
    case 0xa0:
    case 0xa1:
    case 0xa2:
    case 0xa3:
      i.sz = byteForm ? 1 : i.opSize;
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
