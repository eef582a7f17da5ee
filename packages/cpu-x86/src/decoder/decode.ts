// The table-driven decoder: legacy prefixes, REX, VEX, opcode maps, ModRM/SIB/displacement and
// immediates (SDM Vol. 2 ch. 2). The per-opcode decisions come from src/generated/tables.ts,
// generated from data/*.txt; this file only knows the instruction format.

import {
  FA,
  FORM_ATTR,
  FORM_IMM,
  FORM_OP,
  IMM,
  SEL,
  SLOT_MODRM,
  SLOT_ROOT,
  TREE,
} from "../generated/tables.js";
import { DecodeStatus, type Insn, NO_REG, NO_SEG, Prefix } from "./insn.js";

/** SDM Vol. 2 2.3.11: an instruction is at most 15 bytes; longer raises #GP(0). */
export const MAX_INSN_LENGTH = 15;

// 16-bit ModRM memory forms (SDM Vol. 2 Table 2-1): base and index per rm; BX=3 BP=5 SI=6 DI=7.
const BASE16 = [3, 3, 5, 5, 6, 7, 5, 3];
const INDEX16 = [6, 7, 6, 7, NO_REG, NO_REG, NO_REG, NO_REG];

function finish(out: Insn, status: DecodeStatus, length: number): DecodeStatus {
  out.status = status;
  out.length = length;
  if (status !== DecodeStatus.Ok) {
    out.op = 0;
    out.form = 0;
  }
  return status;
}

/**
 * Decodes the instruction at `bytes[offset]` in `mode` (16, 32 or 64) into `out` and returns its
 * status (also stored in `out.status`). Pure and total: it never throws, never reads outside
 * `bytes`, and allocates nothing. A buffer that ends early gives `Truncated`; more than 15 bytes
 * gives `TooLong`; an encoding that is not a valid instruction in `mode` gives `Invalid` (#UD).
 *
 * @example
 * const insn = new Insn();
 * decode(Uint8Array.of(0x48, 0x01, 0xd8), 0, 64, insn); // add rax, rbx
 * insn.op === Op.ADD && insn.length === 3;
 */
export function decode(bytes: Uint8Array, offset: number, mode: 16 | 32 | 64, out: Insn): DecodeStatus {
  out.mode = mode;
  out.op = 0;
  out.form = 0;
  out.prefixes = 0;
  out.rex = 0;
  out.seg = NO_SEG;
  out.opcode = 0;
  out.map = 0;
  out.hasModrm = false;
  out.mod = 0;
  out.reg = 0;
  out.rm = 0;
  out.isMem = false;
  out.base = NO_REG;
  out.index = NO_REG;
  out.scale = 0;
  out.disp = 0;
  out.ripRel = false;
  out.imm = 0;
  out.immHi = 0;
  out.imm2 = 0;
  out.vvvv = 0;
  out.vexL = 0;
  out.byteRegsHigh = true;
  out.mandatory = 0;

  const len = bytes.length;
  if (offset < 0 || offset >= len || (offset | 0) !== offset) return finish(out, DecodeStatus.Truncated, 0);
  const hardEnd = offset + MAX_INSN_LENGTH;
  // Reading at p >= lim fails: Truncated when the buffer ends first, TooLong when the limit does.
  const lim = Math.min(len, hardEnd);
  const cut = len < hardEnd ? DecodeStatus.Truncated : DecodeStatus.TooLong;
  const is64 = mode === 64;

  let p = offset;
  let pfx = 0;
  let seg = NO_SEG;
  let rep = 0; // last of F2/F3: 2 = F3, 3 = F2 (the MP branch index), 0 = none
  let rex = 0; // 0x40..0x4F when a REX took effect
  let b = 0;
  // Legacy prefixes and REX (SDM Vol. 2 2.1.1, 2.2.1): any order, repeats allowed; the last
  // segment override and the last of F2/F3 win; a REX counts only directly before the opcode.
  prefixes: for (;;) {
    if (p >= lim) return finish(out, cut, p - offset);
    b = bytes[p]!;
    switch (b) {
      case 0x26:
        seg = 0;
        break;
      case 0x2e:
        seg = 1;
        break;
      case 0x36:
        seg = 2;
        break;
      case 0x3e:
        seg = 3;
        break;
      case 0x64:
        seg = 4;
        break;
      case 0x65:
        seg = 5;
        break;
      case 0x66:
        pfx |= Prefix.OPSIZE;
        break;
      case 0x67:
        pfx |= Prefix.ADDRSIZE;
        break;
      case 0xf0:
        pfx |= Prefix.LOCK;
        break;
      case 0xf2:
        rep = 3;
        break;
      case 0xf3:
        rep = 2;
        break;
      default:
        if (is64 && (b & 0xf0) === 0x40) {
          rex = b;
          p++;
          continue prefixes;
        }
        break prefixes;
    }
    rex = 0; // a legacy prefix after REX makes that REX ignored
    p++;
  }

  if (seg !== NO_SEG) pfx |= Prefix.SEG;
  if (rep === 2) pfx |= Prefix.REP;
  else if (rep === 3) pfx |= Prefix.REPNE;

  let rexW = 0;
  let rexR = 0;
  let rexX = 0;
  let rexB = 0;
  if (rex !== 0) {
    pfx |= Prefix.REX;
    rexW = (rex >> 3) & 1;
    rexR = (rex >> 2) & 1;
    rexX = (rex >> 1) & 1;
    rexB = rex & 1;
  }

  // Opcode, escape bytes and VEX.
  p++; // b is the opcode's first byte
  let map = 0;
  let mpIdx = 0;
  let vexL = 0;
  let vvvv = 0;
  let vvvvRaw = 0;
  let isVex = false;
  if (b === 0x0f) {
    if (p >= lim) return finish(out, cut, p - offset);
    b = bytes[p++]!;
    map = 1;
    if (b === 0x38 || b === 0x3a) {
      map = b === 0x38 ? 2 : 3;
      if (p >= lim) return finish(out, cut, p - offset);
      b = bytes[p++]!;
    }
  } else if (b === 0xc4 || b === 0xc5) {
    if (p >= lim) return finish(out, cut, p - offset);
    const b1 = bytes[p]!;
    // SDM Vol. 2 2.3.5: outside 64-bit mode C4/C5 are LES/LDS unless ModRM.mod would be 11.
    if (is64 || b1 >= 0xc0) {
      isVex = true;
      p++;
      let mmmmm = 1;
      let b2 = b1;
      if (b === 0xc4) {
        if (p >= lim) return finish(out, cut, p - offset);
        b2 = bytes[p++]!;
        mmmmm = b1 & 0x1f;
        if (is64) {
          rexX = (~b1 >> 6) & 1;
          rexB = (~b1 >> 5) & 1;
        }
        rexW = b2 >> 7;
      }
      if (is64) rexR = (~b1 >> 7) & 1;
      // Outside 64-bit mode only 8 registers exist: VEX.vvvv[3] is dropped for register use, but
      // the "unused vvvv must be 1111b" check below sees all four bits (as Intel CPUs do).
      vvvvRaw = (~b2 >> 3) & 15;
      vvvv = is64 ? vvvvRaw : vvvvRaw & 7;
      vexL = (b2 >> 2) & 1;
      mpIdx = b2 & 3;
      pfx |= Prefix.VEX;
      if (p >= lim) return finish(out, cut, p - offset);
      b = bytes[p++]!;
      // SDM Vol. 2 2.3.2: 66, F2, F3, LOCK or REX before VEX is #UD; an unknown map is #UD.
      if (mmmmm < 1 || mmmmm > 3 || rex !== 0 || rep !== 0 || (pfx & (Prefix.OPSIZE | Prefix.LOCK)) !== 0)
        return finish(out, DecodeStatus.Invalid, p - offset);
      map = mmmmm + 3;
    }
  }
  if (!isVex) {
    if (rep !== 0) mpIdx = rep;
    else if (pfx & Prefix.OPSIZE) mpIdx = 1;
  }

  const slot = (map << 8) | b;
  out.opcode = b;
  out.map = map;
  const hasModrm = SLOT_MODRM[slot] === 1;
  let modrm = 0;
  if (hasModrm) {
    if (p >= lim) return finish(out, cut, p - offset);
    modrm = bytes[p++]!;
  }

  // Operand and address size (SDM Vol. 1 3.6, Vol. 2 2.2.1.2).
  const o66 = (pfx & Prefix.OPSIZE) !== 0;
  let osz = is64 ? (rexW ? 8 : o66 ? 2 : 4) : mode === 32 ? (o66 ? 2 : 4) : o66 ? 4 : 2;
  const a67 = (pfx & Prefix.ADDRSIZE) !== 0;
  const asz = is64 ? (a67 ? 4 : 8) : mode === 32 ? (a67 ? 2 : 4) : a67 ? 4 : 2;

  let node = SLOT_ROOT[slot]!;
  while (node < 0) {
    const i = ~node;
    const sel = TREE[i]!;
    let br = 0;
    switch (sel) {
      case SEL.MODE:
        br = is64 ? 1 : 0;
        break;
      case SEL.MP:
        br = mpIdx;
        break;
      case SEL.REXB:
        br = rexB;
        break;
      case SEL.L:
        br = vexL;
        break;
      case SEL.REG:
        br = (modrm >> 3) & 7;
        break;
      case SEL.MOD:
        br = modrm >= 0xc0 ? 1 : 0;
        break;
      case SEL.RM:
        br = modrm & 7;
        break;
      case SEL.W:
        br = rexW;
        break;
      case SEL.OS:
        br = osz === 2 ? 0 : osz === 4 ? 1 : 2;
        break;
      case SEL.OS_D64:
        br = is64 ? (o66 && !rexW ? 0 : 2) : osz === 2 ? 0 : 1;
        break;
      case SEL.OS_F64:
        br = is64 ? 2 : osz === 2 ? 0 : 1;
        break;
      case SEL.AS:
        br = asz === 2 ? 0 : asz === 4 ? 1 : 2;
        break;
    }
    node = TREE[i + 1 + br]!;
  }
  const form = node;
  const attr = FORM_ATTR[form]!;

  // Operand size adjustments that depend on the form.
  if (attr & FA.MP66) osz = rexW && is64 ? 8 : 4;
  else if (is64) {
    if (attr & FA.F64) osz = 8;
    else if (attr & FA.D64 && !(o66 && !rexW)) osz = 8;
  }

  // ModRM memory operand, SIB and displacement (SDM Vol. 2 2.1.5, 2.2.1.6).
  let mod = modrm >> 6;
  let isMem = false;
  let base = NO_REG;
  let index = NO_REG;
  let scale = 0;
  let disp = 0;
  let ripRel = false;
  if (hasModrm) {
    if (attr & FA.MODREG) mod = 3;
    if (mod !== 3) {
      isMem = true;
      const rmb = modrm & 7;
      if (asz === 2) {
        if (mod === 0 && rmb === 6) {
          if (p + 2 > lim) return finish(out, cut, p - offset);
          disp = bytes[p]! | (bytes[p + 1]! << 8);
          p += 2;
        } else {
          base = BASE16[rmb]!;
          index = INDEX16[rmb]!;
          if (mod === 1) {
            if (p >= lim) return finish(out, cut, p - offset);
            disp = (bytes[p++]! << 24) >> 24;
          } else if (mod === 2) {
            if (p + 2 > lim) return finish(out, cut, p - offset);
            disp = ((bytes[p]! | (bytes[p + 1]! << 8)) << 16) >> 16;
            p += 2;
          }
        }
      } else {
        let dispBytes = mod === 1 ? 1 : mod === 2 ? 4 : 0;
        if (rmb === 4) {
          if (p >= lim) return finish(out, cut, p - offset);
          const sib = bytes[p++]!;
          scale = sib >> 6;
          const idx = ((sib >> 3) & 7) | (rexX << 3);
          if (idx !== 4) index = idx; // SIB.index 100 without REX.X means no index
          const sb = sib & 7;
          if (sb === 5 && mod === 0) dispBytes = 4;
          else base = sb | (rexB << 3);
        } else if (rmb === 5 && mod === 0) {
          dispBytes = 4;
          ripRel = is64; // 64-bit mode: RIP-relative (EIP-relative with 67)
        } else base = rmb | (rexB << 3);
        if (dispBytes === 1) {
          if (p >= lim) return finish(out, cut, p - offset);
          disp = (bytes[p++]! << 24) >> 24;
        } else if (dispBytes === 4) {
          if (p + 4 > lim) return finish(out, cut, p - offset);
          disp = bytes[p]! | (bytes[p + 1]! << 8) | (bytes[p + 2]! << 16) | (bytes[p + 3]! << 24);
          p += 4;
        }
      }
    }
  }

  // Immediates.
  const immk = FORM_IMM[form]!;
  let imm = 0;
  let immHi = 0;
  let imm2 = 0;
  if (immk !== 0) {
    let n = 0;
    const k = immk & 15;
    switch (k) {
      case IMM.Ib:
      case IMM.Ibs:
      case IMM.Jb:
        n = 1;
        break;
      case IMM.Iw:
        n = 2;
        break;
      case IMM.Id:
        n = 4;
        break;
      case IMM.Iz:
      case IMM.Jz:
        n = osz === 2 ? 2 : 4;
        break;
      case IMM.Iv:
        n = osz;
        break;
      case IMM.O:
        n = asz;
        break;
      case IMM.Ap:
        n = osz === 2 ? 4 : 6;
        break;
    }
    if (immk >> 4 === IMM.Ib) n++;
    if (p + n > lim) return finish(out, cut, p - offset);
    switch (k) {
      case IMM.Ib:
        imm = bytes[p]!;
        break;
      case IMM.Ibs:
      case IMM.Jb:
        imm = (bytes[p]! << 24) >> 24;
        immHi = imm >> 31;
        break;
      case IMM.Iw:
        imm = bytes[p]! | (bytes[p + 1]! << 8);
        break;
      case IMM.Id:
        imm = bytes[p]! | (bytes[p + 1]! << 8) | (bytes[p + 2]! << 16) | (bytes[p + 3]! << 24);
        break;
      case IMM.Iz:
      case IMM.Jz:
        if (osz === 2) imm = ((bytes[p]! | (bytes[p + 1]! << 8)) << 16) >> 16;
        else imm = bytes[p]! | (bytes[p + 1]! << 8) | (bytes[p + 2]! << 16) | (bytes[p + 3]! << 24);
        immHi = imm >> 31;
        break;
      case IMM.Iv:
      case IMM.O:
        if (n === 2 || (k === IMM.Iv && osz === 2)) imm = bytes[p]! | (bytes[p + 1]! << 8);
        else {
          imm = bytes[p]! | (bytes[p + 1]! << 8) | (bytes[p + 2]! << 16) | (bytes[p + 3]! << 24);
          if ((k === IMM.Iv ? osz : asz) === 8)
            immHi = bytes[p + 4]! | (bytes[p + 5]! << 8) | (bytes[p + 6]! << 16) | (bytes[p + 7]! << 24);
        }
        break;
      case IMM.Ap:
        if (osz === 2) {
          imm = bytes[p]! | (bytes[p + 1]! << 8);
          imm2 = bytes[p + 2]! | (bytes[p + 3]! << 8);
        } else {
          imm = bytes[p]! | (bytes[p + 1]! << 8) | (bytes[p + 2]! << 16) | (bytes[p + 3]! << 24);
          imm2 = bytes[p + 4]! | (bytes[p + 5]! << 8);
        }
        break;
    }
    if (immk >> 4 === IMM.Ib) imm2 = bytes[p + n - 1]!;
    p += n;
  }

  const length = p - offset;
  out.prefixes = pfx;
  out.rex = (rexW << 3) | (rexR << 2) | (rexX << 1) | rexB;
  out.seg = seg;
  out.hasModrm = hasModrm;
  out.mod = mod;
  out.reg = ((modrm >> 3) & 7) | (rexR << 3);
  out.rm = (modrm & 7) | (rexB << 3);
  out.isMem = isMem;
  out.base = base;
  out.index = index;
  out.scale = scale;
  out.disp = disp;
  out.ripRel = ripRel;
  out.imm = imm;
  out.immHi = immHi;
  out.imm2 = imm2;
  out.vvvv = vvvv;
  out.vexL = vexL;
  out.byteRegsHigh = rex === 0 && !isVex;
  out.opSize = osz;
  out.addrSize = asz;
  out.mandatory = attr & (FA.MP66 | FA.MPREP) ? mpIdx : 0;
  if (form === 0) return finish(out, DecodeStatus.Invalid, length);
  // SDM Vol. 2 LOCK: #UD unless the instruction is lockable and its destination is memory.
  if (pfx & Prefix.LOCK && (!(attr & FA.LOCK) || !isMem)) return finish(out, DecodeStatus.Invalid, length);
  // SDM Vol. 2 2.3.6: VEX.vvvv must be 1111b when no operand uses it.
  if (isVex && vvvvRaw !== 0 && !(attr & FA.VVVV)) return finish(out, DecodeStatus.Invalid, length);
  // SDM Vol. 2 2.3.12: VSIB addressing needs a SIB byte (and 32/64-bit addressing).
  if (attr & FA.VSIB && (!isMem || asz === 2 || (modrm & 7) !== 4))
    return finish(out, DecodeStatus.Invalid, length);
  if (attr & (FA.SREG | FA.CREG | FA.DREG)) {
    const r = ((modrm >> 3) & 7) | (rexR << 3);
    if (attr & FA.SREG && ((r & 7) > 5 || (attr & FA.SREG_DST && (r & 7) === 1)))
      return finish(out, DecodeStatus.Invalid, length);
    // SDM Vol. 3A 2.5: CR1, CR5-CR7, CR9-CR15 are reserved (#UD); DR8-DR15 do not exist.
    if (attr & FA.CREG && r !== 0 && r !== 2 && r !== 3 && r !== 4 && r !== 8)
      return finish(out, DecodeStatus.Invalid, length);
    if (attr & FA.DREG && r > 7) return finish(out, DecodeStatus.Invalid, length);
  }
  out.op = FORM_OP[form]!;
  out.form = form;
  return finish(out, DecodeStatus.Ok, length);
}
