import { describe, expect, it } from "vitest";
import { CR4, FlatPhysMem, Mmu, type MmuState, newTranslateResult } from "../src/index.js";

describe("Mmu save / restore", () => {
  it("save -> restore -> save round-trips VPID, EPTP and the PAE PDPTE registers", () => {
    const mem = new FlatPhysMem(new ArrayBuffer(1 << 20));
    mem.write64(0x3000, 0x4001, 0);
    const regs = { cr0: 0x80000001 | 0, cr3Lo: 0x3000, cr3Hi: 0, cr4: CR4.PAE, efer: 0 };
    const mmu = new Mmu(regs, mem);
    mmu.vpid = 7;
    expect(mmu.loadPdptes()).toBeNull();
    mmu.setEptp({ lo: 0x10000 | 0x1e, hi: 0 });
    const s1 = mmu.save();
    const json = JSON.parse(JSON.stringify(s1)) as MmuState;
    const back = Mmu.restore(regs, mem, json);
    expect(back).toBeInstanceOf(Mmu);
    expect((back as Mmu).save()).toEqual(s1);
    // The PDPTEs come from the saved registers, not from memory (SDM 4.4.1).
    mem.write64(0x3000, 0, 0);
    const m2 = back as Mmu;
    m2.setEptp(null);
    mem.write64(0x4000, 0x200000 | 0x83, 0);
    const out = newTranslateResult();
    expect(m2.translate(0x1234, 0, 0, out)).toBe(true);
    expect(out.paddr).toBe(0x201234);
  });

  it("SDM Vol. 3C 27.3.2.4: PDPTEs set from the VMCS are used as loaded, whatever memory holds", () => {
    const mem = new FlatPhysMem(new ArrayBuffer(1 << 20));
    const regs = { cr0: 0x80000001 | 0, cr3Lo: 0x3000, cr3Hi: 0, cr4: CR4.PAE, efer: 0 };
    const mmu = new Mmu(regs, mem);
    mem.write64(0x5000, 0x400000 | 0x83, 0);
    mmu.setPdptes([0, 0, 0x5001, 0, 0, 0, 0, 0]);
    const out = newTranslateResult();
    expect(mmu.translate(0x40001234, 0, 0, out)).toBe(true);
    expect(out.paddr).toBe(0x401234);
    expect(mmu.translate(0x1234, 0, 0, out)).toBe(false);
  });

  it.each([
    ["vpid", { vpid: 70000 }],
    ["eptp", { eptp: { lo: "x", hi: 0 } }],
    ["pdptes", { pdptes: [1, 2, 3] }],
    ["pdpteCr3", { pdpteCr3: 1.5 }],
  ])("restore rejects a bad %s", (field, patch) => {
    const mem = new FlatPhysMem(new ArrayBuffer(4096));
    const regs = { cr0: 0, cr3Lo: 0, cr3Hi: 0, cr4: 0, efer: 0 };
    const good: MmuState = { vpid: 0, eptp: null, pdptes: null, pdpteCr3: 0 };
    const bad = { ...good, ...patch } as unknown as MmuState;
    expect(Mmu.restore(regs, mem, bad)).toEqual({ kind: "BadField", field });
  });
});
