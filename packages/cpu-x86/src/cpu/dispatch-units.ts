/**
 * Block-build-time dispatch for x87, SSE and MMX instructions: the units' handler tables (src/fpu,
 * src/simd) behind the executor's pre-checks, and the data moves the executor owns (fpu-glue.ts).
 */
import { X87_HANDLERS } from "../fpu/dispatch.js";
import { Op } from "../generated/ops.js";
import { SIMD_HANDLERS } from "../simd/dispatch.js";
import * as S from "./exec-system.js";
import * as G from "./fpu-glue.js";
import type { XInsn } from "./operands.js";

type H = XInsn["fn"];
const h = (f: unknown): H => f as H;

/** x87, SSE and MMX: the units' handler tables, plus the data moves the executor owns (fpu-glue.ts). */
export function prepareUnits(i: XInsn): boolean {
  const op = i.op;
  const b = i.opcode;
  const x87 = X87_HANDLERS[op];
  if (x87 !== undefined && i.map === 0) {
    i.fpu = x87;
    i.fn = h(G.x87Exec);
    return true;
  }
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
      i.fpu = SIMD_HANDLERS[op]!;
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
    i.fpu = simd;
    i.fn = h(G.simdExec);
    return true;
  }
  // Not implemented (CLAC/STAC without SMAP, RSM, AVX while not exposed...): #UD.
  i.fn = h(S.ud);
  return false;
}
