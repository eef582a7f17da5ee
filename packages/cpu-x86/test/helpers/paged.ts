// A paged 64-bit machine for system tests: 4-level page tables built in guest RAM, the built-in
// PageWalker, and exceptions caught by the intercept hook (the run stops on the faulting instruction
// with the vector and error code recorded) instead of an IDT.
import { Cpu, enterFlatLongMode, FlatMemory, InterceptKind, RunExit } from "../../src/index.js";

/** Page-table entry bits (SDM Vol. 3 Table 4-19). */
export const PTE = { P: 1, W: 2, U: 4, PS: 0x80, G: 0x100 } as const;

const PML4 = 0x1000;
const PDPT = 0x2000;
const PD = 0x3000;
const PT = 0x4000;
/** Code of the tests runs from this supervisor page; the low 2 MiB are identity-mapped 4 KiB pages. */
export const CODE = 0x10000;

export interface Fault {
  vec: number;
  err: number;
}

export class PagedMachine {
  readonly ram: Uint8Array;
  readonly dv: DataView;
  readonly cpu: Cpu;
  faults: Fault[] = [];
  /**
   * `cpu.dbHits` when the last exception was taken: under an intercept hook (VMX) a #DB's cause
   * (B0-B3, BS) is there, as the exit qualification, and DR6 is left alone.
   */
  dbHits = 0;

  /** `shared`: RAM in a SharedArrayBuffer (LOCK'd instructions then take the Atomics path). */
  constructor(cpl: 0 | 3 = 0, shared = false) {
    this.ram = new Uint8Array(shared ? new SharedArrayBuffer(8 << 20) : new ArrayBuffer(8 << 20));
    this.dv = new DataView(this.ram.buffer);
    this.cpu = new Cpu({ memory: new FlatMemory(this.ram) });
    this.w64(PML4, PDPT | PTE.P | PTE.W | PTE.U);
    this.w64(PDPT, PD | PTE.P | PTE.W | PTE.U);
    this.w64(PD, PT | PTE.P | PTE.W | PTE.U);
    // Identity map of 0..2 MiB, supervisor, writable.
    for (let p = 0; p < 512; p++) this.map(p * 4096, p * 4096, PTE.P | PTE.W);
    enterFlatLongMode(this.cpu, cpl);
    this.cpu.cr3Lo = PML4;
    this.cpu.tlbFlushAll();
    this.cpu.hooks = {
      intercept: (kind, a, b) => {
        if (kind !== InterceptKind.EXCEPTION) return false;
        this.faults.push({ vec: a, err: b });
        this.dbHits = this.cpu.dbHits;
        return true;
      },
    };
  }

  w64(at: number, lo: number, hi = 0): void {
    this.dv.setUint32(at, lo >>> 0, true);
    this.dv.setUint32(at + 4, hi >>> 0, true);
  }

  /** Maps the 4 KiB page at linear `lin` (< 2 MiB) to `phys` with PTE flags; `hi` is the PTE's high word. */
  map(lin: number, phys: number, flags: number, hi = 0): void {
    this.w64(PT + (lin >>> 12) * 8, phys | flags, hi);
  }

  /** Maps the 2 MiB page at linear `lin` (2 MiB .. 1 GiB) to `phys`. */
  mapLarge(lin: number, phys: number, flags: number): void {
    this.w64(PD + (lin >>> 21) * 8, phys | flags | PTE.PS);
  }

  /** Places code at CODE (or `at`) and points RIP at it. */
  load(bytes: number[], at = CODE): void {
    this.ram.set(bytes, at);
    this.cpu.notifyPhysicalWrite(at, bytes.length);
    this.cpu.ripLo = at;
    this.cpu.ripHi = 0;
  }

  reg(n: number): number {
    return this.cpu.r[n * 2]! >>> 0;
  }

  setReg(n: number, v: number): void {
    this.cpu.r[n * 2] = v;
    this.cpu.r[n * 2 + 1] = 0;
  }

  /** Runs until HLT or a fault; returns the fault (or null at HLT). */
  run(budget = 10_000): Fault | null {
    this.faults = [];
    this.cpu.halted = false;
    const exit = this.cpu.run(budget);
    if (exit === RunExit.INTERCEPT) return this.faults[0] ?? null;
    if (exit !== RunExit.HLT) throw new Error(`unexpected exit ${exit}: ${this.cpu.internalError}`);
    return null;
  }
}

/** Instruction bytes used by the tests (64-bit mode). */
export const I = {
  movRaxMemRbx: [0x48, 0x8b, 0x03], // mov rax, [rbx]
  movRcxMemRsi: [0x48, 0x8b, 0x0e], // mov rcx, [rsi]
  movMemRbxRax: [0x48, 0x89, 0x03], // mov [rbx], rax
  movEaxMemRbx1: [0x8b, 0x43, 0x01], // mov eax, [rbx+1]
  invlpgRbx: [0x0f, 0x01, 0x3b], // invlpg [rbx]
  invlpgRsi: [0x0f, 0x01, 0x3e], // invlpg [rsi]
  movCr3Rax: [0x0f, 0x22, 0xd8], // mov cr3, rax
  movRaxCr3: [0x0f, 0x20, 0xd8], // mov rax, cr3
  movCr4Rax: [0x0f, 0x22, 0xe0], // mov cr4, rax
  jmpRbx: [0xff, 0xe3], // jmp rbx
  stac: [0x0f, 0x01, 0xcb],
  clac: [0x0f, 0x01, 0xca],
  rdpkru: [0x0f, 0x01, 0xee],
  wrpkru: [0x0f, 0x01, 0xef],
  cpuid: [0x0f, 0xa2],
  hlt: [0xf4],
} as const;
