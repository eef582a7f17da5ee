// Intel-syntax formatter over the same records the decoder uses, close to `objdump -M intel`
// (explicit memory sizes, `ptr`) with iced-x86's number style (hex with an `h` suffix, a leading
// 0 before a letter, -9..9 in decimal). Allocates strings: it is for disassembly, not execution.

import { DecodeStatus, type Insn, NO_REG, Prefix } from "../decoder/insn.js";
import { operandBytes, operandWord, wordKind, wordReg, wordSize } from "../decoder/operands.js";
import { OP_NAMES, OpKind, OpSize } from "../generated/ops.js";
import { FA, FORM_ATTR } from "../generated/tables.js";

const GPR64 = ["rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi"];
const GPR32 = ["eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi"];
const GPR16 = ["ax", "cx", "dx", "bx", "sp", "bp", "si", "di"];
const GPR8 = ["al", "cl", "dl", "bl", "spl", "bpl", "sil", "dil"];
const GPR8H = ["al", "cl", "dl", "bl", "ah", "ch", "dh", "bh"];
const SEGS = ["es", "cs", "ss", "ds", "fs", "gs", "?6", "?7"];

/** Name of general register `n` (0..15) of `bytes` width; `high` selects AH..BH for 4..7. */
export function gprName(n: number, bytes: number, high = false): string {
  if (n < 8) {
    if (bytes === 8) return GPR64[n]!;
    if (bytes === 4) return GPR32[n]!;
    if (bytes === 2) return GPR16[n]!;
    return (high ? GPR8H : GPR8)[n]!;
  }
  if (bytes === 8) return `r${n}`;
  if (bytes === 4) return `r${n}d`;
  if (bytes === 2) return `r${n}w`;
  return `r${n}b`;
}

/** iced-x86's number style: decimal for -9..9, else hex with an `h` suffix and a leading 0 before A-F. */
export function hex(v: number): string {
  if (v >= 0 && v <= 9) return String(v);
  const s = v.toString(16).toUpperCase();
  return /^[A-F]/.test(s) ? `0${s}h` : `${s}h`;
}

/** A 64-bit value given as 32-bit halves, formatted as an unsigned hex number. */
function hex64(lo: number, hi: number): string {
  if (hi === 0) return hex(lo >>> 0);
  const s = (hi >>> 0).toString(16).toUpperCase() + (lo >>> 0).toString(16).toUpperCase().padStart(8, "0");
  return /^[A-F]/.test(s) ? `0${s}h` : `${s}h`;
}

/** A 64-bit address computed as a JS number (|value| < 2^53); negative wraps modulo 2^64. */
function address(t: number): string {
  return t < 0 ? hex64(t >>> 0, 0xffffffff) : hex(t);
}

function immText(bytes: number, lo: number, hi: number): string {
  if (bytes === 8) return hex64(lo, hi);
  if (bytes === 4) return hex(lo >>> 0);
  if (bytes === 2) return hex(lo & 0xffff);
  return hex(lo & 0xff);
}

const PTR: Record<number, string> = {
  1: "byte ptr ",
  2: "word ptr ",
  4: "dword ptr ",
  6: "fword ptr ",
  8: "qword ptr ",
  10: "tbyte ptr ",
  16: "xmmword ptr ",
  32: "ymmword ptr ",
};

function memText(insn: Insn, bytes: number): string {
  const a = insn.addrSize;
  let s = "";
  if (insn.seg >= 0 && !(insn.mode === 64 && insn.seg < 4)) s += `${SEGS[insn.seg]}:`;
  const parts: string[] = [];
  if (insn.ripRel) {
    s += `[${a === 8 ? "rip" : "eip"}${insn.disp < 0 ? "-" : "+"}${hex(Math.abs(insn.disp))}]`;
    return (PTR[bytes] ?? "") + s;
  }
  if (insn.base !== NO_REG) parts.push(gprName(insn.base, a));
  if (insn.index !== NO_REG)
    parts.push(insn.scale ? `${gprName(insn.index, a)}*${1 << insn.scale}` : gprName(insn.index, a));
  let d = insn.disp;
  if (a === 2) d = (d << 16) >> 16;
  let text = parts.join("+");
  if (parts.length === 0) text = hex(a === 2 ? d & 0xffff : d >>> 0);
  else if (d > 0) text += `+${hex(d)}`;
  else if (d < 0) text += `-${hex(-d)}`;
  return `${PTR[bytes] ?? ""}${s}[${text}]`;
}

/** String operands as iced-x86 prints them: `[rdi]` (always ES), `[rsi]` with its override if any. */
function stringOperand(insn: Insn, dst: boolean): string {
  const r = gprName(dst ? 7 : 6, insn.addrSize);
  return dst || insn.seg < 0 ? `[${r}]` : `${SEGS[insn.seg]}:[${r}]`;
}

/**
 * Formats a decoded instruction in Intel syntax; `ip` is its address (for branch targets and
 * RIP-relative comments; -1 prints relative offsets). Invalid decodes print `(bad)`.
 * @example
 * decode(Uint8Array.of(0x48, 0x01, 0xd8), 0, 64, insn);
 * formatIntel(insn); // "add rax,rbx"
 */
export function formatIntel(insn: Insn, ip = 0): string {
  if (insn.status !== DecodeStatus.Ok) return "(bad)";
  const form = insn.form;
  const attr = FORM_ATTR[form] ?? 0;
  let prefix = "";
  if (insn.prefixes & Prefix.LOCK) prefix += "lock ";
  if (attr & FA.BND && insn.prefixes & Prefix.REPNE) prefix += "bnd "; // MPX BND prefix on branches
  if (attr & (FA.REP | FA.REPE) && !(attr & FA.MPREP)) {
    if (insn.prefixes & Prefix.REP) prefix += attr & FA.REPE ? "repe " : "rep ";
    else if (insn.prefixes & Prefix.REPNE) prefix += "repne ";
  }
  const mn = OP_NAMES[insn.op] ?? "(bad)";
  const ops: string[] = [];
  const isString = (attr & (FA.REP | FA.REPE)) !== 0;
  for (let i = 0; i < 4; i++) {
    const w = operandWord(form, i);
    const kind = wordKind(w);
    if (kind === OpKind.None) break;
    const size = wordSize(w);
    // Pseudo-descriptors (LGDT...) print without a size, as objdump and iced do.
    const bytes = size === OpSize.s ? 0 : operandBytes(size, insn);
    switch (kind) {
      case OpKind.E:
      case OpKind.M:
      case OpKind.R:
        if (insn.isMem) ops.push(memText(insn, bytes));
        else ops.push(gprName(insn.rm, bytes || insn.opSize, insn.byteRegsHigh));
        break;
      case OpKind.G:
        ops.push(gprName(insn.reg, bytes, insn.byteRegsHigh));
        break;
      case OpKind.Z:
        ops.push(gprName((insn.opcode & 7) | ((insn.rex & 1) << 3), bytes, insn.byteRegsHigh));
        break;
      case OpKind.B:
        ops.push(gprName(insn.vvvv, bytes));
        break;
      case OpKind.Reg:
        // String instructions name their accumulator in the mnemonic (stosd, lodsb); DX stays.
        if (!isString || wordReg(w) === 2) ops.push(gprName(wordReg(w), bytes));
        break;
      case OpKind.Seg:
        ops.push(SEGS[wordReg(w)]!);
        break;
      case OpKind.S:
        ops.push(SEGS[insn.reg & 7]!);
        break;
      case OpKind.C:
        ops.push(`cr${insn.reg}`);
        break;
      case OpKind.D:
        ops.push(`dr${insn.reg}`);
        break;
      case OpKind.V:
        ops.push(`${insn.vexL && size === OpSize.x ? "ymm" : "xmm"}${insn.reg}`);
        break;
      case OpKind.H:
        ops.push(`${insn.vexL && size === OpSize.x ? "ymm" : "xmm"}${insn.vvvv}`);
        break;
      case OpKind.W:
      case OpKind.U:
        if (insn.isMem) ops.push(memText(insn, bytes));
        else ops.push(`${insn.vexL && size === OpSize.x ? "ymm" : "xmm"}${insn.rm}`);
        break;
      case OpKind.P:
        ops.push(`mm${insn.reg & 7}`);
        break;
      case OpKind.Q:
      case OpKind.N:
        if (insn.isMem) ops.push(memText(insn, bytes));
        else ops.push(`mm${insn.rm & 7}`);
        break;
      case OpKind.STi:
        ops.push(`st(${insn.rm & 7})`);
        break;
      case OpKind.ST:
        ops.push("st");
        break;
      case OpKind.Xmm0:
        ops.push("xmm0");
        break;
      case OpKind.One:
        ops.push("1");
        break;
      case OpKind.I:
        if (i > 0 && wordKind(operandWord(form, i - 1)) === OpKind.I) ops.push(hex(insn.imm2));
        else if (size === OpSize.bs || size === OpSize.z || size === OpSize.v) {
          // Sign-extended to the destination's size; PUSH imm extends to the stack operand size.
          const opBytes =
            i === 0 ? insn.opSize : operandBytes(wordSize(operandWord(form, 0)), insn) || insn.opSize;
          ops.push(immText(size === OpSize.v ? insn.opSize : opBytes, insn.imm, insn.immHi));
        } else ops.push(immText(bytes, insn.imm, 0));
        break;
      case OpKind.J: {
        const next = ip + insn.length;
        let t = next + insn.imm;
        if (insn.opSize === 2 && insn.mode !== 64) t &= 0xffff;
        else if (insn.mode !== 64) t >>>= 0;
        ops.push(ip < 0 ? `$${insn.imm >= 0 ? "+" : ""}${insn.imm + insn.length}` : address(t));
        break;
      }
      case OpKind.O: {
        const a = insn.addrSize;
        const seg = insn.seg >= 0 && !(insn.mode === 64 && insn.seg < 4) ? `${SEGS[insn.seg]}:` : "";
        const off = a === 8 ? hex64(insn.imm, insn.immHi) : hex(a === 2 ? insn.imm & 0xffff : insn.imm >>> 0);
        ops.push(`${PTR[bytes] ?? ""}${seg}[${off}]`);
        break;
      }
      case OpKind.A:
        ops.push(`${hex(insn.imm2)}:${hex(insn.opSize === 2 ? insn.imm & 0xffff : insn.imm >>> 0)}`);
        break;
      case OpKind.X:
        ops.push(stringOperand(insn, false));
        break;
      case OpKind.Y:
        ops.push(stringOperand(insn, true));
        break;
    }
  }
  const far = insn.isMem && wordSize(operandWord(form, 0)) === OpSize.p ? "far " : "";
  const farImm = wordKind(operandWord(form, 0)) === OpKind.A ? "far " : "";
  let text = ops.length ? `${prefix}${mn} ${far}${farImm}${ops.join(",")}` : `${prefix}${mn}`;
  // RIP-relative: the absolute address as a trailing comment, as objdump does.
  if (insn.ripRel && insn.isMem && ip >= 0) {
    const t = ip + insn.length + insn.disp;
    text += ` ; ${insn.addrSize === 8 ? address(t) : hex(t >>> 0)}`;
  }
  return text;
}
