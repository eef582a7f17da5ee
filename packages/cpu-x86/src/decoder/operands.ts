// Operand descriptions per form, read from the generated tables: what the executor and the
// formatter need to know about each operand (kind, size, access) without re-deriving it from bytes.

import { OpKind, OpSize } from "../generated/ops.js";
import { FA, FORM_ATTR, FORM_COUNT, FORM_OPERANDS } from "../generated/tables.js";
import type { Insn } from "./insn.js";

/** Operand access: read, written, both, or neither (LEA's memory, NOP's operands). */
export const OperandAccess = { None: 0, Read: 1, Write: 2, ReadWrite: 3 } as const;
export type OperandAccess = (typeof OperandAccess)[keyof typeof OperandAccess];

/** One operand of a form, as written in its record (e.g. `Ev:rw` = kind E, size v, read-write). */
export interface OperandSpec {
  kind: OpKind;
  size: OpSize;
  access: OperandAccess;
  /** For fixed-register kinds (Reg, Seg): the register number. */
  reg: number;
}

/** Raw operand word accessors (hot-path friendly: no allocation). `i` is 0..3. */
export function operandWord(form: number, i: number): number {
  return FORM_OPERANDS[form * 4 + i] ?? 0;
}
export const wordKind = (w: number): OpKind => (w & 0xff) as OpKind;
export const wordSize = (w: number): OpSize => ((w >> 8) & 0xff) as OpSize;
export const wordAccess = (w: number): OperandAccess => ((w >> 16) & 3) as OperandAccess;
export const wordReg = (w: number): number => (w >>> 20) & 0xff;

/**
 * The operands of a form, in Intel order (destination first). Allocates; for tables and tools.
 * @example
 * decode(Uint8Array.of(0x01, 0xd8), 0, 32, insn);
 * formOperands(insn.form); // [{kind: OpKind.E, size: OpSize.v, access: OperandAccess.ReadWrite, reg: 0}, {kind: OpKind.G, ...}]
 */
export function formOperands(form: number): OperandSpec[] {
  const out: OperandSpec[] = [];
  if (form <= 0 || form >= FORM_COUNT) return out;
  for (let i = 0; i < 4; i++) {
    const w = operandWord(form, i);
    if (wordKind(w) === OpKind.None) break;
    out.push({ kind: wordKind(w), size: wordSize(w), access: wordAccess(w), reg: wordReg(w) });
  }
  return out;
}

/** Number of operands of a form. */
export function operandCount(form: number): number {
  let n = 0;
  while (n < 4 && wordKind(operandWord(form, n)) !== OpKind.None) n++;
  return n;
}

/**
 * Size in bytes of an operand of size code `size` for a decoded instruction (0 = no size, e.g. `M`
 * of LEA or FXSAVE's 512-byte area).
 */
export function operandBytes(size: OpSize, insn: Insn): number {
  switch (size) {
    case OpSize.b:
    case OpSize.bs:
      return 1;
    case OpSize.w:
      return 2;
    case OpSize.d:
      return 4;
    case OpSize.q:
      return 8;
    case OpSize.dq:
      return 16;
    case OpSize.qq:
      return 32;
    case OpSize.v:
      return insn.opSize;
    case OpSize.z:
      return insn.opSize === 2 ? 2 : 4;
    case OpSize.y:
      return insn.opSize === 8 ? 8 : 4;
    case OpSize.x:
      return insn.vexL ? 32 : 16;
    case OpSize.p:
      return insn.opSize + 2;
    case OpSize.s:
      return insn.mode === 64 ? 10 : 6;
    case OpSize.a:
      return insn.opSize * 2;
    case OpSize.t:
      return 10;
    case OpSize.f64:
      return insn.mode === 64 ? 8 : 4;
    default:
      return 0;
  }
}

/** Whether the form's LOCK prefix is legal (with a memory destination). */
export function formLockable(form: number): boolean {
  return ((FORM_ATTR[form] ?? 0) & FA.LOCK) !== 0;
}
