// The table-driven decoder: legacy prefixes, REX, VEX, opcode maps, ModRM/SIB/displacement and
// immediates (SDM Vol. 2 ch. 2). The per-opcode decisions come from src/generated/tables.ts,
// generated from data/*.txt; this file only knows the instruction format.

import { FORM_ATTR, FORM_IMM, FORM_OP, SLOT_MODRM, SLOT_ROOT, TREE } from "../generated/tables.js";
import { type DecodeStatus, type Insn, NO_REG, NO_SEG } from "./insn.js";

/** SDM Vol. 2 2.3.11: an instruction is at most 15 bytes; longer raises #GP(0). */
export const MAX_INSN_LENGTH = 15;

/** Decision-tree selectors: the generated SEL values, inlined (test/decoder.test.ts checks they match). */
export const enum Sel {
  MODE = 1,
  MP = 2,
  REXB = 3,
  L = 4,
  REG = 5,
  MOD = 6,
  RM = 7,
  W = 8,
  OS = 9,
  OS_D64 = 10,
  OS_F64 = 11,
  AS = 12,
}
/** Immediate kinds: the generated IMM values, inlined. */
export const enum Imm {
  Ib = 1,
  Ibs = 2,
  Iw = 3,
  Iz = 4,
  Iv = 5,
  Id = 6,
  Jb = 7,
  Jz = 8,
  O = 9,
  Ap = 10,
}
/** Form attribute bits: the generated FA values, inlined. */
export const enum Fa {
  LOCK = 1,
  REP = 2,
  REPE = 4,
  D64 = 8,
  F64 = 16,
  MP66 = 32,
  MPREP = 64,
  MEM = 128,
  PLUSR = 256,
  MODREG = 512,
  VEX = 1024,
  HLE = 4096,
  BND = 8192,
  I64 = 16384,
  O64 = 32768,
  VEXL0 = 65536,
  VVVV = 131072,
  SREG = 262144,
  SREG_DST = 524288,
  CREG = 1048576,
  DREG = 2097152,
  VSIB = 4194304,
}
/** Prefix bits and statuses from insn.ts, inlined for the hot path. */
export const enum Pf {
  LOCK = 1,
  REP = 2,
  REPNE = 4,
  OPSIZE = 8,
  ADDRSIZE = 16,
  REX = 32,
  VEX = 64,
  SEG = 128,
}
export const enum St {
  Ok = 0,
  Invalid = 1,
  TooLong = 2,
  Truncated = 3,
}

// 16-bit ModRM memory forms (SDM Vol. 2 Table 2-1): base and index per rm; BX=3 BP=5 SI=6 DI=7.
const BASE16 = [3, 3, 5, 5, 6, 7, 5, 3];
const INDEX16 = [6, 7, 6, 7, NO_REG, NO_REG, NO_REG, NO_REG];

// Prefix classes per byte: 1-6 segment override ES..GS (+1), then 66, 67, F0, F2, F3, REX.
const PK_OPSIZE = 7;
const PK_ADDRSIZE = 8;
const PK_LOCK = 9;
const PK_REPNE = 10;
const PK_REP = 11;
const PK_REX = 12;
const PREFIX_CLASS = new Uint8Array(256);
PREFIX_CLASS[0x26] = 1;
PREFIX_CLASS[0x2e] = 2;
PREFIX_CLASS[0x36] = 3;
PREFIX_CLASS[0x3e] = 4;
PREFIX_CLASS[0x64] = 5;
PREFIX_CLASS[0x65] = 6;
PREFIX_CLASS[0x66] = PK_OPSIZE;
PREFIX_CLASS[0x67] = PK_ADDRSIZE;
PREFIX_CLASS[0xf0] = PK_LOCK;
PREFIX_CLASS[0xf2] = PK_REPNE;
PREFIX_CLASS[0xf3] = PK_REP;
for (let i = 0x40; i < 0x50; i++) PREFIX_CLASS[i] = PK_REX;

// The ModRM.reg values (with REX.R) a form accepts, a bit each: only ES-GS are segment registers,
// CS is no destination; SDM Vol. 3A 2.5: CR1, CR5-CR7, CR9-CR15 are reserved, DR8-DR15 do not exist.
// A table, so that the check is the same code for every form (see `stop` in `decode`).
const FORM_REG_OK = new Uint16Array(FORM_ATTR.length);
for (let f = 0; f < FORM_ATTR.length; f++) {
  const a = FORM_ATTR[f]!;
  let ok = 0xffff;
  if (a & Fa.SREG) ok &= a & Fa.SREG_DST ? 0x3d3d : 0x3f3f;
  if (a & Fa.CREG) ok &= 0x011d;
  if (a & Fa.DREG) ok &= 0x00ff;
  FORM_REG_OK[f] = ok;
}

// The prefix bits of `rep` (0 none, 2 F3, 3 F2), and of the two without the F2/F3 bits.
const REP_PREFIX = Uint8Array.of(0, 0, Pf.REP, Pf.REPNE);
const NOT_REP = ~(Pf.REP | Pf.REPNE);

// The second opcode byte after 0F that escapes to a three-byte map (SDM Vol. 2 2.1.2).
const ESCAPE_MAP = new Uint8Array(256);
ESCAPE_MAP[0x38] = 2;
ESCAPE_MAP[0x3a] = 3;

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
  const len = bytes.length;
  // An offset outside `bytes` reads as an empty buffer: Truncated, length 0.
  const valid = offset >= 0 && offset < len && (offset | 0) === offset;
  const start = valid ? offset : 0;
  const hardEnd = start + MAX_INSN_LENGTH;
  // Reading at p >= lim fails: Truncated when the buffer ends first, TooLong when the limit does.
  const lim = valid ? Math.min(len, hardEnd) : 0;
  const cut: St = !valid || len < hardEnd ? St.Truncated : St.TooLong;
  const is64 = mode === 64;

  // Every early exit leaves the `parse` loop below (truncated or too long: `stop` stays `cut`; a bad
  // VEX sets it), and the code that writes a decoded instruction's fields then writes the reset
  // locals. One tail, not an exit per read: V8 optimises `decode` with no type feedback for a path
  // not yet taken, and throws the whole optimised function away when one is (a page-crossing
  // instruction, a rare form). For the same reason rare forms reuse code that every instruction
  // runs (the selector inputs, the 0F escape loop, the `ib2` byte, FORM_REG_OK) rather than
  // arithmetic of their own.
  let stop: St = cut;
  let p = start;
  let pfx = 0;
  let seg = NO_SEG;
  let rep = 0; // last of F2/F3: 2 = F3, 3 = F2 (the MP branch index), 0 = none
  let rex = 0; // 0x40..0x4F when a REX took effect
  let b = 0;
  let rexW = 0;
  let rexR = 0;
  let rexX = 0;
  let rexB = 0;
  let map = 0;
  let mpIdx = 0;
  let vexL = 0;
  let vvvv = 0;
  let vvvvRaw = 0;
  let isVex = false;
  let hasModrm = false;
  let modrm = 0;
  let osz = 0;
  let asz = 0;
  let form = 0;
  let attr = 0;
  let mod = 0;
  let isMem = false;
  let base = NO_REG;
  let index = NO_REG;
  let scale = 0;
  let disp = 0;
  let ripRel = false;
  let imm = 0;
  let immHi = 0;
  let imm2 = 0;
  // Runs once; leaving it early (`break`, or `break parse` from an inner loop) is an early exit.
  parse: for (;;) {
    // Legacy prefixes and REX (SDM Vol. 2 2.1.1, 2.2.1): any order, repeats allowed; the last
    // segment override and the last of F2/F3 win; a REX counts only directly before the opcode.
    for (;;) {
      if (p >= lim) break parse;
      b = bytes[p]!;
      const k = PREFIX_CLASS[b]!;
      if (k === 0) break;
      if (k === PK_REX) {
        if (!is64) break; // 40-4F are INC/DEC outside 64-bit mode
        rex = b;
        p++;
        continue;
      }
      // SDM Vol. 1 3.3.7.1: in 64-bit mode ES/CS/SS/DS overrides are ignored (they neither apply
      // nor cancel an earlier FS/GS); only FS and GS are recorded.
      if (k <= 6) {
        if (!is64 || k >= 5) seg = k - 1;
      } else if (k === PK_REPNE) rep = 3;
      else if (k === PK_REP) rep = 2;
      else pfx |= k === PK_OPSIZE ? Pf.OPSIZE : k === PK_ADDRSIZE ? Pf.ADDRSIZE : Pf.LOCK;
      rex = 0; // a legacy prefix after REX makes that REX ignored
      p++;
    }

    if (seg !== NO_SEG) pfx |= Pf.SEG;
    pfx |= REP_PREFIX[rep]!;

    if (rex !== 0) {
      pfx |= Pf.REX;
      rexW = (rex >> 3) & 1;
      rexR = (rex >> 2) & 1;
      rexX = (rex >> 1) & 1;
      rexB = rex & 1;
    }

    // Opcode, escape bytes and VEX.
    p++; // b is the opcode's first byte
    if (b === 0x0f) {
      // 0F xx, 0F 38 xx, 0F 3A xx: one loop, so the three-byte maps run the two-byte map's code.
      map = 1;
      for (;;) {
        if (p >= lim) break parse;
        b = bytes[p++]!;
        const esc = map === 1 ? ESCAPE_MAP[b]! : 0;
        if (esc === 0) break;
        map = esc;
      }
    } else if (b === 0xc4 || b === 0xc5) {
      if (p >= lim) break;
      const b1 = bytes[p]!;
      // SDM Vol. 2 2.3.5: outside 64-bit mode C4/C5 are LES/LDS unless ModRM.mod would be 11.
      if (is64 || b1 >= 0xc0) {
        isVex = true;
        p++;
        let mmmmm = 1;
        let b2 = b1;
        if (b === 0xc4) {
          if (p >= lim) break;
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
        pfx |= Pf.VEX;
        if (p >= lim) break;
        b = bytes[p++]!;
        // SDM Vol. 2 2.3.2: 66, F2, F3, LOCK or REX before VEX is #UD; an unknown map is #UD.
        if (mmmmm < 1 || mmmmm > 3 || rex !== 0 || rep !== 0 || (pfx & (Pf.OPSIZE | Pf.LOCK)) !== 0) {
          stop = St.Invalid;
          break;
        }
        map = mmmmm + 3;
      }
    }
    if (!isVex) {
      if (rep !== 0) mpIdx = rep;
      else if (pfx & Pf.OPSIZE) mpIdx = 1;
    }

    const slot = (map << 8) | b;
    hasModrm = SLOT_MODRM[slot] === 1;
    if (hasModrm) {
      if (p >= lim) break;
      modrm = bytes[p++]!;
    }

    // Operand and address size (SDM Vol. 1 3.6, Vol. 2 2.2.1.2).
    const o66 = (pfx & Pf.OPSIZE) !== 0;
    osz = is64 ? (rexW ? 8 : o66 ? 2 : 4) : mode === 32 ? (o66 ? 2 : 4) : o66 ? 4 : 2;
    const a67 = (pfx & Pf.ADDRSIZE) !== 0;
    asz = is64 ? (a67 ? 4 : 8) : mode === 32 ? (a67 ? 2 : 4) : a67 ? 4 : 2;

    // The selectors' inputs, computed for every instruction (see `stop`).
    const regSel = (modrm >> 3) & 7;
    const rmSel = modrm & 7;
    const modSel = modrm >= 0xc0 ? 1 : 0;
    const osSel = osz >> 2; // 2, 4, 8 -> 0, 1, 2 (outside 64-bit mode osz is 2 or 4)
    const asSel = asz >> 2;
    let node = SLOT_ROOT[slot]!;
    while (node < 0) {
      const i = ~node;
      const sel = TREE[i]!;
      let br = 0;
      switch (sel) {
        case Sel.MODE:
          br = is64 ? 1 : 0;
          break;
        case Sel.MP:
          br = mpIdx;
          break;
        case Sel.REXB:
          br = rexB;
          break;
        case Sel.L:
          br = vexL;
          break;
        case Sel.REG:
          br = regSel;
          break;
        case Sel.MOD:
          br = modSel;
          break;
        case Sel.RM:
          br = rmSel;
          break;
        case Sel.W:
          br = rexW;
          break;
        case Sel.OS:
          br = osSel;
          break;
        case Sel.OS_D64:
          br = is64 ? (o66 && !rexW ? 0 : 2) : osSel;
          break;
        case Sel.OS_F64:
          br = is64 ? 2 : osSel;
          break;
        case Sel.AS:
          br = asSel;
          break;
      }
      node = TREE[i + 1 + br]!;
    }
    form = node;
    attr = FORM_ATTR[form]!;

    // Operand size adjustments that depend on the form.
    if (attr & Fa.MP66) osz = rexW && is64 ? 8 : 4;
    else if (is64) {
      if (attr & Fa.F64) osz = 8;
      else if (attr & Fa.D64 && !(o66 && !rexW)) osz = 8;
    }

    // ModRM memory operand, SIB and displacement (SDM Vol. 2 2.1.5, 2.2.1.6).
    mod = modrm >> 6;
    if (hasModrm) {
      if (attr & Fa.MODREG) mod = 3;
      if (mod !== 3) {
        isMem = true;
        const rmb = rmSel;
        if (asz === 2) {
          if (mod === 0 && rmb === 6) {
            if (p + 2 > lim) break;
            disp = bytes[p]! | (bytes[p + 1]! << 8);
            p += 2;
          } else {
            base = BASE16[rmb]!;
            index = INDEX16[rmb]!;
            if (mod === 1) {
              if (p >= lim) break;
              disp = (bytes[p++]! << 24) >> 24;
            } else if (mod === 2) {
              if (p + 2 > lim) break;
              disp = ((bytes[p]! | (bytes[p + 1]! << 8)) << 16) >> 16;
              p += 2;
            }
          }
        } else {
          let dispBytes = mod === 1 ? 1 : mod === 2 ? 4 : 0;
          if (rmb === 4) {
            if (p >= lim) break;
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
            if (p >= lim) break;
            disp = (bytes[p++]! << 24) >> 24;
          } else if (dispBytes === 4) {
            if (p + 4 > lim) break;
            disp = bytes[p]! | (bytes[p + 1]! << 8) | (bytes[p + 2]! << 16) | (bytes[p + 3]! << 24);
            p += 4;
          }
        }
      }
    }

    // Immediates.
    const immk = FORM_IMM[form]!;
    if (immk !== 0) {
      let n = 0;
      const k = immk & 15;
      switch (k) {
        case Imm.Ib:
        case Imm.Ibs:
        case Imm.Jb:
          n = 1;
          break;
        case Imm.Iw:
          n = 2;
          break;
        case Imm.Id:
          n = 4;
          break;
        case Imm.Iz:
        case Imm.Jz:
          n = osz === 2 ? 2 : 4;
          break;
        case Imm.Iv:
          n = osz;
          break;
        case Imm.O:
          n = asz;
          break;
        case Imm.Ap:
          n = osz === 2 ? 4 : 6;
          break;
      }
      const ib2 = immk >> 4 === Imm.Ib; // a second immediate byte follows (ENTER, EXTRQ, INSERTQ)
      n += ib2 ? 1 : 0;
      if (p + n > lim) break;
      switch (k) {
        case Imm.Ib:
          imm = bytes[p]!;
          break;
        case Imm.Ibs:
        case Imm.Jb:
          imm = (bytes[p]! << 24) >> 24;
          immHi = imm >> 31;
          break;
        case Imm.Iw:
          imm = bytes[p]! | (bytes[p + 1]! << 8);
          break;
        case Imm.Id:
          imm = bytes[p]! | (bytes[p + 1]! << 8) | (bytes[p + 2]! << 16) | (bytes[p + 3]! << 24);
          break;
        case Imm.Iz:
        case Imm.Jz:
          if (osz === 2) imm = ((bytes[p]! | (bytes[p + 1]! << 8)) << 16) >> 16;
          else imm = bytes[p]! | (bytes[p + 1]! << 8) | (bytes[p + 2]! << 16) | (bytes[p + 3]! << 24);
          immHi = imm >> 31;
          break;
        case Imm.Iv:
        case Imm.O:
          if (n === 2 || (k === Imm.Iv && osz === 2)) imm = bytes[p]! | (bytes[p + 1]! << 8);
          else {
            imm = bytes[p]! | (bytes[p + 1]! << 8) | (bytes[p + 2]! << 16) | (bytes[p + 3]! << 24);
            if ((k === Imm.Iv ? osz : asz) === 8)
              immHi = bytes[p + 4]! | (bytes[p + 5]! << 8) | (bytes[p + 6]! << 16) | (bytes[p + 7]! << 24);
          }
          break;
        case Imm.Ap:
          if (osz === 2) {
            imm = bytes[p]! | (bytes[p + 1]! << 8);
            imm2 = bytes[p + 2]! | (bytes[p + 3]! << 8);
          } else {
            imm = bytes[p]! | (bytes[p + 1]! << 8) | (bytes[p + 2]! << 16) | (bytes[p + 3]! << 24);
            imm2 = bytes[p + 4]! | (bytes[p + 5]! << 8);
          }
          break;
      }
      const last = bytes[p + n - 1]!;
      if (ib2) imm2 = last;
      p += n;
    }
    stop = St.Ok;
    break;
  }

  let status = stop;
  if (status !== St.Ok) {
    // Nothing of a failed decode survives: the tail below then writes every field's reset value.
    pfx = 0;
    seg = NO_SEG;
    rex = 0;
    b = 0;
    rexW = 0;
    rexR = 0;
    rexX = 0;
    rexB = 0;
    map = 0;
    vvvv = 0;
    vexL = 0;
    isVex = false;
    hasModrm = false;
    modrm = 0;
    form = 0;
    attr = 0;
    mod = 0;
    isMem = false;
    base = NO_REG;
    index = NO_REG;
    scale = 0;
    disp = 0;
    ripRel = false;
    imm = 0;
    immHi = 0;
    imm2 = 0;
  }
  const reg = ((modrm >> 3) & 7) | (rexR << 3);
  if (status === St.Ok) {
    // An early exit writes no sizes: none were decoded.
    out.opSize = osz;
    out.addrSize = asz;
    if (form === 0) status = St.Invalid;
    // SDM Vol. 2 LOCK: #UD unless the instruction is lockable and its destination is memory.
    else if (pfx & Pf.LOCK && (!(attr & Fa.LOCK) || !isMem)) status = St.Invalid;
    // SDM Vol. 2 2.3.6: VEX.vvvv must be 1111b when no operand uses it.
    else if (isVex && vvvvRaw !== 0 && !(attr & Fa.VVVV)) status = St.Invalid;
    // SDM Vol. 2 2.3.12: VSIB addressing needs a SIB byte (and 32/64-bit addressing).
    else if (attr & Fa.VSIB && (!isMem || asz === 2 || (modrm & 7) !== 4)) status = St.Invalid;
    // SDM Vol. 3A 2.5 and the forms' Sreg, CRn, DRn operands: some ModRM.reg values are #UD.
    else if ((FORM_REG_OK[form]! & (1 << reg)) === 0) status = St.Invalid;
  }

  out.mode = mode;
  out.opcode = b;
  out.map = map;
  // insn.ts: REP/REPNE mean the prefix was not consumed as the form's mandatory prefix.
  out.prefixes = pfx & (attr & Fa.MPREP ? NOT_REP : -1);
  out.rex = (rexW << 3) | (rexR << 2) | (rexX << 1) | rexB;
  out.seg = seg;
  out.hasModrm = hasModrm;
  out.mod = mod;
  out.reg = reg;
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
  out.mandatory = attr & (Fa.MP66 | Fa.MPREP) ? mpIdx : 0;
  out.status = status as DecodeStatus;
  out.length = p - start;
  const ok = status === St.Ok;
  out.op = ok ? FORM_OP[form]! : 0;
  out.form = ok ? form : 0;
  return status as DecodeStatus;
}
