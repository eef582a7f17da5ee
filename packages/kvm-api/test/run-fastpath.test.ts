/**
 * CPUID, WRMSR to IA32_TSC_DEADLINE and expired LAPIC timers handled without the software VM exit
 * and entry (engine.ts `cpuidWithoutExit`, `tscDeadlineWithoutExit`, `eventsWithoutExit`): the same
 * exits, registers, interrupts and guest time as when every exit is made. The reference run has
 * guest debugging on with nothing to do (KVM_SET_GUEST_DEBUG with KVM_GUESTDBG_ENABLE alone: no
 * single-step, no breakpoints, the exception bitmap unchanged), which keeps every exit on the full
 * path; VM entries are counted at the VMX unit, as in run-io-noexit.test.ts.
 */
import { expect, it, describe as suite } from "vitest";
import { findCpuid } from "../src/cpuid.js";
import { KVM_GUESTDBG_ENABLE } from "../src/guest-debug.js";
import { countEntries, describe, type Machine, machine, realMode } from "./run-helpers.js";

const CODE = 0x1000;
/** The interrupt count the timer handler keeps. */
const COUNT = 0x500;
const TIMER_VECTOR = 0x40;

/**
 * Real mode (nasm, bits 16): x2APIC on, LAPIC timer in TSC-deadline mode at vector 0x40, a first
 * deadline already passed (so the interrupt comes right after that WRMSR), then 1024 CPUIDs over
 * basic leaves 0-15 and KVM leaves 0x40000000-0x4000000f, subleaf 0/1, folded into EDI, with an
 * OUT 0x10 of it every 128; then the timer off, OUT 0x11 of the interrupt count, CPUID 0x40000000
 * and OUT 0x12.
 */
// biome-ignore format: one instruction per line
const PROGRAM = [
  0x66, 0xb9, 0x1b, 0x00, 0x00, 0x00, //       mov ecx, 0x1b          (IA32_APIC_BASE)
  0x0f, 0x32, //                               rdmsr
  0x0d, 0x00, 0x0c, //                         or ax, 0x0c00          (EN | EXTD: x2APIC)
  0x0f, 0x30, //                               wrmsr
  0x66, 0xb9, 0x0f, 0x08, 0x00, 0x00, //       mov ecx, 0x80f         (SVR)
  0x66, 0xb8, 0xff, 0x01, 0x00, 0x00, //       mov eax, 0x1ff         (enabled, spurious 0xff)
  0x66, 0x31, 0xd2, //                         xor edx, edx
  0x0f, 0x30, //                               wrmsr
  0x66, 0xb9, 0x32, 0x08, 0x00, 0x00, //       mov ecx, 0x832         (LVT timer)
  0x66, 0xb8, 0x40, 0x00, 0x04, 0x00, //       mov eax, 0x40040       (TSC-deadline, vector 0x40)
  0x0f, 0x30, //                               wrmsr
  0x66, 0x31, 0xff, //                         xor edi, edi
  0xfb, //                                     sti
  0x66, 0xb9, 0xe0, 0x06, 0x00, 0x00, //       mov ecx, 0x6e0         (IA32_TSC_DEADLINE)
  0x66, 0xb8, 0x01, 0x00, 0x00, 0x00, //       mov eax, 1             (passed already)
  0x0f, 0x30, //                               wrmsr
  0xbe, 0x00, 0x04, //                         mov si, 1024
  0x66, 0x0f, 0xb7, 0xc6, //             loop: movzx eax, si
  0x24, 0x0f, //                               and al, 0x0f
  0xf7, 0xc6, 0x10, 0x00, //                   test si, 0x10
  0x74, 0x06, //                               jz basic
  0x66, 0x0d, 0x00, 0x00, 0x00, 0x40, //       or eax, 0x40000000
  0x66, 0x0f, 0xb7, 0xce, //            basic: movzx ecx, si
  0xc1, 0xe9, 0x05, //                         shr cx, 5
  0x83, 0xe1, 0x01, //                         and cx, 1
  0x0f, 0xa2, //                               cpuid
  0x66, 0x01, 0xc7, //                         add edi, eax
  0x66, 0xc1, 0xc7, 0x05, //                   rol edi, 5
  0x66, 0x31, 0xdf, //                         xor edi, ebx
  0x66, 0xc1, 0xc7, 0x05, //                   rol edi, 5
  0x66, 0x01, 0xcf, //                         add edi, ecx
  0x66, 0xc1, 0xc7, 0x05, //                   rol edi, 5
  0x66, 0x31, 0xd7, //                         xor edi, edx
  0xf7, 0xc6, 0x7f, 0x00, //                   test si, 0x7f
  0x75, 0x05, //                               jnz next
  0x66, 0x89, 0xf8, //                         mov eax, edi
  0xe6, 0x10, //                               out 0x10, al
  0x4e, //                               next: dec si
  0x75, 0xbc, //                               jnz loop
  0xfa, //                                     cli
  0x66, 0xb9, 0xe0, 0x06, 0x00, 0x00, //       mov ecx, 0x6e0
  0x66, 0x31, 0xc0, //                         xor eax, eax           (deadline 0: timer off)
  0x66, 0x31, 0xd2, //                         xor edx, edx
  0x0f, 0x30, //                               wrmsr
  0xa0, 0x00, 0x05, //                         mov al, [0x500]
  0xe6, 0x11, //                               out 0x11, al
  0x66, 0xb8, 0x00, 0x00, 0x00, 0x40, //       mov eax, 0x40000000
  0x0f, 0xa2, //                               cpuid
  0xe6, 0x12, //                               out 0x12, al
  0xf4, //                                     hlt
];

const HANDLER = 0x1100;
/** The timer interrupt: count it, next deadline TSC + `delta`, EOI (x2APIC MSR 0x80b), IRET. */
// biome-ignore format: one instruction per line
const handler = (delta: number) => [
  0x66, 0x50, //                               push eax
  0x66, 0x51, //                               push ecx
  0x66, 0x52, //                               push edx
  0xff, 0x06, 0x00, 0x05, //                   inc word [0x500]
  0x0f, 0x31, //                               rdtsc
  0x66, 0x05, ...le32(delta), //               add eax, delta
  0x66, 0x83, 0xd2, 0x00, //                   adc edx, 0
  0x66, 0xb9, 0xe0, 0x06, 0x00, 0x00, //       mov ecx, 0x6e0
  0x0f, 0x30, //                               wrmsr
  0x66, 0xb9, 0x0b, 0x08, 0x00, 0x00, //       mov ecx, 0x80b         (EOI)
  0x66, 0x31, 0xc0, //                         xor eax, eax
  0x66, 0x31, 0xd2, //                         xor edx, edx
  0x0f, 0x30, //                               wrmsr
  0x66, 0x5a, //                               pop edx
  0x66, 0x59, //                               pop ecx
  0x66, 0x58, //                               pop eax
  0xcf, //                                     iret
];

function le32(v: number): number[] {
  return [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, v >>> 24];
}

/** The program with the vCPU's CPUID table set to what KVM supports; `delta` between interrupts. */
function setup(delta = 1500): Machine {
  const m = machine({ irqchip: true });
  m.vcpu.setCpuid2(m.kvm.getSupportedCpuid());
  m.ram.set(PROGRAM, CODE);
  m.ram.set(handler(delta), HANDLER);
  m.ram.set([HANDLER & 0xff, HANDLER >> 8, 0, 0], TIMER_VECTOR * 4);
  realMode(m, CODE);
  return m;
}

interface Trace {
  log: string[];
  regs: Record<"rax" | "rbx" | "rcx" | "rdx" | "rsi" | "rdi" | "rsp" | "rip" | "rflags", bigint>;
  /** Timer interrupts the guest took. */
  interrupts: number;
  /** Guest nanoseconds at the end (the deterministic clock counts retired instructions). */
  ns: number;
  cpuid: number;
  wrmsr: number;
  /** VM entries made: VMLAUNCH and VMRESUME through the VMX unit. */
  entries: number;
}

/** Runs the program to its OUT 0x12; `full`: guest debugging on, every exit made. */
function trace(full: boolean, m = setup()): Trace {
  if (full) m.vcpu.setGuestDebug({ control: KVM_GUESTDBG_ENABLE, debugreg: Array(8).fill(0n) });
  const entries = countEntries(m);
  const log: string[] = [];
  for (let i = 0; i < 100; i++) {
    const e = m.vcpu.run();
    if (e.kind === "intr") continue;
    log.push(describe(e));
    if (e.kind !== "io" || e.port === 0x12) break;
  }
  const r = m.vcpu.getRegs();
  const counts = m.backend.exitCounts;
  return {
    log,
    regs: {
      rax: r.rax,
      rbx: r.rbx,
      rcx: r.rcx,
      rdx: r.rdx,
      rsi: r.rsi,
      rdi: r.rdi,
      rsp: r.rsp,
      rip: r.rip,
      rflags: r.rflags,
    },
    interrupts: m.ram[COUNT]! | (m.ram[COUNT + 1]! << 8),
    ns: m.vm.clock.nowNs(),
    cpuid: counts.get(10) ?? 0,
    wrmsr: counts.get(32) ?? 0,
    entries: entries(),
  };
}

suite("CPUID, TSC-deadline WRMSR and timer interrupts without the VM exit", () => {
  it("gives the full path's exits, registers, interrupts and guest time, with a VM entry per EOI only", () => {
    const fast = trace(false);
    const full = trace(true);
    expect(fast.log).toEqual(full.log);
    expect(fast.regs).toEqual(full.regs);
    expect(fast.interrupts).toBe(full.interrupts);
    expect(fast.ns).toBe(full.ns);
    // 1024 in the loop and the last one; WRMSR: 3 to set up, the first deadline, one deadline and
    // one EOI per interrupt, the timer off.
    expect(fast.cpuid).toBe(1025);
    expect(full.cpuid).toBe(1025);
    expect(fast.wrmsr).toBe(5 + 2 * fast.interrupts);
    expect(full.wrmsr).toBe(fast.wrmsr);
    expect(fast.interrupts).toBeGreaterThan(5);
    expect(fast.log).toHaveLength(10);
    expect(fast.log[8]).toBe(`io out 0x11 1 ${fast.interrupts.toString(16).padStart(2, "0")}`);
    // The first entry, one after the set-up RDMSR and each of the three set-up WRMSRs, and one
    // after each EOI (x2APIC MSR 0x80b, not on the fast path): none for the CPUIDs, the deadlines,
    // the interrupts, nor the OUTs (run-io-noexit.test.ts). Each of those alone would add more.
    expect(fast.entries).toBe(5 + fast.interrupts);
    expect(full.entries).toBeGreaterThan(1025 + 3 * fast.interrupts);
  });

  it("answers CPUID from the vCPU's table, zero-extended into the four registers", () => {
    const m = setup();
    const fast = trace(false, m);
    const full = trace(true);
    // The fold of all 1025 results: one wrong leaf, register or order changes it.
    expect(fast.regs.rdi).toBe(full.regs.rdi);
    expect(fast.regs.rdi).not.toBe(0n);
    // The last CPUID (0x40000000), against the table: KVM's signature "KVMKVMKVM\0\0\0".
    const sig = findCpuid(m.vcpu.getCpuid2(), 0x40000000, 0)!;
    expect(sig.ebx).toBe(0x4b4d564b);
    expect(fast.regs.rax).toBe(BigInt(sig.eax >>> 0));
    expect(fast.regs.rbx).toBe(BigInt(sig.ebx >>> 0));
    expect(fast.regs.rcx).toBe(BigInt(sig.ecx >>> 0));
    expect(fast.regs.rdx).toBe(BigInt(sig.edx >>> 0));
    expect(fast.log[9]).toBe(`io out 0x12 1 ${(sig.eax & 0xff).toString(16).padStart(2, "0")}`);
  });

  it("delivers a timer that is due when its interrupt may not be taken yet through the window", () => {
    // Deadlines 40 TSC ticks apart expire inside the handler (IF clear): the interrupt waits for
    // IRET, through interrupt-window exiting armed on the CPU.
    const fast = trace(false, setup(40));
    const full = trace(true, setup(40));
    expect(fast.log).toEqual(full.log);
    expect(fast.regs).toEqual(full.regs);
    expect(fast.interrupts).toBe(full.interrupts);
    expect(fast.ns).toBe(full.ns);
    expect(fast.interrupts).toBeGreaterThan(100);
    expect(fast.entries).toBeLessThan(full.entries);
  });
});
