import { beforeAll, describe, expect, it } from "vitest";
import { assemble, flat32, hasTool, machine, realMode, runLog } from "./run-helpers.js";

const NASM = hasTool("nasm");
if (!NASM) console.warn("run-modes: nasm is not installed (Debian: apt-get install nasm); skipped");

describe.skipIf(!NASM)("KVM_RUN through VMX: modes and interrupts", () => {
  const bins: Record<string, Uint8Array> = {};
  beforeAll(() => {
    for (const n of ["mode-switch", "pit-irq", "lapic-timer"]) bins[n] = assemble(n);
  });

  it("SDM 10.9/10.8.5: real -> protected -> long mode, MMIO through guest paging + EPT", () => {
    const m = machine();
    m.ram.set(bins["mode-switch"]!, 0x1000);
    realMode(m, 0x1000);
    expect(runLog(m)).toEqual([
      "io out 0x10 1 16",
      "io out 0x10 1 32",
      "io out 0x10 1 64",
      "mmio write 0xd0000010 4 64646464",
      "hlt",
    ]);
    const r = m.vcpu.getRegs();
    const s = m.vcpu.getSregs();
    expect(r.rbx).toBe(0x1122334455667788n);
    expect(s.efer & 0x500n).toBe(0x500n); // LME | LMA
    expect(s.cs.l).toBe(1);
    expect(s.cs.selector).toBe(0x18);
    expect(s.cr0 & 0x80000001n).toBe(0x80000001n);
    // CR0.NE is host-owned (forced 1 in VMX operation); the guest never set it and does not see it.
    expect(s.cr0 & 0x20n).toBe(0n);
    expect(s.cr3).toBe(0x10000n);
    // The MMIO page was reached through an EPT violation on a GPA outside every slot.
    expect(m.backend.exitCounts.get(48)).toBeGreaterThanOrEqual(1);
    expect(m.backend.ept.mmioPages).toBe(1);
  });

  it("PIT IRQ0 through the 8259A to a real-mode IVT handler, three times", () => {
    const m = machine({ irqchip: true, pit: true });
    m.ram.set(bins["pit-irq"]!, 0x1000);
    realMode(m, 0x1000);
    const log = runLog(m, {}, 200, ["io out 0x10 1 03"]);
    expect(log).toEqual(["io out 0x11 1 01", "io out 0x11 1 02", "io out 0x11 1 03", "io out 0x10 1 03"]);
    // HLT with an in-kernel irqchip never reached userspace; the interrupts came by VM entry.
    expect(m.backend.exitCounts.get(12)).toBeGreaterThanOrEqual(3);
  });

  it("LAPIC timer (periodic) to a 32-bit IDT handler with EOI, three times", () => {
    const m = machine({ irqchip: true });
    m.ram.set(bins["lapic-timer"]!, 0x1000);
    flat32(m, 0x1000);
    const log = runLog(m, {}, 200, ["io out 0x10 1 03"]);
    expect(log).toEqual(["io out 0x11 1 01", "io out 0x11 1 02", "io out 0x11 1 03", "io out 0x10 1 03"]);
  });

  it("a guest spinning forever still returns KVM_EXIT_INTR (immediate_exit and the run budget)", () => {
    const m = machine({ backend: { maxRunInstructions: 100_000 } });
    m.ram.set([0xeb, 0xfe], 0x1000); // jmp $
    realMode(m, 0x1000);
    expect(m.vcpu.run().kind).toBe("intr");
    m.vcpu.runFields.immediateExit = true;
    expect(m.vcpu.run().kind).toBe("intr");
    m.vcpu.runFields.immediateExit = false;
    m.backend.requestExit();
    expect(m.vcpu.run().kind).toBe("intr");
    expect(m.vcpu.getRegs().rip).toBe(0x1000n);
  });
});
