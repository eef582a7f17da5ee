/**
 * What the CPU reaches outside RAM while the guest runs: MMIO (in-kernel LAPIC/IOAPIC and
 * ioeventfds first, then userspace) and, while the kernel emulates a string I/O instruction, ports.
 *
 * A userspace MMIO *write* is posted: the instruction completes, the CPU stops after it, and the
 * write becomes KVM_EXIT_MMIO (KVM's emulator likewise completes the instruction before exiting).
 * A userspace *read* cannot complete without userspace: the instruction is abandoned before it has
 * any effect (RIP stays on it; the abort travels as an exception the intercept hook takes over),
 * the read becomes KVM_EXIT_MMIO, and on the next KVM_RUN the instruction re-executes with the data
 * userspace filled in replayed to it (KVM's complete_emulated_mmio). REP string instructions stop
 * after each iteration that touches userspace, as KVM's emulator does for MMIO.
 */
import { type Cpu, type PhysicalMemory, type PortIo, Prefix } from "@tskvm/cpu-x86";
import { ExitReason } from "@tskvm/vmx";
import type { Vcpu } from "../vcpu.js";
import type { NonRootHooks } from "./hooks.js";

/** A posted write or a pending read: `pio` for ports, else MMIO. */
export interface Access {
  pio: boolean;
  addr: number;
  size: 1 | 2 | 4;
  value: number;
  /** `cpu.executed` when it happened: accesses with the same count belong to one instruction. */
  insn: number;
}

/** An answered read, replayed to the re-executed instruction. */
interface Replay {
  pio: boolean;
  addr: number;
  size: number;
  value: number;
}

export class GuestBus implements PhysicalMemory, PortIo {
  /** Posted userspace writes, oldest first. */
  readonly posted: Access[] = [];
  /** The read the last abort was for. */
  pendingRead: Access | null = null;
  /** Answers for the instruction being re-executed, consumed in order from `cursor`. */
  private replay: Replay[] = [];
  private cursor = 0;
  /** Set when the last CPU run ended in a read abort. */
  aborted = false;

  constructor(
    private readonly vcpu: Vcpu,
    private readonly cpu: () => Cpu,
    private readonly hooks: NonRootHooks,
  ) {}

  get replaying(): boolean {
    return this.replay.length > 0;
  }

  /** Userspace answered `pendingRead`: queue the value for the re-execution. */
  answer(value: number): void {
    const r = this.pendingRead;
    if (r === null) return;
    this.replay.push({ pio: r.pio, addr: r.addr, size: r.size, value });
    this.pendingRead = null;
  }

  /** The instruction retired: its answers are spent. */
  retired(): void {
    this.replay = [];
    this.cursor = 0;
  }

  /** Drops answers and posted writes (userspace changed the registers under a pending exit). */
  reset(): void {
    this.retired();
    this.pendingRead = null;
    this.posted.length = 0;
  }

  ramPage(pfn: number, out: { u8: Uint8Array; offset: number }, forWrite?: boolean): boolean {
    return this.vcpu.vm.memory.ramPage(pfn, out, forWrite === true);
  }

  mmioRead(gpa: number, size: 1 | 2 | 4): number {
    const r = this.fromReplay(false, gpa, size);
    if (r !== undefined) return r;
    const v = this.vcpu.vm.mmioRead(this.vcpu.index, gpa, size);
    if (v !== undefined) return v;
    return this.abortRead(false, gpa, size, ExitReason.EPT_VIOLATION, 1n);
  }

  mmioWrite(gpa: number, size: 1 | 2 | 4, value: number): void {
    if (this.vcpu.vm.mmioWrite(this.vcpu.index, gpa, size, value >>> 0)) {
      // An in-kernel device may have raised an interrupt (ICR self-IPI, EOI of a level
      // interrupt): leave the slice so the run loop injects it.
      if (this.vcpu.hasInterrupt()) this.cpu().requestStop();
      return;
    }
    this.post(false, gpa, size, value);
  }

  in(port: number, size: 1 | 2 | 4): number {
    const r = this.fromReplay(true, port, size);
    if (r !== undefined) return r;
    const v = this.vcpu.vm.ioIn(port, size);
    if (v !== undefined) return v;
    return this.abortRead(true, port, size, ExitReason.IO_INSTRUCTION, 0n);
  }

  out(port: number, size: 1 | 2 | 4, value: number): void {
    if (this.vcpu.vm.ioOut(port, size, value >>> 0)) return;
    this.post(true, port, size, value);
  }

  private fromReplay(pio: boolean, addr: number, size: number): number | undefined {
    const e = this.replay[this.cursor];
    if (e === undefined || e.pio !== pio || e.addr !== addr || e.size !== size) return undefined;
    this.cursor++;
    return e.value;
  }

  private post(pio: boolean, addr: number, size: 1 | 2 | 4, value: number): void {
    const cpu = this.cpu();
    this.posted.push({ pio, addr, size, value: value >>> 0, insn: cpu.executed });
    cpu.stopBlock = true;
    if (this.isRepString(cpu)) {
      // Stop after this iteration with RIP on the instruction: the next run resumes the REP.
      cpu.nipLo = cpu.ripLo;
      cpu.nipHi = cpu.ripHi;
    }
    cpu.requestStop();
  }

  private abortRead(pio: boolean, addr: number, size: 1 | 2 | 4, reason: number, qual: bigint): never {
    const cpu = this.cpu();
    // Writes this same instruction posted will be made again when it re-executes.
    while (this.posted.length > 0 && this.posted[this.posted.length - 1]!.insn === cpu.executed)
      this.posted.pop();
    this.pendingRead = { pio, addr, size, value: 0, insn: cpu.executed };
    if (this.isRepString(cpu)) {
      // Earlier iterations retired (their registers moved on): their answers are spent.
      this.replay.splice(0, this.cursor);
    }
    this.cursor = 0;
    this.aborted = true;
    this.hooks.abort = {
      reason,
      qualification: pio ? BigInt(((size - 1) | 8 | 0x10 | ((addr & 0xffff) << 16)) >>> 0) : qual,
      gpa: pio ? 0 : addr,
    };
    // Any vector: the hook takes the "exception" over before delivery and reports the abort.
    return cpu.raise(13, 0);
  }

  private isRepString(cpu: Cpu): boolean {
    const i = cpu.curInsn;
    return i !== null && (i.prefixes & (Prefix.REP | Prefix.REPNE)) !== 0 && STRING_OPS.has(i.op);
  }
}

import { Op } from "@tskvm/cpu-x86";

const STRING_OPS = new Set<number>(
  [
    "MOVSB",
    "MOVSW",
    "MOVSD",
    "MOVSQ",
    "STOSB",
    "STOSW",
    "STOSD",
    "STOSQ",
    "LODSB",
    "LODSW",
    "LODSD",
    "LODSQ",
    "INSB",
    "INSW",
    "INSD",
    "OUTSB",
    "OUTSW",
    "OUTSD",
    "CMPSB",
    "CMPSW",
    "CMPSD",
    "CMPSQ",
    "SCASB",
    "SCASW",
    "SCASD",
    "SCASQ",
  ]
    .map((n) => (Op as Record<string, number>)[n])
    .filter((x): x is number => x !== undefined),
);
