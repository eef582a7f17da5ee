/**
 * The CPU: the run loop over decoded blocks cached per physical page, event injection (NMI, external
 * interrupts, interrupt shadows), fault delivery, and the devices the CPU talks to.
 *
 * @example
 * const ram = new Uint8Array(1 << 20);
 * const cpu = new Cpu({ memory: new FlatMemory(ram) });
 * ram.set([0xb8, 0x2a, 0x00, 0xf4], 0x7c00); // mov ax, 42; hlt
 * cpu.setRealModeEntry(0, 0x7c00);
 * cpu.run(1000) === RunExit.HLT && cpu.r[0] === 42;
 */
import { decode } from "../decoder/decode.js";
import { DecodeStatus } from "../decoder/insn.js";
import { FpUnits } from "../fpu/host.js";
import { X87, type X87State } from "../fpu/x87.js";
import { SseState } from "../simd/state.js";
import { prepare } from "./dispatch.js";
import { EventType } from "./exceptions.js";
import { specialise } from "./exec-fast.js";
import { wrapLock } from "./exec-lock.js";
import { TaskSource, taskSwitch } from "./exec-task.js";
import { FpuBridge } from "./fpu-glue.js";
import {
  InterceptKind,
  type Intercepts,
  type InterruptSource,
  type OutputLine,
  type PhysicalMemory,
  type PortIo,
  type Translator,
  type TscClock,
} from "./interfaces.js";
import { type CompiledBlock, compileBlock, JIT_STRAIGHT_FACTOR, JIT_THRESHOLD } from "./jit.js";
import { isSysTransfer, REGION_MAX, type RegionBlock, succs } from "./jit-gen.js";
import { FAULT, TRANSLATION_EXIT, Vec } from "./memory.js";
import { BuildInsn, loadXInsn, newXInsn, type XInsn } from "./operands.js";
import type { CpuStateSnapshot } from "./state.js";
import { AR, CpuStateError, CR4, DR7_GD, F, M64, Seg } from "./state.js";
import { SysCpu } from "./sysregs.js";

/** The CPU snapshot: integer/SSE state plus the x87 unit. */
export interface CpuSnapshot extends CpuStateSnapshot {
  x87: X87State;
}

import { PageWalker } from "./walker.js";

/** Why `run` returned. */
export const RunExit = {
  /** The instruction budget is spent. */
  BUDGET: 0,
  /** HLT with no deliverable interrupt. */
  HLT: 1,
  /** Triple fault: the processor shut down (SDM Vol. 3 6.15, Interrupt 8). */
  SHUTDOWN: 2,
  /** An intercept hook took over an instruction or event (see `Intercepts`). */
  INTERCEPT: 3,
  /** The translator asked to stop (e.g. an EPT violation). */
  TRANSLATION: 4,
  /** A bug in the emulator (a JS exception inside an instruction); see `cpu.internalError`. */
  INTERNAL_ERROR: 5,
  /** `requestStop()` was called. */
  STOPPED: 6,
} as const;
export type RunExit = (typeof RunExit)[keyof typeof RunExit];

/** Self-modifying code (`Cpu.invalidateCodePage`): drops per window that make a page run uncached. */
const SMC_LIMIT = 16;
const SMC_WINDOW = 50_000;
const SMC_COOLDOWN = 200_000;

/** Jump-cache entries (a power of two). */
const JC_SIZE = 4096;
const JC_MASK = JC_SIZE - 1;
/** DR6.BS: the #DB is a single-step trap (SDM Vol. 3 18.2.3). */
const DR6_BS = 1 << 14;

/** A decoded straight-line block: runs until its last instruction (a branch, or the page end). */
export class Block {
  // Field order is layout: what the block runner reads on every dispatch (the link check, then the
  // chosen block's validity, instructions and compiled form) fills the object's first cache line.
  /**
   * Two cached successors (fall-through and taken) by linear RIP, each valid while its epoch
   * (`epoch` for l1, `l2Ep` for l2) is the CPU's `linkEpoch` or `globalLinkEpoch` (state.ts).
   */
  epoch = 0x7fffffff;
  l1: Block | null = null;
  l1Lo = 0;
  l1Hi = 0;
  /** False once its page's code was dropped (links to it are then ignored). */
  valid = true;
  readonly insns: XInsn[];
  /** Executions so far (the block is compiled at `jitThreshold` or `jitStraightThreshold`) and the compiled form. */
  compiled: CompiledBlock | null = null;
  /** Physical page of the code (-1: not cached, `crossPageBlock`). A small integer, never a double. */
  readonly pfn: number;
  hits = 0;
  l2: Block | null = null;
  l2Lo = 0;
  l2Hi = 0;
  l2Ep = 0x7fffffff;
  /** Decode mode the block was built for. */
  mode: 16 | 32 | 64 = 64;
  constructor(insns: XInsn[], pfn: number) {
    this.insns = insns;
    // `pfn` comes from the TLB's Float64Array: stored as is it would make the field a boxed double.
    this.pfn = pfn | 0;
  }
}

/** Port I/O that reads all-ones and ignores writes (no device on the bus). */
export const NO_PORTS: PortIo = {
  in: (_p, size) => (size === 1 ? 0xff : size === 2 ? 0xffff : -1),
  out: () => {},
};

/** An output line that goes nowhere (FERR# of a CPU on no platform). */
export const NO_LINE: OutputLine = { set: () => {} };

/** A flat RAM adapter: guest-physical 0 .. ram.length - 1 is RAM, the rest reads as all-ones MMIO. */
export class FlatMemory implements PhysicalMemory {
  constructor(readonly ram: Uint8Array) {}
  ramPage(pfn: number, out: { u8: Uint8Array; offset: number }): boolean {
    const off = pfn * 4096;
    if (off + 4096 > this.ram.length) return false;
    out.u8 = this.ram;
    out.offset = off;
    return true;
  }
  mmioRead(_gpa: number, size: 1 | 2 | 4): number {
    return size === 1 ? 0xff : size === 2 ? 0xffff : -1;
  }
  mmioWrite(): void {}
}

export interface CpuOptions {
  memory: PhysicalMemory;
  /** Linear -> physical translation; default: the built-in `PageWalker`. */
  translator?: Translator;
  io?: PortIo;
  intercepts?: Intercepts | null;
  interrupts?: InterruptSource | null;
  clock?: TscClock;
  /** The FERR# output (x87 errors with CR0.NE = 0; see `Cpu.ferr`); default: not connected. */
  ferr?: OutputLine;
  /** Compile hot blocks (default true). */
  jit?: boolean;
  /**
   * Executions of a block before it is compiled when the blocks compiled with it form a loop
   * (default `JIT_THRESHOLD`; at least 1).
   */
  jitThreshold?: number;
  /**
   * Executions of a block before it is compiled when they do not (default
   * `JIT_STRAIGHT_FACTOR` x `jitThreshold`; at least `jitThreshold`).
   */
  jitStraightThreshold?: number;
}

/**
 * Whether the blocks of a region reach one another in a cycle: `edges[k]` are the page offsets
 * block `k` may continue at (offsets outside the region are exits).
 */
function hasCycle(blocks: readonly RegionBlock[], edges: readonly number[][]): boolean {
  const at = new Map<number, number>();
  for (let k = 0; k < blocks.length; k++) at.set(blocks[k]!.off, k);
  // Iterative depth-first search: 0 unvisited, 1 on the path, 2 done.
  const state = new Uint8Array(blocks.length);
  for (let root = 0; root < blocks.length; root++) {
    if (state[root] !== 0) continue;
    const stack: [number, number][] = [[root, 0]];
    state[root] = 1;
    while (stack.length > 0) {
      const top = stack[stack.length - 1]!;
      const [k, e] = top;
      if (e === edges[k]!.length) {
        state[k] = 2;
        stack.pop();
        continue;
      }
      top[1]++;
      const j = at.get(edges[k]![e]!);
      if (j === undefined) continue;
      if (state[j] === 1) return true;
      if (state[j] === 0) {
        state[j] = 1;
        stack.push([j, 0]);
      }
    }
  }
  return false;
}

export class Cpu extends SysCpu {
  io: PortIo;
  hooks: Intercepts | null;
  interrupts: InterruptSource | null;
  clock: TscClock;
  /** Level of the INTR line (set by the interrupt controller). */
  irqPending = false;
  /** An NMI is latched. */
  nmiPending = false;
  /**
   * FERR# and IGNNE# of the PC-compatible x87 error scheme (SDM Vol. 1 8.7; fpu-glue.ts `pendingX87`):
   * the output line, its level, and the IGNNE# input the platform drives (while set, a waiting x87
   * instruction runs despite a pending exception with CR0.NE = 0).
   */
  ferr: OutputLine;
  ferrAsserted = false;
  ignne = false;
  /**
   * VMX "interrupt-window exiting" / "NMI-window exiting": when set, `run` offers INTERRUPT_WINDOW
   * (NMI_WINDOW) to the intercept hook at the first instruction boundary where an external interrupt
   * (NMI) could be delivered (SDM Vol. 3 26.7.5, 26.7.6).
   */
  interruptWindowExiting = false;
  nmiWindowExiting = false;
  /** Compile hot blocks to JS functions (jit.ts); off runs the plain interpreter. */
  jit = true;
  /** Executions of a block before it is compiled, when its region loops (`CpuOptions.jitThreshold`). */
  jitThreshold = JIT_THRESHOLD;
  /** Executions of a block before it is compiled, when its region has no loop. */
  jitStraightThreshold = JIT_THRESHOLD * JIT_STRAIGHT_FACTOR;
  /** Instructions retired since construction. */
  executed = 0;
  exitReason: RunExit = RunExit.BUDGET;
  /** Message of the last INTERNAL_ERROR exit. */
  internalError = "";
  /** The x87 and SSE/MMX units; XMM registers are `this.xmm`'s buffer, MXCSR lives in `fpUnits.sse`. */
  readonly fpUnits = new FpUnits(new X87(), new SseState(this.xmm.buffer as ArrayBuffer));
  readonly fpuBridge: FpuBridge = new FpuBridge(this);
  /** Byte views of the XMM and MMX registers (PINSR/PEXTR). */
  readonly xmmU8 = new Uint8Array(this.xmm.buffer);
  readonly mmxU8 = new Uint8Array(this.fpUnits.x87.mant.buffer);
  /** Far pointer operand scratch (exec-far.ts). */
  farOff = 0;
  farOffHi = 0;
  farSel = 0;
  /** Task-switch scratch: the incoming GPRs and selectors (exec-task.ts). */
  readonly taskScratch = new Int32Array(8);
  readonly taskSelScratch = new Int32Array(6);
  /** Call-gate parameter scratch (up to 31 entries, exec-gates.ts). */
  readonly paramScratch = new Int32Array(32);
  /**
   * DR6 B0-B3 (instruction breakpoints) and BS (single-step) of the #DB being raised (SDM Vol. 3
   * 18.2.3): merged into DR6 when the #DB is delivered; under VMX the intercept hook reports them as
   * the exit qualification instead, which has the same bit layout (SDM Vol. 3C 28.2.1, DR6
   * unchanged). 0 for every other exception.
   */
  dbHits = 0;
  /** Data / I/O breakpoint hits of a MOV SS or POP SS, reported after the next instruction. */
  private dbPending = 0;
  private stopRequested = false;
  private readonly scratch = new Uint8Array(16);
  /** The block builder's record, reused for every instruction decoded (operands.ts). */
  private readonly build = new BuildInsn();
  private readonly crossInsn = newXInsn(this.build);
  private readonly crossBlock = new Block([this.crossInsn], -1);
  /** Whether `currentBlock`'s fetch went through a global translation (its links may use `globalLinkEpoch`). */
  private fetchGlobal = false;
  /**
   * Self-modifying code: per physical page, the decoded-code drops in the current window
   * (`smcHits`), and the pages that are decoded one instruction at a time, uncached, until the
   * retired count in `smcPages` (see `invalidateCodePage`).
   */
  private readonly smcHits = new Map<number, { n: number; start: number }>();
  private readonly smcPages = new Map<number, number>();
  /** The block that ran last and ended normally (its links are tried first). */
  private prevBlock: Block | null = null;
  /**
   * Jump cache (QEMU's tb_jmp_cache): the last block found at a RIP, direct-mapped by RIP, for the
   * branches whose targets the two links of a block do not hold (returns, indirect calls). An entry
   * serves while the epoch it was filled in is current, the same rule the links follow.
   */
  private readonly jcBlock: (Block | null)[] = new Array<Block | null>(JC_SIZE).fill(null);
  private readonly jcLo = new Int32Array(JC_SIZE);
  private readonly jcHi = new Int32Array(JC_SIZE);
  private readonly jcEpoch = new Int32Array(JC_SIZE).fill(0x7fffffff);

  constructor(opts: CpuOptions) {
    super(opts.memory, opts.translator ?? { translate: () => false });
    this.mxcsrBox = this.fpUnits.sse;
    if (!opts.translator) this.translator = new PageWalker(this, opts.memory);
    this.io = opts.io ?? NO_PORTS;
    this.hooks = opts.intercepts ?? null;
    this.interrupts = opts.interrupts ?? null;
    this.ferr = opts.ferr ?? NO_LINE;
    this.clock = opts.clock ?? { now: () => this.executed };
    this.jit = opts.jit ?? true;
    this.jitThreshold = Math.max(1, Math.floor(opts.jitThreshold ?? JIT_THRESHOLD));
    this.jitStraightThreshold = Math.max(
      this.jitThreshold,
      Math.floor(opts.jitStraightThreshold ?? this.jitThreshold * JIT_STRAIGHT_FACTOR),
    );
    this.reset();
  }

  override taskGate(sel: number, retLo: number, err: number): void {
    taskSwitch(this, sel, TaskSource.INT, retLo, err);
  }

  override clockNow(): number {
    return this.clock.now();
  }

  /** RESET (SDM Vol. 3 9.1): registers to their power-on values, caches dropped. */
  reset(): void {
    this.resetState();
    this.lzOp = 0;
    this.segCacheAll();
    this.updateMode();
    this.updateAccessMasks();
    this.tlbFlushAll();
    this.codePages.clear();
    this.smcHits.clear();
    this.smcPages.clear();
    this.shutdown = false;
    this.fpUnits.x87.init();
    this.mxcsr = 0x1f80;
    // FERR# follows SW.ES, which RESET clears.
    if (this.ferrAsserted) {
      this.ferrAsserted = false;
      this.ferr.set(false);
    }
  }

  /** Convenience for tests and loaders: real mode at CS:IP with flat 64 KiB segments. */
  setRealModeEntry(cs: number, ip: number): void {
    this.loadReal(Seg.CS, cs);
    for (const s of [Seg.DS, Seg.ES, Seg.SS, Seg.FS, Seg.GS]) this.loadReal(s, cs);
    this.segAttr[Seg.CS] = AR.P | AR.S | AR.CODE | AR.RW | AR.ACCESSED;
    this.ripLo = ip;
    this.ripHi = 0;
    this.updateMode();
  }

  /** Asks a running `run` to return `STOPPED` at the next block boundary (e.g. from an MMIO callback). */
  requestStop(): void {
    this.stopRequested = true;
  }

  /** Drops the TLB after the owner changed memory slots or paging structures behind the CPU's back. */
  flushTranslations(): void {
    this.tlbFlushAll();
  }

  override save(): CpuSnapshot {
    return { ...super.save(), x87: this.fpUnits.x87.save() };
  }

  /** Restores a snapshot (validated; throws `CpuStateError`) and drops cached translations and code. */
  override restore(s: CpuSnapshot): void {
    if (s === null || typeof s !== "object") throw new CpuStateError("snapshot: expected an object");
    if (s.x87 === null || typeof s.x87 !== "object") throw new CpuStateError("x87: expected an object");
    const x = X87.restore(s.x87);
    if (!(x instanceof X87)) throw new CpuStateError(`x87.${x.field}: bad value`);
    // All or nothing: a snapshot that fails validation halfway leaves the CPU as it was.
    const backup = super.save();
    try {
      super.restore(s);
    } catch (e) {
      super.restore(backup);
      throw e;
    }
    const mine = this.fpUnits.x87;
    mine.mant.set(x.mant);
    mine.se.set(x.se);
    mine.cw = x.cw;
    mine.setSw(x.getSw());
    mine.tw = x.tw;
    mine.fop = x.fop;
    mine.fip = x.fip;
    mine.fipHi = x.fipHi;
    mine.fcs = x.fcs;
    mine.fdp = x.fdp;
    mine.fdpHi = x.fdpHi;
    mine.fds = x.fds;
    this.lzOp = 0;
    this.segCacheAll();
    this.updateAccessMasks();
    this.tlbFlushAll();
    this.codePages.clear();
  }

  /** Offers an event or instruction to the intercept hook; true when it was taken (the caller stops). */
  intercept(kind: InterceptKind, a: number, b: number): boolean {
    const h = this.hooks;
    if (h === null || !h.intercept(kind, a, b)) return false;
    this.exitReason = RunExit.INTERCEPT;
    this.nipLo = this.ripLo;
    this.nipHi = this.ripHi;
    this.stopBlock = true;
    return true;
  }

  /**
   * Executes up to `budget` instructions. Never throws: guest faults become architected exceptions,
   * emulator bugs become `INTERNAL_ERROR`.
   */
  run(budget: number): RunExit {
    this.exitReason = RunExit.BUDGET;
    // Exceptions and injected events also consume budget, so a loop of faults (a handler that
    // faults again, forever) cannot hang the host.
    let end = this.executed + budget;
    while (this.executed < end) {
      if (this.shutdown) return RunExit.SHUTDOWN;
      if (this.stopRequested) {
        this.stopRequested = false;
        return RunExit.STOPPED;
      }
      try {
        if (this.interruptShadow !== 0) {
          // One instruction runs before interrupts are recognised (SDM Vol. 3 6.8.3).
          this.interruptShadow = 0;
          this.prevBlock = null;
          if ((this.dr7 & 0xff) !== 0 || (this.flags & F.TF) !== 0) this.stepTraced();
          else this.runBlocks(this.executed + 1);
        } else {
          if ((this.interruptWindowExiting || this.nmiWindowExiting) && this.windowExit())
            return RunExit.INTERCEPT;
          if ((this.nmiPending || this.irqPending) && this.injectEvents()) {
            this.prevBlock = null;
            end--;
            if (this.exitReason !== RunExit.BUDGET) return this.exitReason;
            continue;
          }
          if (this.halted) return RunExit.HLT;
          // An enabled DR0-3 (DR7 L/G bits) or RFLAGS.TF makes the CPU go one instruction at a
          // time, checking each fetch address or trapping after each; without them this is the
          // only cost per block.
          if ((this.dr7 & 0xff) !== 0 || (this.flags & F.TF) !== 0) this.stepTraced();
          else this.runBlocks(end);
        }
      } catch (e) {
        this.prevBlock = null;
        this.implicitSup = false;
        this.updateAccessMasks();
        if (e === FAULT) {
          end--;
          this.handleFault();
        } else if (e === TRANSLATION_EXIT) return RunExit.TRANSLATION;
        else {
          this.internalError = e instanceof Error ? `${e.message}\n${e.stack ?? ""}` : String(e);
          return RunExit.INTERNAL_ERROR;
        }
      }
      if (this.exitReason !== RunExit.BUDGET) return this.exitReason;
    }
    return this.shutdown ? RunExit.SHUTDOWN : RunExit.BUDGET;
  }

  /** Offers an open interrupt/NMI window to the hook (VMX window exiting); true when it took it. */
  private windowExit(): boolean {
    if (this.nmiWindowExiting && !this.nmiBlocked && this.intercept(InterceptKind.NMI_WINDOW, 0, 0))
      return true;
    if (this.interruptWindowExiting && (this.flags & F.IF) !== 0) {
      return this.intercept(InterceptKind.INTERRUPT_WINDOW, 0, 0);
    }
    return false;
  }

  /** Delivers a pending NMI or external interrupt if one is deliverable; true if one was. */
  private injectEvents(): boolean {
    if (this.nmiPending && !this.nmiBlocked) {
      if (this.intercept(InterceptKind.NMI, Vec.NMI, 0)) return true;
      this.nmiPending = false;
      this.nmiBlocked = true; // until the next IRET (SDM Vol. 3 6.7.1)
      this.deliverEvent(Vec.NMI, EventType.NMI, false, 0, this.ripLo, this.ripHi);
      return true;
    }
    if (this.irqPending && (this.flags & F.IF) !== 0) {
      if (this.intercept(InterceptKind.EXTERNAL_INTERRUPT, -1, 0)) return true;
      const src = this.interrupts;
      if (src === null) return false;
      const vec = src.acknowledge();
      if (vec < 0) return false;
      this.deliverEvent(vec & 0xff, EventType.EXTERNAL, false, 0, this.ripLo, this.ripHi);
      return true;
    }
    return false;
  }

  /**
   * One instruction with breakpoints or single-stepping on. RFLAGS.TF at the start of an instruction
   * makes it trap with #DB and DR6.BS once it completes (SDM Vol. 3 18.3.1.4), so the instruction that
   * sets TF (POPF, IRET) does not trap and the one that clears it does. No trap when the instruction
   * faulted (the fault is delivered instead), stopped for a VM exit, or invoked a software interrupt
   * (INT n, INT3, INTO, INT1: their delivery clears TF, and the trap is not taken, as on hardware);
   * after MOV SS / POP SS it waits one more instruction, since those block debug exceptions for one
   * instruction (SDM Vol. 3 6.8.3). REP string instructions run one iteration per step (exec-string).
   */
  private stepTraced(): void {
    const traced = (this.flags & F.TF) !== 0;
    const executed = this.executed;
    const soft = this.softEvents;
    let data = 0;
    if ((this.dr7 & 0xff) !== 0) data = this.stepWithBreakpoints();
    else this.runBlocks(executed + 1);
    if (this.executed === executed || this.exitReason !== RunExit.BUDGET) return;
    if (this.interruptShadow === 2) {
      // MOV SS / POP SS hold their own data breakpoints until after the next instruction (SDM
      // Vol. 3 6.8.3); their single-step trap is not taken.
      this.dbPending |= data;
      return;
    }
    let hits = data | this.dbPending;
    this.dbPending = 0;
    if (traced && this.softEvents === soft) hits |= DR6_BS;
    if (hits === 0) return;
    // One #DB reports the single-step trap and every data / I/O breakpoint the instruction hit.
    this.dbHits |= hits;
    this.raise(Vec.DB);
  }

  /** Setting RFLAGS.TF ends the block: the next instruction must run traced. */
  override setRflags(v: number): void {
    const old = this.flags;
    super.setRflags(v);
    if ((this.flags & ~old & F.TF) !== 0) this.stopBlock = true;
  }

  /**
   * One instruction under enabled DR7 breakpoints; returns the DR6 B0-B3 bits of the data and I/O
   * breakpoints it hit, for the caller to report as a trap. Instruction breakpoints (DR7 R/Wn = 00)
   * are faults taken before the instruction executes (SDM Vol. 3 18.3.1.1), unless RFLAGS.RF is set;
   * the processor clears RF once an instruction completes (SDM Vol. 3 18.3.1.1, "RF"). RF does not
   * suppress data or I/O breakpoints (same section).
   *
   * Data breakpoints (R/Wn = 01 writes, 11 reads or writes) and I/O breakpoints (10 with CR4.DE = 1)
   * are matched only here: `dbData` turns the memory fast paths off for this one instruction, so the
   * slow access functions see every data access (stack, string, page-crossing, and the implicit
   * supervisor accesses to descriptor tables and the TSS, which hardware matches too: Linux refuses
   * data breakpoints on the GDT, IDT, TSS and entry stacks for that reason). Not matched: the
   * accesses of delivering an exception or an external interrupt (they happen outside any
   * instruction here).
   */
  private stepWithBreakpoints(): number {
    const rf = (this.flags & F.RF) !== 0;
    if (!rf) {
      const d7 = this.dr7;
      const lin = this.ripLinearLo();
      const hi = this.codeMode === 64 ? this.ripHi : 0;
      let hits = 0;
      for (let n = 0; n < 4; n++) {
        if (((d7 >>> (2 * n)) & 3) === 0 || ((d7 >>> (16 + 4 * n)) & 3) !== 0) continue;
        const dHi = this.codeMode === 64 ? this.dr[2 * n + 1]! : 0;
        if (this.dr[2 * n] === lin && dHi === hi) hits |= 1 << n;
      }
      if (hits !== 0) {
        this.dbHits = hits;
        this.raise(Vec.DB);
      }
    }
    let data = 0;
    if (!this.dataBreakpointsArmed()) {
      this.runBlocks(this.executed + 1);
    } else {
      this.dbData = true;
      this.dbDataHits = 0;
      this.updateAccessMasks();
      try {
        this.runBlocks(this.executed + 1);
        data = this.dbDataHits;
      } finally {
        // Also when the instruction faulted: its hits go with it, and the fast paths come back.
        this.dbData = false;
        this.dbDataHits = 0;
        this.updateAccessMasks();
      }
    }
    if (rf && this.exitReason === RunExit.BUDGET) this.flags &= ~F.RF;
    return data;
  }

  /** True when DR7 enables a data breakpoint (R/W = 01 or 11), or an I/O one (10) with CR4.DE = 1. */
  private dataBreakpointsArmed(): boolean {
    const d7 = this.dr7;
    const de = (this.cr4 & CR4.DE) !== 0;
    for (let n = 0; n < 4; n++) {
      const rw = (d7 >>> (16 + 4 * n)) & 3;
      if (((d7 >>> (2 * n)) & 3) !== 0 && (rw === 1 || rw === 3 || (rw === 2 && de))) return true;
    }
    return false;
  }

  /** Low half of the linear address of CS:RIP (CS.base added outside 64-bit mode, SDM Vol. 3 3.4). */
  private ripLinearLo(): number {
    return this.codeMode === 64 ? this.ripLo : (this.ripLo + this.segBaseLo[Seg.CS]!) | 0;
  }

  /** Delivers the exception recorded by `raise` (or hands it to the intercept hook). */
  private handleFault(): void {
    const vec = this.faultVec;
    const err = this.faultHasErr ? this.faultErr : -1;
    const hits = this.dbHits;
    // Breakpoint hits a MOV SS held for the instruction after it go when that instruction faults.
    this.dbPending = 0;
    if (this.hooks !== null && this.intercept(InterceptKind.EXCEPTION, vec, err)) {
      this.dbHits = 0;
      return;
    }
    if (hits !== 0) {
      // SDM Vol. 3 18.2.3: B0-B3 report the breakpoints hit; the processor never clears DR6.
      this.dr6 |= hits;
      this.dbHits = 0;
    }
    // SDM Vol. 3 18.2.4: entering the #DB handler clears DR7.GD, so that it can use the debug
    // registers (not on a VM exit: the handler is not entered).
    if (vec === Vec.DB) this.dr7 &= ~DR7_GD;
    if (vec === Vec.PF) {
      this.cr2Lo = this.pfLo;
      this.cr2Hi = this.pfHi;
    }
    this.deliverEvent(vec, EventType.HW_EXCEPTION, this.faultHasErr, this.faultErr, this.ripLo, this.ripHi);
    if (this.shutdown && this.hooks !== null) this.intercept(InterceptKind.TRIPLE_FAULT, 0, 0);
  }

  /**
   * Runs blocks from the current RIP until the instruction count reaches `end` or something needs
   * `run`'s attention (an event, a stop, an exit); following a block straight into the next saves a
   * return to `run` per block, which costs as much as a few instructions.
   */
  private runBlocks(end: number): void {
    for (;;) {
      const limit = end - this.executed;
      const prev = this.prevBlock;
      let b: Block | null = null;
      const lo = this.ripLo;
      const hi = this.ripHi;
      // A link or jump-cache entry serves under the epoch it was made in: `linkEpoch`, or for code
      // fetched through a global translation `globalLinkEpoch`, which MOV CR3 leaves alone.
      const ep = this.linkEpoch;
      const gep = this.globalLinkEpoch;
      if (prev !== null) {
        const l1 = prev.l1;
        if (
          l1 !== null &&
          prev.l1Lo === lo &&
          prev.l1Hi === hi &&
          (prev.epoch === ep || prev.epoch === gep) &&
          l1.valid
        )
          b = l1;
        else {
          const l2 = prev.l2;
          if (
            l2 !== null &&
            prev.l2Lo === lo &&
            prev.l2Hi === hi &&
            (prev.l2Ep === ep || prev.l2Ep === gep) &&
            l2.valid
          )
            b = l2;
        }
      }
      if (b === null) {
        // Keyed by linear address: in real mode the same IP under another CS is other code.
        const lin = this.ripLinearLo();
        const j = (lin ^ (lin >>> 10) ^ hi) & JC_MASK;
        const cached = this.jcBlock[j]!;
        let bep = this.jcEpoch[j]!;
        if (
          cached !== null &&
          this.jcLo[j] === lin &&
          this.jcHi[j] === hi &&
          (bep === ep || bep === gep) &&
          cached.valid
        ) {
          b = cached;
        } else {
          b = this.currentBlock();
          // currentBlock may have changed the epochs (a TLB fill after a #PF drops links).
          bep = this.fetchGlobal ? this.globalLinkEpoch : this.linkEpoch;
          if (b.pfn >= 0) {
            this.jcBlock[j] = b;
            this.jcLo[j] = lin;
            this.jcHi[j] = hi;
            this.jcEpoch[j] = bep;
          }
        }
        if (prev !== null && b.pfn >= 0) {
          const l1 = prev.l1;
          if (l1 === null || !l1.valid || (prev.epoch !== ep && prev.epoch !== gep)) {
            prev.l1 = b;
            prev.l1Lo = lo;
            prev.l1Hi = hi;
            prev.epoch = bep;
          } else {
            prev.l2 = b;
            prev.l2Lo = lo;
            prev.l2Hi = hi;
            prev.l2Ep = bep;
          }
        }
      }
      this.prevBlock = null;
      const insns = b.insns;
      // A block reaching its threshold is compiled and runs compiled at once: `jitThreshold` when
      // its region loops, `jitStraightThreshold` when not. Single steps (TF, DR7 breakpoints:
      // `limit` 1) always interpret, so every access takes the checked paths.
      if (b.compiled === null && this.jit && b.pfn >= 0) {
        const h = ++b.hits;
        if (h === this.jitThreshold || h === this.jitStraightThreshold) this.compile(b, h);
      }
      if (b.compiled !== null && insns.length <= limit && limit > 1) {
        this.curCodePfn = b.pfn;
        this.codeInvalidated = false;
        this.stopBlock = false;
        b.compiled(this, end);
        if (this.stopBlock || this.codeInvalidated || !b.valid) return;
        this.prevBlock = b;
        if (this.mustLeave(end)) return;
        continue;
      }
      const n = Math.min(insns.length, limit);
      this.curCodePfn = b.pfn;
      this.codeInvalidated = false;
      this.stopBlock = false;
      for (let k = 0; k < n; k++) {
        const i = insns[k]!;
        const nl = (this.ripLo >>> 0) + i.length;
        if (this.codeMode === 64) {
          this.nipLo = nl | 0;
          this.nipHi = nl > 0xffffffff ? (this.ripHi + 1) | 0 : this.ripHi;
        } else {
          this.nipLo = this.codeMode === 16 ? nl & 0xffff : nl | 0;
          this.nipHi = 0;
        }
        this.curInsn = i;
        i.fn(this, i);
        this.ripLo = this.nipLo;
        this.ripHi = this.nipHi;
        this.executed++;
        if (this.stopBlock || this.codeInvalidated) return;
      }
      if (b.pfn < 0 || !b.valid) return;
      this.prevBlock = b;
      if (this.mustLeave(end)) return;
    }
  }

  /**
   * True when `run` must look before the next block: the checks at the top of its loop. Generated
   * loops (jit-gen.ts) call it too, after anything that may have raised an event.
   */
  mustLeave(end: number): boolean {
    return (
      this.executed >= end ||
      this.exitReason !== RunExit.BUDGET ||
      this.irqPending ||
      this.nmiPending ||
      this.interruptShadow !== 0 ||
      this.interruptWindowExiting ||
      this.nmiWindowExiting ||
      this.halted ||
      this.stopRequested ||
      this.shutdown ||
      (this.dr7 & 0xff) !== 0
    );
  }

  /**
   * `b` reached `hits` executions: compiles it with its region (`regionAt`), unless this is
   * `jitThreshold` and the region has no loop, which waits for `jitStraightThreshold`.
   */
  private compile(b: Block, hits: number): void {
    const r = this.regionAt(b);
    if (hits === this.jitThreshold && hits < this.jitStraightThreshold && !r.loops) return;
    b.compiled = compileBlock(r.blocks, b.mode, this.tlbTagLo.length - 1);
  }

  /**
   * The blocks to compile with `b` (about to run at RIP): in 64-bit mode, `b` and the hot decoded
   * blocks of the same code page its branches and fall-throughs reach, breadth first, at most
   * REGION_MAX (jit-gen.ts); in the other modes `b` alone. `loops`: the blocks' branches form a
   * cycle, a loop the compiled function can go round without returning.
   */
  private regionAt(b: Block): { blocks: RegionBlock[]; loops: boolean } {
    const off0 = this.ripLinearLo() & 0xfff;
    const out: RegionBlock[] = [{ insns: b.insns, off: off0 }];
    const page = this.codePages.get(b.pfn);
    if (b.mode !== 64 || page === undefined) {
      const total = b.insns.reduce((s, i) => s + i.length, 0);
      return { blocks: out, loops: succs(out[0]!, total).includes(off0) };
    }
    const seen = new Set<number>([off0]);
    const edges: number[][] = [];
    for (let q = 0; q < out.length; q++) {
      const rb = out[q]!;
      const total = rb.insns.reduce((s, i) => s + i.length, 0);
      const next = [...succs(rb, total), ...this.sysSuccs(rb, total)].filter((s) => s >= 0 && s < 4096);
      edges.push(next);
      for (const s of next) {
        if (seen.has(s) || out.length >= REGION_MAX) continue;
        seen.add(s);
        const nb = page.blocks.get((s << 2) | 2) as Block | undefined;
        // Only blocks about as hot as `b`: a rarely taken path in a generated function is code V8
        // optimised without type feedback, and reaching it deoptimises the whole region.
        const hot = nb !== undefined && (nb.compiled !== null || nb.hits >= this.jitThreshold >> 2);
        if (hot && nb.valid && nb.mode === 64) out.push({ insns: nb.insns, off: s });
      }
    }
    return { blocks: out, loops: hasCycle(out, edges) };
  }

  /**
   * Page offsets where a SYSCALL or SYSRET ending `rb` will likely go on (jit-gen.ts continues there
   * inside the region when it does): IA32_LSTAR and RCX as they are now, when in the page at RIP,
   * and the instruction after the block, where a SYSRET returns to; -1 for a target in another page.
   */
  private sysSuccs(rb: RegionBlock, total: number): number[] {
    if (!isSysTransfer(rb.insns[rb.insns.length - 1]!)) return [];
    const inPage = (lo: number, hi: number): number =>
      hi === this.ripHi && ((lo ^ this.ripLo) & -4096) === 0 ? lo & 0xfff : -1;
    const m = this.msr64;
    return [inPage(m[M64.lstar * 2]!, m[M64.lstar * 2 + 1]!), inPage(this.r[2]!, this.r[3]!), rb.off + total];
  }

  /**
   * A write dropped `pfn`'s decoded code. A page whose code is dropped SMC_LIMIT times within
   * SMC_WINDOW retired instructions (code that rewrites itself as it runs, a guest's own JIT, a
   * fuzzer) is then run uncached, one instruction decoded at a time, for SMC_COOLDOWN
   * instructions: decoding a block, write-protecting the page and dropping it all again for nearly
   * every instruction costs far more (a block and its records per instruction, mostly garbage).
   */
  override invalidateCodePage(pfn: number): void {
    if (this.codePages.has(pfn)) {
      let h = this.smcHits.get(pfn);
      if (h === undefined || this.executed - h.start > SMC_WINDOW) {
        if (this.smcHits.size > 4096) this.smcHits.clear();
        h = { n: 0, start: this.executed };
        this.smcHits.set(pfn, h);
      }
      if (++h.n >= SMC_LIMIT) {
        this.smcHits.delete(pfn);
        this.smcPages.set(pfn, this.executed + SMC_COOLDOWN);
      }
    }
    super.invalidateCodePage(pfn);
  }

  /** Finds or builds the decoded block at CS:RIP. */
  private currentBlock(): Block {
    let lo = this.ripLo;
    let hi = this.ripHi;
    if (this.codeMode !== 64) {
      // Legacy modes: fetches are checked against the CS limit (SDM Vol. 3 5.3).
      if (lo >>> 0 > this.segLimit[Seg.CS]! >>> 0) this.raise(Vec.GP, 0);
      lo = (lo + this.segBaseLo[Seg.CS]!) | 0;
      hi = 0;
    }
    const ti = this.fetchLookup(lo, hi);
    this.fetchGlobal = this.tlbIsGlobal(ti);
    const off = lo & 0xfff;
    const mode = this.codeMode;
    const key = (off << 2) | (mode === 16 ? 0 : mode === 32 ? 1 : 2);
    if (this.tlbIsMmio(ti)) return this.crossPageBlock(lo, hi, mode);
    const pfn = this.tlbPfn[ti]!;
    if (this.smcPages.size !== 0) {
      const until = this.smcPages.get(pfn);
      if (until !== undefined) {
        if (this.executed < until) return this.crossPageBlock(lo, hi, mode);
        this.smcPages.delete(pfn);
      }
    }
    let page = this.codePages.get(pfn);
    if (page !== undefined) {
      const b = page.blocks.get(key);
      if (b !== undefined) return b as Block;
    } else {
      page = { blocks: new Map() };
      this.codePages.set(pfn, page);
      this.protectCodePage(pfn);
    }
    const view = this.tlbView[ti]!;
    const base = this.tlbOff[ti]!;
    const bytes = view.subarray(base, base + 4096);
    const insns: XInsn[] = [];
    const bi = this.build;
    let p = off;
    while (p < 4096 && insns.length < 64) {
      const st = decode(bytes, p, mode, bi);
      if (st === DecodeStatus.Truncated) break; // crosses into the next page: its own block
      const plain = prepare(bi, st);
      specialise(bi);
      wrapLock(bi);
      insns.push(newXInsn(bi));
      p += bi.length;
      if (!plain) break;
    }
    if (insns.length === 0) return this.crossPageBlock(lo, hi, mode);
    const b = new Block(insns, pfn);
    b.mode = mode;
    page.blocks.set(key, b);
    return b;
  }

  /**
   * An instruction that crosses a page boundary, runs from MMIO or from a page of self-modifying
   * code (`smcPages`): decoded every time, never cached.
   */
  private crossPageBlock(lo: number, hi: number, mode: 16 | 32 | 64): Block {
    const buf = this.scratch;
    let n = 0;
    const first = Math.min(15, 4096 - (lo & 0xfff));
    for (; n < first; n++) buf[n] = this.fetch8((lo + n) | 0, hi);
    const bi = this.build;
    let st = decode(buf.subarray(0, n), 0, mode, bi);
    if (st === DecodeStatus.Truncated) {
      for (; n < 15; n++) {
        const a = (lo >>> 0) + n;
        buf[n] = this.fetch8(a | 0, a > 0xffffffff ? (hi + 1) | 0 : hi);
      }
      st = decode(buf.subarray(0, 15), 0, mode, bi);
    }
    prepare(bi, st);
    specialise(bi);
    wrapLock(bi);
    // The same record every time, rewritten: the same map as the cached blocks' records.
    loadXInsn(this.crossInsn, bi);
    return this.crossBlock;
  }
}
