/**
 * Port I/O for userspace without the software VM exit and entry (engine.ts `ioWithoutExit`,
 * `resumeWithoutEntry`): the same exits, register values and event delivery as when every exit is
 * made real. The reference run reads the registers after every exit (KVM_GET_REGS makes the
 * deferred VM exit real, so each of its round trips takes the full exit and entry path).
 */
import { expect, it, describe as suite } from "vitest";
import type { KvmExit } from "../src/index.js";
import { countEntries, describe, type Machine, machine, realMode } from "./run-helpers.js";

const CODE = 0x1000;

/**
 * Real mode: 50 times IN 0x11 (added into BL; IF clear), OUT 0x10 of it (IF set), INC DX; then
 * OUT 0x12 and HLT. The NMI handler (IVT vector 2) does OUT 0x13 and IRET.
 */
// biome-ignore format: one instruction per line
const PROGRAM = [
  0xb9, 0x32, 0x00, //       mov cx, 50
  0xe4, 0x11, //       loop: in al, 0x11
  0x00, 0xc3, //             add bl, al
  0xfb, //                   sti
  0x42, //                   inc dx
  0xe6, 0x10, //             out 0x10, al
  0xfa, //                   cli
  0x49, //                   dec cx
  0x75, 0xf4, //             jnz loop
  0xe6, 0x12, //             out 0x12, al
  0xf4, //                   hlt
];
const NMI_HANDLER = 0x1100;
const NMI_CODE = [0xe6, 0x13, 0xcf]; // out 0x13, al; iret

function setup(): Machine {
  const m = machine({ irqchip: true });
  m.ram.set(PROGRAM, CODE);
  m.ram.set(NMI_CODE, NMI_HANDLER);
  // IVT entry 2 -> 0000:1100.
  m.ram.set([NMI_HANDLER & 0xff, NMI_HANDLER >> 8, 0, 0], 2 * 4);
  realMode(m, CODE);
  return m;
}

interface Trace {
  log: string[];
  /** After each exit: was it left without a VM exit (only looked at when the registers are not read). */
  lazy: boolean[];
  regs: { rax: bigint; rbx: bigint; rcx: bigint; rdx: bigint; rip: bigint };
  /** VM entries made: VMLAUNCH and VMRESUME through the VMX unit. */
  entries: number;
}

/**
 * Runs the program `make()` sets up to OUT 0x12, answering IN 0x11 with 1, 2, 3, ...; `readRegs`:
 * KVM_GET_REGS after every exit; `during(i, m)` runs while exit `i` is out (KVM_NMI, KVM_SET_REGS...).
 */
function trace(readRegs: boolean, during?: (i: number, m: Machine) => void, make = setup): Trace {
  const m = make();
  const entries = countEntries(m);
  const log: string[] = [];
  const lazy: boolean[] = [];
  let answer = 0;
  for (let i = 0; i < 400; i++) {
    const e: KvmExit = m.vcpu.run();
    if (e.kind === "intr") continue;
    // kvm_run's if_flag comes from the running state too (post_kvm_run_save).
    log.push(describe(e) + (m.vcpu.runFields.ifFlag ? " if" : ""));
    lazy.push(m.backend.lazyIo);
    if (e.kind === "io" && e.direction === 0) e.data[0] = ++answer & 0xff;
    if (readRegs) m.vcpu.getRegs();
    during?.(i, m);
    if (e.kind !== "io" || e.port === 0x12) break;
  }
  const r = m.vcpu.getRegs();
  return {
    log,
    lazy,
    regs: { rax: r.rax, rbx: r.rbx, rcx: r.rcx, rdx: r.rdx, rip: r.rip },
    entries: entries(),
  };
}

suite("port I/O exits without the VM exit", () => {
  it("gives the exits and registers of the full path, and takes the short path", () => {
    const fast = trace(false);
    const full = trace(true);
    expect(fast.log).toEqual(full.log);
    expect(fast.regs).toEqual(full.regs);
    expect(fast.log).toHaveLength(101);
    expect(fast.log[0]).toBe("io in 0x11 1");
    expect(fast.log[1]).toBe("io out 0x10 1 01 if");
    expect(fast.log[100]).toBe(`io out 0x12 1 ${(50).toString(16)}`);
    // BL = 1 + 2 + ... + 50 (mod 256), DX moved by 50 from its reset value, CX = 0.
    expect(fast.regs.rbx & 0xffn).toBe(BigInt((50 * 51) / 2) & 0xffn);
    expect(fast.regs.rdx - setup().vcpu.getRegs().rdx).toBe(50n);
    expect(fast.regs.rcx & 0xffffn).toBe(0n);
    // Every exit of the fast run but the first (after the entry that loaded the registers, which
    // set no event) went out without a VM exit; reading the registers makes it real.
    expect(fast.lazy.every((x) => x)).toBe(true);
    expect(full.lazy.some((x) => x)).toBe(true); // the flag is read before KVM_GET_REGS
  });

  it("delivers an NMI raised while the exit is out through the full entry path", () => {
    const during = (i: number, m: Machine) => {
      if (i === 20) m.vcpu.nmi();
    };
    const fast = trace(false, during);
    const full = trace(true, during);
    expect(fast.log).toEqual(full.log);
    expect(fast.regs).toEqual(full.regs);
    // Exit 20 is the IN of iteration 11: it completes, then the NMI handler's OUT 0x13 (AL = 11)
    // comes before the loop's OUT 0x10.
    expect(fast.log[20]).toBe("io in 0x11 1");
    expect(fast.log[21]).toBe("io out 0x13 1 0b");
    expect(fast.log[22]).toBe("io out 0x10 1 0b if");
    expect(fast.log).toHaveLength(102);
  });

  it("drops the completion when userspace sets the registers during the exit, as the full path does", () => {
    const during = (i: number, m: Machine) => {
      if (i === 6) m.vcpu.setRegs({ ...m.vcpu.getRegs(), rbx: 0x40n });
    };
    const fast = trace(false, during);
    const full = trace(true, during);
    expect(fast.log).toEqual(full.log);
    expect(fast.regs).toEqual(full.regs);
    // Exit 6 (IN of iteration 4) is dropped: the IN runs again and asks once more.
    expect(fast.log[6]).toBe("io in 0x11 1");
    expect(fast.log[7]).toBe("io in 0x11 1");
    expect(fast.log).toHaveLength(102);
  });

  it("loads registers userspace set without reading them first (KVM_SET_REGS alone)", () => {
    let saved: ReturnType<Machine["vcpu"]["getRegs"]> | null = null;
    const during = (i: number, m: Machine) => {
      // After exit 5 (the OUT of iteration 3) the registers are read; at exit 6 they are set back to
      // that, with another BL, without a KVM_GET_REGS in between: the OUT runs again.
      if (i === 5) saved = m.vcpu.getRegs();
      if (i === 6 && saved !== null) m.vcpu.setRegs({ ...saved, rbx: 0x40n });
    };
    const fast = trace(false, during);
    const full = trace(true, during);
    expect(fast.log).toEqual(full.log);
    expect(fast.regs).toEqual(full.regs);
    expect(fast.log[5]).toBe("io out 0x10 1 03 if");
    expect(fast.log[7]).toBe("io out 0x10 1 03 if");
    // BL: 0x40, then iterations 4-50 add the answers 5..51 (the answer 4 went with the dropped IN).
    expect(fast.regs.rbx & 0xffn).toBe(BigInt(0x40 + (51 * 52) / 2 - 10) & 0xffn);
  });
});

/**
 * Real mode with the in-kernel 8259 programmed by the guest (IRQ 0 at vector 8, only IRQ 0 unmasked,
 * so the KVM-reset LINT0 in ExtINT mode carries it), then `PROGRAM`'s loop. The IRQ 0 handler does
 * OUT 0x14 of AL, a non-specific EOI and IRET.
 */
// biome-ignore format: one instruction per line
const PIC_INIT = [
  0xb0, 0x11, 0xe6, 0x20, // mov al, 0x11; out 0x20, al  (ICW1: edge, cascade, ICW4)
  0xb0, 0x08, 0xe6, 0x21, // mov al, 0x08; out 0x21, al  (ICW2: vector base 8)
  0xb0, 0x04, 0xe6, 0x21, // mov al, 0x04; out 0x21, al  (ICW3: slave on IRQ 2)
  0xb0, 0x01, 0xe6, 0x21, // mov al, 0x01; out 0x21, al  (ICW4: 8086 mode)
  0xb0, 0xfe, 0xe6, 0x21, // mov al, 0xfe; out 0x21, al  (OCW1: only IRQ 0)
  0x30, 0xc0, //             xor al, al
];
const IRQ0_HANDLER = 0x1200;
// biome-ignore format: one instruction per line
const IRQ0_CODE = [
  0xe6, 0x14, //             out 0x14, al
  0x50, //                   push ax
  0xb0, 0x20, 0xe6, 0x20, // mov al, 0x20; out 0x20, al  (EOI)
  0x58, //                   pop ax
  0xcf, //                   iret
];

function setupPic(): Machine {
  const m = machine({ irqchip: true });
  const start = CODE - PIC_INIT.length;
  m.ram.set(PIC_INIT, start);
  m.ram.set(PROGRAM, CODE);
  m.ram.set(IRQ0_CODE, IRQ0_HANDLER);
  m.ram.set([IRQ0_HANDLER & 0xff, IRQ0_HANDLER >> 8, 0, 0], 8 * 4);
  realMode(m, start);
  return m;
}

/** `trace` on the PIC program, with an IRQ 0 pulse while each exit in `at` is out. */
function traceIrq(readRegs: boolean, at: number[]): Trace {
  const pulse = (i: number, m: Machine) => {
    if (!at.includes(i)) return;
    m.vm.irqLine(0, true);
    m.vm.irqLine(0, false);
  };
  return trace(readRegs, pulse, setupPic);
}

suite("an interrupt raised while a port I/O exit is out", () => {
  it("is delivered on the CPU when the guest can take it, with the full path's exits and registers", () => {
    // Exit 41 is the OUT 0x10 of iteration 21: IF is set (STI two instructions before), so the
    // handler runs before the CLI after it.
    const fast = traceIrq(false, [41]);
    const full = traceIrq(true, [41]);
    expect(fast.log).toEqual(full.log);
    expect(fast.regs).toEqual(full.regs);
    expect(fast.log[41]).toBe(`io out 0x10 1 ${(21).toString(16)} if`);
    expect(fast.log[42]).toBe(`io out 0x14 1 ${(21).toString(16)}`);
    expect(fast.log[43]).toBe("io in 0x11 1");
    expect(fast.log).toHaveLength(102);
    // One VM entry in the fast run, the first KVM_RUN's: the interrupt went in without one. (The
    // 8259's kick when the line rose is answered by the resume's look at the interrupts; it no
    // longer ends a later slice with an external-interrupt exit that finds nothing to do.)
    expect(fast.entries).toBe(1);
    expect(full.entries).toBeGreaterThan(100);
  });

  it("arms the interrupt window without an entry when IF is clear, and injects at the window exit", () => {
    const fast = traceIrq(false, [20]);
    const full = traceIrq(true, [20]);
    expect(fast.log).toEqual(full.log);
    expect(fast.regs).toEqual(full.regs);
    // Exit 20 is the IN of iteration 11 (IF clear): the handler's OUT comes after STI; INC DX.
    expect(fast.log[20]).toBe("io in 0x11 1");
    expect(fast.log[21]).toBe("io out 0x14 1 0b");
    expect(fast.log[22]).toBe("io out 0x10 1 0b if");
    // The first entry and the one after the interrupt-window exit that injects the interrupt;
    // arming the window at exit 20 took none.
    expect(fast.entries).toBe(2);
  });
});
