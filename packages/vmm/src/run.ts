/**
 * Running a VM on `@tskvm/kvm-api`: the memory slots, the in-kernel irqchip and PIT, the vCPUs
 * with the VMX backend (`attachVmxBackend`) and the boot state, then the KVM_RUN loop a VMM
 * runs: port I/O and MMIO exits go to this package's buses, everything else ends the run with
 * its reason. The loop yields to the event loop between KVM_RUN slices, so console input and
 * control actions are handled while the guest runs.
 */
import {
  attachVmxBackend,
  DeterministicClock,
  KVM_MP_STATE_HALTED,
  KVM_MP_STATE_INIT_RECEIVED,
  KVM_MP_STATE_UNINITIALIZED,
  Kvm,
  type KvmExit,
  type KvmSegment,
  type Vm as KvmVm,
  type Vcpu,
} from "@tskvm/kvm-api";
import type { BootCpuState, SegmentState } from "./boot/cpu-state.js";
import type { MmioBus, PortBus } from "./devices/bus.js";
import type { GuestRam } from "./memory.js";

/** How a run ended. */
export type VmExit =
  /** isa-debug-exit: the guest chose this status ((value << 1) | 1). */
  | { kind: "debug-exit"; status: number }
  /** The guest reset the machine (i8042 0xFE: Linux's `reboot`). */
  | { kind: "reset" }
  /** A `stop` action ended the run. */
  | { kind: "stopped" }
  /** Triple fault (KVM_EXIT_SHUTDOWN). */
  | { kind: "shutdown" }
  /**
   * Every vCPU stopped for good: halted with interrupts disabled and no NMI pending, or waiting
   * for a SIPI nobody can send. This is how Linux powers off a machine without ACPI
   * (`poweroff` -> "reboot: System halted", native_machine_halt -> stop_this_cpu).
   */
  | { kind: "halted" }
  /** KVM_RUN could not go on: entry failure, internal error, an exit no device handles. */
  | { kind: "error"; reason: string };

/** The kvm-api side of one VM. */
export interface KvmMachine {
  kvm: Kvm;
  vm: KvmVm;
  vcpus: Vcpu[];
}

/**
 * Runs of a looping code region before the vCPU compiles it to JavaScript (cpu-x86's JIT; the
 * CPU's own default is 20,000, tuned on compute loops). An operating system's hot loops are mostly
 * short-lived: the bundled Linux boot's loop regions at 20,000 (e820__mapped_any, strlen,
 * __free_pages_core, pcpu_next_md_free_region, kernfs_name_hash) ran at 20-100 ns per instruction
 * compiled against ~30-40 interpreted, because V8 optimises a generated function only after many
 * calls and its 3-7 KB of bytecode run slowly until then. At 100,000 the boot's main thread does
 * ~5% less work (BENCHMARKS.md, vmm, session 9); a guest loop that runs for long still compiles
 * within milliseconds.
 */
export const GUEST_JIT_THRESHOLD = 100_000;

/**
 * KVM_CREATE_VM with one slot per RAM range (sharing the GuestRam buffers), irqchip, PIT, vCPUs.
 * With `icount` (a shift), guest time is 2^icount ns per retired instruction (`--icount`).
 */
export function createKvmMachine(memory: GuestRam, cpus: number, icount?: number): KvmMachine {
  const kvm = new Kvm();
  const vm = kvm.createVm({ clock: icount === undefined ? "host" : new DeterministicClock(2 ** icount) });
  memory.ranges.forEach((r, i) => {
    const buf = memory.buffers[i]!;
    vm.setUserMemoryRegion({
      slot: i,
      flags: 0,
      guestPhysAddr: r.base,
      memorySize: r.size,
      memory: buf.buffer as ArrayBuffer,
      memoryOffset: buf.byteOffset,
    });
  });
  vm.createIrqchip();
  vm.createPit2(0);
  const cpuid = kvm.getSupportedCpuid();
  const vcpus: Vcpu[] = [];
  for (let id = 0; id < cpus; id++) {
    const vcpu = vm.createVcpu(id);
    vcpu.setCpuid2(cpuid);
    attachVmxBackend(vcpu, { jitThreshold: GUEST_JIT_THRESHOLD });
    vcpus.push(vcpu);
  }
  return { kvm, vm, vcpus };
}

function kvmSegment(s: SegmentState): KvmSegment {
  return {
    base: BigInt(s.base),
    limit: s.limit,
    selector: s.selector,
    type: s.type,
    present: s.present ? 1 : 0,
    dpl: s.dpl,
    db: s.db ? 1 : 0,
    s: s.s ? 1 : 0,
    l: s.l ? 1 : 0,
    g: s.g ? 1 : 0,
    avl: 0,
    unusable: s.present ? 0 : 1,
  };
}

/** KVM_SET_SREGS + KVM_SET_REGS from a loader's entry state (the boot vCPU). */
export function setBootState(vcpu: Vcpu, c: BootCpuState): void {
  const s = vcpu.getSregs();
  for (const n of ["cs", "ds", "es", "fs", "gs", "ss", "tr", "ldt"] as const) s[n] = kvmSegment(c[n]);
  s.gdt = { base: BigInt(c.gdt.base), limit: c.gdt.limit };
  s.idt = { base: BigInt(c.idt.base), limit: c.idt.limit };
  s.cr0 = BigInt(c.cr0);
  s.cr3 = BigInt(c.cr3);
  s.cr4 = BigInt(c.cr4);
  s.efer = BigInt(c.efer);
  vcpu.setSregs(s);
  const r = c.regs;
  vcpu.setRegs({
    rax: BigInt(r.rax),
    rbx: BigInt(r.rbx),
    rcx: BigInt(r.rcx),
    rdx: BigInt(r.rdx),
    rsi: BigInt(r.rsi),
    rdi: BigInt(r.rdi),
    rsp: BigInt(r.rsp),
    rbp: BigInt(r.rbp),
    r8: BigInt(r.r8),
    r9: BigInt(r.r9),
    r10: BigInt(r.r10),
    r11: BigInt(r.r11),
    r12: BigInt(r.r12),
    r13: BigInt(r.r13),
    r14: BigInt(r.r14),
    r15: BigInt(r.r15),
    rip: BigInt(r.rip),
    rflags: BigInt(r.rflags),
  });
}

export interface RunLoopOptions {
  machine: KvmMachine;
  ports: PortBus;
  mmio: MmioBus;
  /** Checked after every exit: a machine event or a stop ends the run with this. */
  pending: () => VmExit | undefined;
  /** While this returns a promise (paused), the loop waits for it. */
  paused: () => Promise<void> | undefined;
  /** Called before each KVM_RUN slice (feeds console input). */
  beforeRun?: () => void;
}

const yieldToEventLoop = () => new Promise<void>((resolve) => setImmediate(resolve));
/** Host time between two yields of a running VM to the event loop (console input, actions). */
const YIELD_INTERVAL_MS = 2;

/** Complete one exit in userspace; a VmExit when the run cannot go on. */
function completeExit(e: KvmExit, ports: PortBus, mmio: MmioBus): VmExit | undefined {
  switch (e.kind) {
    case "intr":
    case "irq-window-open":
      return undefined;
    case "io": {
      // Indexes into `data` rather than a subarray per element: every console byte is one exit.
      const d = e.data;
      const size = e.size;
      for (let i = 0, at = 0; i < e.count; i++, at += size) {
        if (e.direction === 1) {
          let v = 0;
          for (let k = 0; k < size; k++) v |= d[at + k]! << (8 * k);
          ports.write(e.port, size, v >>> 0);
        } else {
          const v = ports.read(e.port, size);
          for (let k = 0; k < size; k++) d[at + k] = (v >>> (8 * k)) & 0xff;
        }
      }
      return undefined;
    }
    case "mmio":
      if (e.isWrite) mmio.writeBytes(e.physAddr, e.data.subarray(0, e.len));
      else mmio.readBytes(e.physAddr, e.data.subarray(0, e.len));
      return undefined;
    case "hlt":
      // With the in-kernel irqchip KVM waits in HLT itself; this exit only comes with none.
      return undefined;
    case "shutdown":
      return { kind: "shutdown" };
    case "fail-entry":
      return {
        kind: "error",
        reason: `KVM_EXIT_FAIL_ENTRY, hardware reason 0x${e.hardwareEntryFailureReason.toString(16)}`,
      };
    case "internal-error":
      return {
        kind: "error",
        reason: `KVM_EXIT_INTERNAL_ERROR, suberror ${e.suberror} (${e.data.map((x) => `0x${x.toString(16)}`).join(", ")})`,
      };
    default:
      return { kind: "error", reason: `unexpected exit ${e.kind}` };
  }
}

/** Longest one asynchronous idle wait (host ms): bounds the latency of host-side events. */
const IDLE_WAIT_MAX_MS = 10;

const RFLAGS_IF = 1n << 9n;

/** A vCPU in HLT with nothing deliverable: KVM_RUN would only wait in the kernel. */
function idle(vcpu: Vcpu): boolean {
  return vcpu.mpState === KVM_MP_STATE_HALTED && !vcpu.hasInterrupt();
}

/**
 * Nothing but another vCPU can wake this one: halted with RFLAGS.IF clear and no NMI pending
 * (an external interrupt stays pending forever), or an AP waiting for INIT/SIPI.
 */
function stoppedForGood(vcpu: Vcpu): boolean {
  const s = vcpu.mpState;
  if (s === KVM_MP_STATE_UNINITIALIZED || s === KVM_MP_STATE_INIT_RECEIVED) return true;
  return s === KVM_MP_STATE_HALTED && !vcpu.hasNmi() && (vcpu.getRegs().rflags & RFLAGS_IF) === 0n;
}

/** Every vCPU stopped for good and at least one halted: no vCPU is left to wake the others. */
function machineHalted(vcpus: readonly Vcpu[]): boolean {
  return vcpus.every(stoppedForGood) && vcpus.some((v) => v.mpState === KVM_MP_STATE_HALTED);
}

/**
 * The KVM_RUN loop over all vCPUs, round-robin, until something ends the run. When every vCPU
 * is halted with nothing to deliver, the loop waits for the next in-kernel timer deadline
 * asynchronously (setTimeout) instead of entering KVM_RUN, whose halt wait blocks the thread:
 * other VMs of the process (an in-process switch), console input and the control API run
 * meanwhile. Expired timers are then serviced (`Vm.tick`, as kvm_vcpu_block's wakeup does).
 */
export async function runLoop(o: RunLoopOptions): Promise<VmExit> {
  const vm = o.machine.vm;
  let lastYield = performance.now();
  for (;;) {
    let ran = false;
    // Indexed: an array iterator held across the awaits below is an allocation per round.
    const vcpus = o.machine.vcpus;
    for (let i = 0; i < vcpus.length; i++) {
      const vcpu = vcpus[i]!;
      const wait = o.paused();
      if (wait) await wait;
      o.beforeRun?.();
      if (idle(vcpu)) continue;
      ran = true;
      let e: KvmExit;
      try {
        e = vcpu.run();
      } catch (err) {
        return { kind: "error", reason: `KVM_RUN failed: ${(err as Error).message}` };
      }
      const end = completeExit(e, o.ports, o.mmio) ?? o.pending();
      if (end) return end;
    }
    // Also after a round that ran: a vCPU halted with IF=0 but an interrupt pending is not idle,
    // yet it is stopped for good all the same.
    if (machineHalted(o.machine.vcpus)) return { kind: "halted" };
    if (ran) {
      const now = performance.now();
      if (now - lastYield >= YIELD_INTERVAL_MS) {
        await yieldToEventLoop();
        lastYield = performance.now();
      }
      continue;
    }
    const end = o.pending();
    if (end) return end;
    const clock = vm.clock;
    const deadline = vm.nextDeadlineNs();
    if (clock instanceof DeterministicClock && Number.isFinite(deadline)) {
      // Instruction-counted time: nothing runs until the next timer, so time jumps there (QEMU
      // -icount's "sleep=off"), and host events get their turn on the way.
      clock.advanceTo(deadline);
      vm.tick();
      await yieldToEventLoop();
      continue;
    }
    const leftMs = (deadline - clock.nowNs()) / 1e6;
    if (leftMs >= 1) {
      const ms = Math.min(IDLE_WAIT_MAX_MS, Math.floor(leftMs));
      await new Promise<void>((resolve) => setTimeout(resolve, ms));
    } else await yieldToEventLoop();
    if (vm.nextDeadlineNs() <= vm.clock.nowNs()) vm.tick();
  }
}
