/**
 * The narrow interface the x87/SSE/MMX dispatch tables need from the executor, and the units
 * they run on. The executor implements `FpuHost` for the instruction being executed (its memory
 * operand, GPRs, EFLAGS, exceptions) and calls `X87_HANDLERS[insn.op]` / `SIMD_HANDLERS[insn.op]`.
 *
 * Before calling a handler the executor performs the checks that need system state (SDM Vol. 3
 * §2.5, Table 2-2; Vol. 1 §8.7, §13.2): x87 and MMX: CR0.EM or CR0.TS -> #NM; a pending x87
 * exception (`x87.pendingException()`) on a waiting x87 or MMX instruction -> #MF (CR0.NE = 1)
 * or FERR#; SSE: CR0.EM or !CR4.OSFXSR -> #UD, CR0.TS -> #NM; 16-byte alignment -> #GP(0).
 * After a non-control x87 instruction it records FIP/FDP/FOP with `x87.setLastInsn`.
 */
import type { Insn } from "../decoder/insn.js";
import { type SseState, SseState as SseUnit, type XmmFile, xmmFileOver } from "../simd/state.js";
import type { XExtState } from "./image.js";
import { X87 } from "./x87.js";

/**
 * What the handlers read of the decoded instruction: a decoder `Insn` fits, and so does the
 * executor's smaller record (cpu/operands.ts `XInsn`).
 */
export type UnitInsn = Pick<
  Insn,
  "op" | "opcode" | "opSize" | "prefixes" | "reg" | "rm" | "isMem" | "imm" | "byteRegsHigh"
>;

/** Exception vectors the handlers raise through `FpuHost.raise`. */
export const FpuVector = { UD: 6, NM: 7, GP: 13, MF: 16, XM: 19 } as const;

export interface FpuHost {
  /**
   * Read `bytes` of the current instruction's memory operand from offset `at` (default 0) into
   * buf[at..]; false after raising its fault. Alignment is checked for `at` = 0 only.
   */
  readMem(bytes: number, buf: Uint8Array, at?: number): boolean;
  /** Write buf[at..at + bytes) to the memory operand at offset `at`; false after raising its fault. */
  writeMem(bytes: number, buf: Uint8Array, at?: number): boolean;
  /** General-purpose register halves (reg 0..15). */
  gprLo(reg: number): number;
  gprHi(reg: number): number;
  /** Write a GPR with x86 rules: 4-byte writes zero the upper half in 64-bit mode, 2-byte writes merge. */
  setGpr(reg: number, bytes: 2 | 4 | 8, lo: number, hi: number): void;
  /** RFLAGS (low 32 bits) and an update of the bits in `mask`. */
  flags(): number;
  setFlags(mask: number, value: number): void;
  /** True in protected mode (selects the FSTENV/FSAVE layout); false in real and V86 mode. */
  protectedMode(): boolean;
  /** True in 64-bit mode (FXSAVE/XSAVE images then hold XMM8-15 too). */
  longMode(): boolean;
  /** XCR0 (for XSAVE/XRSTOR); low and high halves. */
  xcr0Lo(): number;
  xcr0Hi(): number;
  /** The compacted XSAVE form is supported (XSAVEC, CPUID.(0DH,1):EAX[1]); absent means no. */
  xsaveCompaction?(): boolean;
  /** IA32_XSS (low half): the supervisor components XSAVES/XRSTORS add to XCR0; absent means 0. */
  xssLo?(): number;
  /**
   * PKRU and its standard-form offset when the CPU has the PKRU component (CPUID.(0DH,0):EAX[9]), else
   * null (absent: null). XRSTOR/XRSTORS write the loaded value into it and call `xextLoaded`.
   */
  xext?(): XExtState | null;
  xextLoaded?(): void;
  /** Raise an exception; the handler returns right after. */
  raise(vector: number, errorCode: number): void;
}

/** Size of `FpUnits.buf`: the largest XSAVE area an executor may ask for (PKRU offset + 8 at most). */
export const XSAVE_BUF_BYTES = 4096;

/** The units the handlers work on, plus scratch buffers for memory operands. */
export class FpUnits {
  readonly x87: X87;
  readonly sse: SseState;
  /** MMX registers: the x87 significands (MMn = words 2n, 2n+1). */
  readonly mmx: XmmFile;
  /** Memory-operand scratch (up to an XSAVE area: the legacy region, header and PKRU at its offset). */
  readonly buf = new Uint8Array(XSAVE_BUF_BYTES);
  readonly dv = new DataView(this.buf.buffer);

  constructor(x87: X87 = new X87(), sse: SseState = new SseUnit()) {
    this.x87 = x87;
    this.sse = sse;
    this.mmx = xmmFileOver(x87.mant);
  }
}
