/**
 * Snippet generator. The candidate forms come from the decoder's tables: every (map, opcode, ModRM.reg)
 * slot of the one-byte and 0F maps is decoded once with a register and a memory ModRM, and the forms
 * whose op is a user-mode integer instruction become templates. Each snippet takes the next template
 * (round robin, so every form is covered) with random prefixes (none, 66, REX.W, REX.R/B), register or
 * memory operands, random immediates and register values with edge cases, and memory operands based
 * on a register pointing into the 1 KiB data window.
 */
import { decode } from "../decoder/decode.js";
import { DecodeStatus, Insn } from "../decoder/insn.js";
import { X87_HANDLERS } from "../fpu/dispatch.js";
import { Op } from "../generated/ops.js";
import { SIMD_HANDLERS } from "../simd/dispatch.js";
import { CODE_BASE, CODE_MAX, type DiffMode, type SnippetIn, WIN, WIN_BASE, WIN_OFF } from "./records.js";

/** Integer instructions that run the same at CPL 3 on the host and here. */
const ALLOWED = new Set<number>([
  Op.ADD,
  Op.OR,
  Op.ADC,
  Op.SBB,
  Op.AND,
  Op.SUB,
  Op.XOR,
  Op.CMP,
  Op.TEST,
  Op.INC,
  Op.DEC,
  Op.NOT,
  Op.NEG,
  Op.MUL,
  Op.IMUL,
  Op.DIV,
  Op.IDIV,
  Op.MOV,
  Op.MOVZX,
  Op.MOVSX,
  Op.MOVSXD,
  Op.LEA,
  Op.XCHG,
  Op.XADD,
  Op.CMPXCHG,
  Op.CMPXCHG8B,
  Op.CMPXCHG16B,
  Op.BSWAP,
  Op.MOVBE,
  Op.ROL,
  Op.ROR,
  Op.RCL,
  Op.RCR,
  Op.SHL,
  Op.SHR,
  Op.SAL,
  Op.SAR,
  Op.SHLD,
  Op.SHRD,
  Op.BT,
  Op.BTS,
  Op.BTR,
  Op.BTC,
  Op.BSF,
  Op.BSR,
  Op.POPCNT,
  Op.LZCNT,
  Op.CBW,
  Op.CWDE,
  Op.CDQE,
  Op.CWD,
  Op.CDQ,
  Op.CQO,
  Op.CLC,
  Op.STC,
  Op.CMC,
  Op.CLD,
  Op.STD,
  Op.LAHF,
  Op.SAHF,
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
  Op.JMP,
  Op.CALL,
  Op.RET,
  Op.LOOP,
  Op.LOOPE,
  Op.LOOPNE,
  Op.JRCXZ,
  Op.PUSH,
  Op.POP,
  Op.PUSHF,
  Op.PUSHFQ,
  Op.ENTER,
  Op.LEAVE,
  Op.MOVSB,
  Op.MOVSW,
  Op.MOVSD,
  Op.MOVSQ,
  Op.CMPSB,
  Op.CMPSW,
  Op.CMPSD,
  Op.CMPSQ,
  Op.STOSB,
  Op.STOSW,
  Op.STOSD,
  Op.STOSQ,
  Op.LODSB,
  Op.LODSW,
  Op.LODSD,
  Op.LODSQ,
  Op.SCASB,
  Op.SCASW,
  Op.SCASD,
  Op.SCASQ,
  Op.NOP,
  Op.XLATB,
  Op.UD2,
  Op.INT3,
]);

/** Legacy-only instructions compared in 32-bit compatibility mode and 16-bit code. */
const LEGACY32 = new Set<number>([
  Op.DAA,
  Op.DAS,
  Op.AAA,
  Op.AAS,
  Op.AAM,
  Op.AAD,
  Op.PUSHA,
  Op.PUSHAD,
  Op.POPA,
  Op.POPAD,
  Op.SALC,
  Op.JCXZ,
  Op.JECXZ,
  Op.PUSHFD,
  Op.INTO,
  Op.BOUND,
]);

/** Ops whose behaviour depends on rCX as a small count. */
const COUNTED = new Set<number>([Op.LOOP, Op.LOOPE, Op.LOOPNE, Op.JRCXZ]);
const STRINGS = new Set<number>([
  Op.MOVSB,
  Op.MOVSW,
  Op.MOVSD,
  Op.MOVSQ,
  Op.CMPSB,
  Op.CMPSW,
  Op.CMPSD,
  Op.CMPSQ,
  Op.STOSB,
  Op.STOSW,
  Op.STOSD,
  Op.STOSQ,
  Op.LODSB,
  Op.LODSW,
  Op.LODSD,
  Op.LODSQ,
  Op.SCASB,
  Op.SCASW,
  Op.SCASD,
  Op.SCASQ,
]);
const SHIFTS = new Set<number>([
  Op.ROL,
  Op.ROR,
  Op.RCL,
  Op.RCR,
  Op.SHL,
  Op.SHR,
  Op.SAL,
  Op.SAR,
  Op.SHLD,
  Op.SHRD,
]);

/** xorshift128+ style PRNG on 32-bit state words (seeded, reproducible). */
export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;
  constructor(seed: number) {
    this.a = seed | 0 || 1;
    this.b = 0x9e3779b9;
    this.c = 0x243f6a88;
    this.d = 0xb7e15162;
    for (let i = 0; i < 16; i++) this.u32();
  }
  u32(): number {
    let t = this.d;
    const s = this.a;
    this.d = this.c;
    this.c = this.b;
    this.b = s;
    t ^= t << 11;
    t ^= t >>> 8;
    this.a = t ^ s ^ (s >>> 19);
    return this.a >>> 0;
  }
  below(n: number): number {
    return this.u32() % n;
  }
}

const EDGE32 = [
  0, 1, 2, 0x7f, 0x80, 0xff, 0x7fff, 0x8000, 0xffff, 0x7fffffff, 0x80000000, 0xffffffff, 0xfffffffe,
];
const SHIFT_COUNTS = [0, 1, 2, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 255];

interface Template {
  map: number;
  opcode: number;
  reg: number;
  mem: boolean;
  /** Mandatory prefix byte (0x66, 0xF3, 0xF2) or 0. */
  pfx: number;
}

/** SSE data moves the executor implements (fpu-glue.ts) and the SIMD unit's ops, minus the ones whose
 * result depends on state the harness does not control (x87/MMX registers, save images). */
const SIMD_EXCLUDED = new Set<number>([
  Op.FXSAVE,
  Op.FXSAVE64,
  Op.FXRSTOR,
  Op.FXRSTOR64,
  Op.XSAVE,
  Op.XSAVE64,
  Op.XRSTOR,
  Op.XRSTOR64,
  Op.XSAVEC,
  Op.XSAVEC64,
  Op.XSAVEOPT,
  Op.XSAVEOPT64,
  Op.XSAVES,
  Op.XSAVES64,
  Op.XRSTORS,
  Op.XRSTORS64,
  Op.EMMS,
  Op.MASKMOVDQU,
  Op.MASKMOVQ,
  Op.MOVNTQ,
  Op.MOVQ2DQ,
  Op.MOVDQ2Q,
  Op.TZCNT,
  // MMX operands (x87-aliased registers the harness does not set).
  Op.CVTPI2PD,
  Op.CVTPD2PI,
  Op.CVTTPD2PI,
  Op.CVTPI2PS,
  Op.CVTPS2PI,
  Op.CVTTPS2PI,
  // Approximations whose exact bits are implementation-specific (SDM: |relative error| <= 1.5*2^-12).
  Op.RCPPS,
  Op.RCPSS,
  Op.RSQRTPS,
  Op.RSQRTSS,
]);
/** Adds the ops of a unit's handler table to ALLOWED, minus `excluded`. */
function allowUnit(table: object, excluded: Set<number>): void {
  for (const k of Object.keys(table)) if (!excluded.has(Number(k))) ALLOWED.add(Number(k));
}
allowUnit(SIMD_HANDLERS, SIMD_EXCLUDED);
for (const op of [
  Op.MOVUPS,
  Op.MOVUPD,
  Op.MOVAPS,
  Op.MOVAPD,
  Op.MOVDQA,
  Op.MOVDQU,
  Op.LDDQU,
  Op.MOVNTPS,
  Op.MOVNTPD,
  Op.MOVNTDQ,
  Op.MOVNTDQA,
  Op.MOVSS,
  Op.MOVSD,
  Op.MOVLPS,
  Op.MOVLPD,
  Op.MOVHLPS,
  Op.MOVHPS,
  Op.MOVHPD,
  Op.MOVLHPS,
  Op.MOVD,
  Op.MOVQ,
  Op.PINSRB,
  Op.PINSRW,
  Op.PINSRD,
  Op.PINSRQ,
  Op.PEXTRB,
  Op.PEXTRW,
  Op.PEXTRD,
  Op.PEXTRQ,
  Op.EXTRACTPS,
])
  ALLOWED.add(op);

/**
 * x87 instructions, minus: the state images (FNSAVE/FRSTOR/FNSTENV/FLDENV hold the host's FIP/FDP and
 * selectors), the transcendentals (double accuracy by design, see transcend.ts), FPREM/FPREM1 (how
 * far a partial remainder goes is implementation-specific), the 8087/287 leftovers (FNENI, FNDISI,
 * FNSETPM) and the undocumented FSTPNCE alias (vendor-specific).
 */
const X87_EXCLUDED = new Set<number>([
  Op.FNSAVE,
  Op.FRSTOR,
  Op.FNSTENV,
  Op.FLDENV,
  Op.FSIN,
  Op.FCOS,
  Op.FSINCOS,
  Op.FPTAN,
  Op.FPATAN,
  Op.F2XM1,
  Op.FYL2X,
  Op.FYL2XP1,
  Op.FPREM,
  Op.FPREM1,
  Op.FNENI,
  Op.FNDISI,
  Op.FNSETPM,
  Op.FSTPNCE,
]);
allowUnit(X87_HANDLERS, X87_EXCLUDED);
ALLOWED.add(Op.FWAIT);

/** 80-bit values (sign/exponent, mantissa high, mantissa low) at the x87 edge cases. */
const F80: [number, number, number][] = [
  [0, 0, 0], // +0
  [0x8000, 0, 0], // -0
  [0x3fff, 0x80000000, 0], // 1
  [0xbfff, 0xc0000000, 0], // -1.5
  [0x7fff, 0x80000000, 0], // +inf
  [0xffff, 0x80000000, 0], // -inf
  [0x7fff, 0xc0000000, 0], // QNaN
  [0xffff, 0xc0000000, 0], // the real indefinite
  [0x7fff, 0x80000000, 1], // SNaN
  [0x0000, 0x00000001, 0], // denormal
  [0x0000, 0x80000000, 0], // pseudo-denormal
  [0x4000, 0x40000000, 0], // unnormal (invalid operand)
  [0x7ffe, 0xffffffff, 0xffffffff], // largest finite
  [0x0001, 0x80000000, 0], // smallest normal
];

/** Random x87 state as FXSAVE bytes 0..159 (masked exceptions, mostly; no pending exception). */
function randomX87(r: Rng, fx: Uint8Array): void {
  fx.fill(0);
  const dv = new DataView(fx.buffer, fx.byteOffset, fx.length);
  const masks = r.below(8) === 0 ? r.below(64) : 0x3f;
  const pc = [0, 2, 3][r.below(3)]!;
  dv.setUint16(0, 0x40 | masks | (pc << 8) | (r.below(4) << 10), true);
  dv.setUint16(2, (r.below(8) << 11) | (r.u32() & 0x4700), true); // TOP, C0..C3
  fx[4] = r.below(4) === 0 ? 0xff : r.below(256); // abridged tags: 1 = valid
  for (let p = 0; p < 8; p++) {
    const k = r.below(3);
    let se: number;
    let hi: number;
    let lo: number;
    if (k === 0) [se, hi, lo] = F80[r.below(F80.length)]!;
    else if (k === 1) {
      se = (r.below(2) << 15) | (0x3fff + r.below(80) - 40);
      hi = r.u32() | 0x80000000;
      lo = r.u32();
    } else {
      se = r.below(0x10000);
      hi = r.u32();
      lo = r.u32();
    }
    dv.setUint32(32 + 16 * p, lo >>> 0, true);
    dv.setUint32(36 + 16 * p, hi >>> 0, true);
    dv.setUint16(40 + 16 * p, se, true);
  }
}

/** MMX forms (no mandatory prefix in the 0F map's MMX ranges): their registers alias the x87 stack,
 * which the harness does not set, so they are not compared. */
function mmxForm(map: number, pfx: number, opcode: number): boolean {
  return (
    map === 1 &&
    pfx === 0 &&
    ((opcode >= 0x60 && opcode <= 0x7f) ||
      opcode >= 0xd0 ||
      opcode === 0xc4 ||
      opcode === 0xc5 ||
      opcode === 0x2a ||
      opcode === 0x2c ||
      opcode === 0x2d)
  );
}

/** Builds the template list from the decoder: one per slot whose decoded op is allowed. */
export function buildTemplates(mode: DiffMode = 64): Template[] {
  const out: Template[] = [];
  const insn = new Insn();
  const buf = new Uint8Array(24);
  const seen = new Set<string>();
  for (const map of [0, 1, 2, 3]) {
    for (const pfx of map === 0 ? [0] : [0, 0x66, 0xf3, 0xf2]) {
      for (let opcode = 0; opcode < 256; opcode++) {
        if (map === 1 && (opcode === 0x38 || opcode === 0x3a)) continue;
        // Prefix bytes and REX are not opcodes.
        if (map === 0 && (opcode === 0x0f || (mode === 64 && (opcode & 0xf0) === 0x40))) continue;
        // Segment-register pushes/pops and far pointers load from the host's GDT.
        if (
          map === 0 &&
          mode !== 64 &&
          [0x06, 0x07, 0x0e, 0x16, 0x17, 0x1e, 0x1f, 0x9a, 0xc4, 0xc5, 0xea].includes(opcode)
        )
          continue;
        if (map === 0 && [0x26, 0x2e, 0x36, 0x3e, 0x64, 0x65, 0x66, 0x67, 0xf0, 0xf2, 0xf3].includes(opcode))
          continue;
        if (mmxForm(map, pfx, opcode)) continue;
        for (let reg = 0; reg < 8; reg++) {
          for (const mem of [false, true]) {
            let n = 0;
            if (pfx) buf[n++] = pfx;
            if (map >= 1) buf[n++] = 0x0f;
            if (map === 2) buf[n++] = 0x38;
            if (map === 3) buf[n++] = 0x3a;
            buf[n++] = opcode;
            buf[n++] = mem ? 0x43 | (reg << 3) : 0xc0 | (reg << 3) | 1; // [rbx+disp8] or rcx/xmm1
            buf.fill(0x11, n);
            if (decode(buf, 0, mode, insn) !== DecodeStatus.Ok) continue;
            if (!ALLOWED.has(insn.op) && !(mode !== 64 && LEGACY32.has(insn.op))) continue;
            // Opcodes without ModRM decode the same for every reg: keep one.
            if (!insn.hasModrm && (reg !== 0 || mem)) continue;
            const key = `${map}.${pfx}.${opcode}.${insn.hasModrm ? reg : 0}.${insn.hasModrm && mem}`;
            if (seen.has(key)) continue;
            seen.add(key);
            out.push({ map, opcode, reg, mem: insn.hasModrm && mem, pfx });
          }
        }
      }
    }
  }
  return out;
}

function randReg64(r: Rng, regs: Int32Array, n: number): void {
  const k = r.below(8);
  let lo: number;
  let hi: number;
  if (k < 3) {
    lo = EDGE32[r.below(EDGE32.length)]!;
    hi = r.below(3) === 0 ? 0xffffffff : r.below(2) === 0 ? 0 : EDGE32[r.below(EDGE32.length)]!;
  } else if (k < 5) {
    lo = r.below(64);
    hi = 0;
  } else {
    lo = r.u32();
    hi = r.u32();
  }
  regs[2 * n] = lo | 0;
  regs[2 * n + 1] = hi | 0;
}

/** Generates snippet number `index` (round robin over templates) into `s`; returns false to skip. */
export function generate(
  r: Rng,
  templates: Template[],
  index: number,
  s: SnippetIn,
  insn: Insn,
  mode: DiffMode = 64,
): boolean {
  s.mode = mode;
  const t = templates[index % templates.length]!;
  const code = new Uint8Array(CODE_MAX);
  let n = 0;
  const pfx = t.pfx !== 0 ? 0 : r.below(6);
  if (t.pfx !== 0) code[n++] = t.pfx;
  else if (pfx === 1) code[n++] = 0x66;
  const rexKind = mode === 64 ? r.below(4) : 0;
  let rex = 0;
  if (rexKind === 1) rex = 0x48;
  else if (rexKind === 2) rex = 0x40 | (r.below(16) & 0xd); // W/R/B, never X (no index register)
  if (pfx === 2 && t.map === 0 && t.opcode >= 0xa4 && t.opcode <= 0xaf) code[n++] = r.below(2) ? 0xf3 : 0xf2;
  // LOCK on memory forms (an unlockable form is #UD on both sides).
  if (t.mem && r.below(5) === 0) code[n++] = 0xf0;
  const baseReg = 3 | (rex & 1 ? 8 : 0); // rbx or r11 as the memory base
  if (rex) code[n++] = rex;
  if (t.map >= 1) code[n++] = 0x0f;
  if (t.map === 2) code[n++] = 0x38;
  if (t.map === 3) code[n++] = 0x3a;
  code[n++] = t.opcode;
  // Memory operand: [rbx/r11 + disp8], or [bx + disp8] (rm = 7) with 16-bit addressing.
  const rm = t.mem ? (mode === 16 ? 7 : 3) : r.below(8);
  const mod = t.mem ? 1 : 3;
  code[n++] = (mod << 6) | (t.reg << 3) | rm;
  if (t.mem) code[n++] = (r.below(200) - 100) & 0xff; // disp8
  for (let k = 0; k < 8; k++)
    code[n++] = r.below(4) === 0 ? EDGE32[r.below(EDGE32.length)]! & 0xff : r.below(256);
  const st = decode(code, 0, mode, insn);
  if (st !== DecodeStatus.Ok) return false;
  if (!ALLOWED.has(insn.op) && !(mode !== 64 && LEGACY32.has(insn.op))) return false;
  if (insn.op === Op.MOV && insn.map === 0 && insn.opcode === 0x8e) return false; // loads from Linux's GDT
  // 0F 0D with a register operand: Intel treats it as a reserved NOP, AMD raises #UD (vendor difference).
  if (insn.map === 1 && insn.opcode === 0x0d) return false;
  const len = insn.length;
  let regs16Count = false;
  // Shift counts: edge values for the imm8.
  if (
    SHIFTS.has(insn.op) &&
    (t.opcode === 0xc0 || t.opcode === 0xc1 || t.opcode === 0xa4 || t.opcode === 0xac)
  ) {
    code[len - 1] = SHIFT_COUNTS[r.below(SHIFT_COUNTS.length)]!;
  }
  // Branches must not land inside the snippet (no loops): keep forward targets only.
  const isRel =
    t.map === 0
      ? (t.opcode >= 0x70 && t.opcode <= 0x7f) ||
        t.opcode === 0xeb ||
        t.opcode === 0xe9 ||
        t.opcode === 0xe8 ||
        (t.opcode >= 0xe0 && t.opcode <= 0xe3)
      : t.opcode >= 0x80 && t.opcode <= 0x8f;
  if (isRel && insn.imm < 0 && insn.imm >= -len) return false;
  // 66-prefixed near branches in 64-bit mode: Intel ignores the prefix, these AMD hosts truncate the
  // target to 16 bits (a documented vendor difference); we follow Intel, so do not compare them.
  if (
    mode === 64 &&
    code[0] === 0x66 &&
    (isRel || insn.op === Op.RET || insn.op === Op.CALL || insn.op === Op.JMP)
  )
    return false;
  // SHLD/SHRD with a 16-bit operand and a count above 16 leave result and flags undefined (SDM).
  if ((insn.op === Op.SHLD || insn.op === Op.SHRD) && insn.opSize === 2) {
    if (t.opcode === 0xa4 || t.opcode === 0xac) code[len - 1] = r.below(17);
    else regs16Count = true;
  }
  if (insn.op === Op.ENTER) {
    // Small frames and nesting levels: where a huge frame faults differs between vendors.
    code[len - 1] = r.below(4);
    code[len - 2] = 0;
  }
  // Far transfers and segment-register loads depend on the host's GDT.
  if (
    (insn.op === Op.JMP || insn.op === Op.CALL) &&
    insn.opcode === 0xff &&
    (insn.reg & 7) !== 4 &&
    (insn.reg & 7) !== 2
  )
    return false;
  if ((insn.op === Op.POP || insn.op === Op.PUSH) && insn.map === 1) return false;
  s.code = code.slice(0, len);
  s.op = insn.op;
  const regs = s.regs;
  for (let k = 0; k < 16; k++) randReg64(r, regs, k);
  if (mode !== 64) for (let k = 0; k < 16; k++) regs[2 * k + 1] = 0;
  // Pointers into the window: memory base, rSI/rDI for strings, rSP for the stack. 16-bit code
  // addresses it through segments based at DATA_BASE, so there they are offsets in the data page.
  const win = mode === 16 ? WIN_OFF : WIN_BASE;
  const mid = win + 512;
  regs[2 * baseReg] = mid + r.below(64) - 32;
  regs[2 * baseReg + 1] = 0;
  regs[2 * 4] = win + WIN - 128 - 8 * r.below(4);
  regs[2 * 4 + 1] = 0;
  // ENTER (nesting level) and LEAVE read the stack through rBP: with EBP within 16 bytes of either
  // end of the 4 GiB space the read wraps past the stack segment's 4 GiB limit, whose check the SDM
  // leaves to the implementation (Vol. 3 5.3): the Intel host wraps and takes #PF, the model raises
  // #SS. Such frames are moved half the address space away instead of compared.
  const bp = regs[10]! >>> 0;
  if ((insn.op === Op.ENTER || insn.op === Op.LEAVE) && mode === 32 && (bp < 16 || bp > 0xffffffef))
    regs[10] = (bp ^ 0x80000000) | 0;
  if (STRINGS.has(insn.op) || insn.op === Op.XLATB) {
    regs[12] = mid - 200 + r.below(100);
    regs[13] = 0;
    regs[14] = mid + 100 + r.below(100);
    regs[15] = 0;
    regs[6] = mid - 300 + r.below(100); // rbx for XLAT
    regs[7] = 0;
  }
  if (STRINGS.has(insn.op) || COUNTED.has(insn.op)) {
    regs[2] = r.below(12);
    regs[3] = 0;
  }
  if (SHIFTS.has(insn.op)) regs[2] = SHIFT_COUNTS[r.below(SHIFT_COUNTS.length)]! | (r.u32() & 0xff00);
  if (regs16Count) regs[2] = (regs[2]! & ~0xff) | r.below(17);
  // 16-bit code: an indirect near JMP/CALL or a RET lands in the code page one time in 16; never
  // inside the snippet (that would run its bytes again). The target is a register, the word/dword at
  // [bx+disp8], or the one on top of the stack.
  const indirect = insn.map === 0 && insn.opcode === 0xff && ((insn.reg & 7) === 2 || (insn.reg & 7) === 4);
  const ret = insn.op === Op.RET;
  let target = -1;
  if (mode === 16 && (indirect || ret)) target = len + 1 + r.below(0x10000 - len - 1);
  // Arithmetic flags random; DF sometimes; IF always (user mode); never AC or TF.
  s.rflags = 0x202 | (r.u32() & 0x8d5) | (r.below(4) === 0 ? 0x400 : 0);
  const FLOATS = [
    0, 0x80000000, 0x3f800000, 0xbf800000, 0x7f800000, 0xff800000, 0x7fc00000, 0x00000001, 0x007fffff,
    0x4b000000, 0x7f7fffff,
  ];
  for (let k = 0; k < 64; k++) {
    const pick = r.below(4);
    s.xmm[k] =
      pick === 0 ? FLOATS[r.below(FLOATS.length)]! : pick === 1 ? EDGE32[r.below(EDGE32.length)]! : r.u32();
  }
  // MXCSR: all exceptions masked; sometimes another rounding mode, FTZ or DAZ.
  s.mxcsr = 0x1f80 | (r.below(4) === 0 ? r.u32() & 0xe040 : 0);
  for (let k = 0; k < WIN; k++) s.mem[k] = r.below(3) === 0 ? 0 : r.below(256);
  randomX87(r, s.fx);
  if (target >= 0) {
    if (ret || insn.isMem) {
      const at = ((ret ? regs[2 * 4]! : regs[2 * 3]! + insn.disp) & 0xffff) - WIN_OFF;
      if (at < 0 || at + 4 > WIN) return false;
      for (let k = 0; k < 4; k++) s.mem[at + k] = k < 2 ? (target >> (8 * k)) & 0xff : 0;
    } else {
      regs[2 * (insn.rm & 7)] = target;
      regs[2 * (insn.rm & 7) + 1] = 0;
    }
  }
  void CODE_BASE;
  return true;
}
