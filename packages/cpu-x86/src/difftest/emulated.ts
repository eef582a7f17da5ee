/**
 * Runs a snippet on cpu-x86 in 64-bit user mode with the same memory layout as the native harness:
 * a RWX code page at CODE_BASE (filled with INT3 after the snippet) and a RW, non-executable data page
 * at DATA_BASE; every other linear address faults with the #PF error code Linux reports (P=0, W, U, I).
 * Exceptions are caught with the intercept hook, so the fault state is the state at the instruction.
 */
import { Cpu, RunExit } from "../cpu/cpu.js";
import {
  InterceptKind as IK,
  type InterceptKind,
  TranslateFault,
  type TranslateResult,
} from "../cpu/interfaces.js";
import { enterFlatLongMode } from "../cpu/setup.js";
import { AR } from "../cpu/state.js";
import { fxrstor, fxsave } from "../fpu/image.js";
import {
  CODE_BASE,
  DATA_BASE,
  FX,
  SEL_CODE16,
  SEL_DATA16,
  type SnippetIn,
  type SnippetOut,
  WIN,
  WIN_OFF,
} from "./records.js";

const CODE_PFN = CODE_BASE / 4096;
const DATA_PFN = DATA_BASE / 4096;

export class EmulatedRunner {
  readonly code = new Uint8Array(4096);
  /** Shared memory, so LOCK-prefixed instructions take the Atomics path (exec-lock.ts). */
  readonly data = new Uint8Array(new SharedArrayBuffer(4096));
  readonly cpu: Cpu;
  private vec = -1;
  private err = 0;
  /** FXSAVE image scratch: the snippet's x87 state goes in and comes out through it. */
  private readonly fxImage = new Uint8Array(512);

  /** `jit`: compile every block before it first runs (the block compiler checked against the host). */
  constructor(jit = false) {
    const code = this.code;
    const data = this.data;
    this.cpu = new Cpu({
      jit,
      jitThreshold: 1,
      jitStraightThreshold: 1,
      memory: {
        ramPage(pfn, out) {
          if (pfn === CODE_PFN) out.u8 = code;
          else if (pfn === DATA_PFN) out.u8 = data;
          else return false;
          out.offset = 0;
          return true;
        },
        mmioRead: () => 0,
        mmioWrite: () => {},
      },
      translator: {
        translate(lo: number, hi: number, access: number, out: TranslateResult): boolean {
          const page = lo & ~0xfff;
          if (hi === 0 && (page === CODE_BASE || page === DATA_BASE)) {
            out.paddr = lo >>> 0;
            out.writable = true;
            out.user = true;
            out.nx = page === DATA_BASE;
            out.global = false;
            out.pageSize = 4096;
            out.fault = TranslateFault.NONE;
            return true;
          }
          out.fault = TranslateFault.PAGE_FAULT;
          // The upper half is Linux's kernel space: present but supervisor-only (P=1).
          out.errorCode = (access & 1 ? 2 : 0) | 4 | (access & 4 ? 16 : 0) | (hi < 0 ? 1 : 0);
          return false;
        },
      },
      intercepts: {
        intercept: (kind: InterceptKind, a: number, b: number): boolean => {
          if (kind !== IK.EXCEPTION) return false;
          this.vec = a;
          this.err = Math.max(b, 0);
          return true;
        },
      },
    });
    this.code.fill(0xcc);
  }

  run(s: SnippetIn, o: SnippetOut, budget = 100000): void {
    const c = this.cpu;
    this.code.fill(0xcc); // every snippet starts from a fresh code page, as in the harness
    this.code.set(s.code);
    this.data.fill(0);
    this.data.set(s.mem, WIN_OFF);
    c.notifyPhysicalWrite(CODE_BASE, 4096);
    enterFlatLongMode(c, 3);
    // Linux's user selectors: CS 0x33, SS 0x2b, null FS/GS; the harness loads DS/ES with 0x2b.
    c.segSel[1] = 0x33;
    c.segSel[2] = 0x2b;
    c.segSel[0] = c.segSel[3] = 0x2b;
    c.segSel[4] = c.segSel[5] = 0;
    if (s.mode === 32) {
      // Compatibility mode: CS 0x23 (32-bit code), DS/ES 0x2b as the harness loads them.
      c.segSel[1] = 0x23;
      c.segAttr[1] = AR.P | AR.S | AR.CODE | AR.RW | AR.ACCESSED | AR.DB | AR.G | (3 << AR.DPL_SHIFT);
      c.segCacheAll();
      c.updateMode();
    }
    if (s.mode === 16) {
      // The harness's LDT segments: 16-bit code at CODE_BASE, 16-bit data (SS, DS, ES) at DATA_BASE,
      // 64 KiB each, DPL 3.
      const dpl3 = 3 << AR.DPL_SHIFT;
      c.segSel[1] = SEL_CODE16;
      c.segBaseLo[1] = CODE_BASE;
      c.segLimit[1] = 0xffff;
      c.segAttr[1] = AR.P | AR.S | AR.CODE | AR.RW | AR.ACCESSED | dpl3;
      for (const sg of [0, 2, 3]) {
        c.segSel[sg] = SEL_DATA16;
        c.segBaseLo[sg] = DATA_BASE;
        c.segLimit[sg] = 0xffff;
        c.segAttr[sg] = AR.P | AR.S | AR.RW | AR.ACCESSED | dpl3;
      }
      c.segCacheAll();
      c.updateMode();
    }
    c.r.set(s.regs);
    c.setRflags(s.rflags);
    // x87 state as the harness loads it into the signal frame: FXRSTOR of the same bytes.
    const img = this.fxImage;
    img.fill(0);
    img.set(s.fx);
    fxrstor(c.fpUnits.x87, c.fpUnits.sse, img, 0, true, 16);
    c.xmm.set(s.xmm);
    c.mxcsr = s.mxcsr;
    const start = s.mode === 16 ? 0 : CODE_BASE;
    c.ripLo = start;
    c.ripHi = 0;
    c.halted = false;
    c.shutdown = false;
    this.vec = -1;
    const exit = c.run(budget);
    o.regs.set(c.r);
    o.ripLo = c.ripLo;
    o.ripHi = c.ripHi;
    o.rflags = c.getRflags();
    o.xmm.set(c.xmm);
    o.mxcsr = c.mxcsr;
    fxsave(c.fpUnits.x87, c.fpUnits.sse, img, 0, true, 16);
    o.fx.set(img.subarray(0, FX));
    o.err = 0;
    o.addrLo = 0;
    o.addrHi = 0;
    if (exit === RunExit.INTERCEPT) {
      if (this.vec === 3 && c.ripLo === start + s.code.length && c.ripHi === 0) o.trapno = -1;
      else {
        // INT3 and INTO are traps: the state is after the instruction.
        if ((this.vec === 3 || this.vec === 4) && c.curInsn) {
          const nl = (c.ripLo >>> 0) + c.curInsn.length;
          o.ripLo = nl | 0;
        }
        o.trapno = this.vec;
        o.err = this.err;
        if (this.vec === 14) {
          o.addrLo = c.pfLo;
          o.addrHi = c.pfHi;
        }
      }
    } else {
      // Budget spent or another exit: report as a pseudo-vector the comparison will flag.
      o.trapno = 1000 + exit;
      o.err = 0;
      if (exit === RunExit.INTERNAL_ERROR) o.err = 1;
    }
    o.mem.set(this.data.subarray(WIN_OFF, WIN_OFF + WIN));
    o.outsideOff = -1;
    for (let i = 0; i < 4096; i++) {
      if (i === WIN_OFF) i += WIN;
      if (i < 4096 && this.data[i] !== 0) {
        o.outsideOff = i;
        o.outsideVal = this.data[i]!;
        break;
      }
    }
  }
}
