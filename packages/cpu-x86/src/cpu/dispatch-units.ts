/**
 * Block-build-time dispatch for x87, SSE and MMX instructions: the units' handler tables (src/fpu,
 * src/simd) behind the executor's pre-checks, and the data moves the executor owns (fpu-glue.ts).
 */
import { Prefix } from "../decoder/insn.js";
import { X87_HANDLERS } from "../fpu/dispatch.js";
import { Op } from "../generated/ops.js";
import { SIMD_HANDLERS } from "../simd/dispatch.js";
import * as S from "./exec-system.js";
import * as G from "./fpu-glue.js";
import type { BuildInsn, XHandler } from "./operands.js";

type H = XHandler;
const h = (f: unknown): H => f as H;

/** x87, SSE and MMX: the units' handler tables, plus the data moves the executor owns (fpu-glue.ts). */
export function prepareUnits(i: BuildInsn): boolean {
  const op = i.op;
  const b = i.opcode;
  const x87 = X87_HANDLERS[op];
  if (x87 !== undefined && i.map === 0) {
    i.inner = x87;
    // FOP (SDM Vol. 1 8.1.8): the opcode's low 3 bits and the ModRM byte.
    i.k = ((b & 7) << 8) | (i.hasModrm ? (i.mod << 6) | ((i.reg & 7) << 3) | (i.rm & 7) : 0);
    i.fn = h(G.x87Exec);
    return true;
  }
  i.mmx = isMmx(i);
  const mp = i.mandatory;
  switch (op) {
    case Op.FWAIT:
      i.fn = h(G.fwait);
      return true;
    case Op.XSAVE:
    case Op.XSAVE64:
    case Op.XSAVEOPT:
    case Op.XSAVEOPT64:
    case Op.XSAVEC:
    case Op.XSAVEC64:
    case Op.XRSTOR:
    case Op.XRSTOR64:
    case Op.XSAVES:
    case Op.XSAVES64:
    case Op.XRSTORS:
    case Op.XRSTORS64:
      i.inner = SIMD_HANDLERS[op]!;
      // XSAVES/XRSTORS have their own pre-checks (CPL 0, the VMX intercept).
      i.fn = h(
        op === Op.XSAVES || op === Op.XSAVES64 || op === Op.XRSTORS || op === Op.XRSTORS64
          ? G.xsavesExec
          : G.xsaveExec,
      );
      return true;
    case Op.MOVUPS:
    case Op.MOVUPD:
    case Op.MOVAPS:
    case Op.MOVAPD:
    case Op.MOVDQA:
    case Op.MOVDQU:
    case Op.LDDQU:
    case Op.MOVNTPS:
    case Op.MOVNTPD:
    case Op.MOVNTDQ:
    case Op.MOVNTDQA:
      i.k = b === 0x10 || b === 0x28 || b === 0x6f || b === 0xf0 || (i.map === 2 && b === 0x2a) ? 0 : 1;
      if (op === Op.MOVNTPS || op === Op.MOVNTPD || op === Op.MOVNTDQ) i.k = 1;
      if (op === Op.MOVNTDQA) i.k = 0;
      i.fn = h(G.movX128);
      return true;
    case Op.MOVSS:
      i.k = b === 0x10 ? 0 : 1;
      i.fn = h(G.movXPart);
      return true;
    case Op.MOVSD:
      i.k = b === 0x10 ? 2 : 3;
      i.fn = h(G.movXPart);
      return true;
    case Op.MOVLPS:
    case Op.MOVLPD:
    case Op.MOVHLPS:
      i.k = b === 0x12 ? 6 : 7;
      i.fn = h(G.movXPart);
      return true;
    case Op.MOVHPS:
    case Op.MOVHPD:
    case Op.MOVLHPS:
      i.k = b === 0x16 ? 8 : 9;
      i.fn = h(G.movXPart);
      return true;
    case Op.MOVD:
    case Op.MOVQ:
      if (b === 0x6e || b === 0x7e) {
        if (mp === 2 && b === 0x7e) {
          i.k = 4; // F3 0F 7E: MOVQ xmm, xmm/m64
          i.fn = h(G.movXPart);
        } else {
          i.k = b === 0x6e ? 0 : 1;
          i.fn = h(G.movdq);
        }
        return true;
      }
      if (b === 0xd6 && mp === 1) {
        i.k = 5;
        i.fn = h(G.movXPart);
        return true;
      }
      if (b === 0x6f || b === 0x7f) {
        i.k = b === 0x6f ? 0 : 1;
        i.fn = h(G.movqMmx);
        return true;
      }
      break;
    case Op.PINSRB:
    case Op.PINSRW:
    case Op.PINSRD:
    case Op.PINSRQ:
      i.k = op === Op.PINSRB ? 1 : op === Op.PINSRW ? 2 : op === Op.PINSRD ? 4 : 8;
      i.fn = h(G.pinsr);
      return true;
    case Op.PEXTRB:
    case Op.PEXTRW:
    case Op.PEXTRD:
    case Op.PEXTRQ:
    case Op.EXTRACTPS:
      i.k = op === Op.PEXTRB ? 1 : op === Op.PEXTRW ? 2 : op === Op.PEXTRQ ? 8 : 4;
      i.fn = h(G.pextr);
      return true;
  }
  const simd = SIMD_HANDLERS[op];
  if (simd !== undefined) {
    i.inner = simd;
    i.k = mmxDest(i);
    i.fn = h(G.simdExec);
    return true;
  }
  // Not implemented (CLAC/STAC without SMAP, RSM, AVX while not exposed...): #UD.
  i.fn = h(S.ud);
  return false;
}

/** An MMX form: no 66/F2/F3 mandatory prefix in the 0F map. */
function isMmx(i: BuildInsn): boolean {
  return (
    i.mandatory === 0 &&
    i.map === 1 &&
    ((i.opcode >= 0x60 && i.opcode <= 0x7f) || i.opcode >= 0xd0 || i.opcode === 0xc4 || i.opcode === 0xc5)
  );
}

/** MMX ops whose destination is not an MMX register (a GPR, memory or an XMM register). */
const MMX_NO_MM_DEST = new Set<number>([
  Op.PEXTRW,
  Op.PMOVMSKB,
  Op.MASKMOVQ,
  Op.MOVNTQ,
  Op.EMMS,
  Op.CVTPI2PS,
  Op.CVTPI2PD,
  Op.MOVQ2DQ,
]);

/**
 * The MMX register an MMX-form op of the unit tables writes, or -1. Writing MMn sets bits 79:64 of
 * the x87 register to all ones (SDM Vol. 1 9.5.1; the host CPU agrees, found by the difftest's x87
 * comparison): the 0F forms without a mandatory prefix, the SSSE3 0F 38 forms and PALIGNR (0F 3A 0F).
 */
function mmxDest(i: BuildInsn): number {
  if (i.mandatory !== 0 || (i.prefixes & Prefix.OPSIZE) !== 0 || MMX_NO_MM_DEST.has(i.op)) return -1;
  const o = i.opcode;
  if (i.map === 1) {
    if (o >= 0x71 && o <= 0x73) return i.rm & 7; // shift by immediate: rm is the destination
    if (isMmx(i) || o === 0x2c || o === 0x2d) return i.reg & 7;
    return -1;
  }
  if (i.map === 2 && (o <= 0x0b || (o >= 0x1c && o <= 0x1e))) return i.reg & 7;
  if (i.map === 3 && o === 0x0f) return i.reg & 7;
  return -1;
}
