// The README's example, kept runnable.
import { expect, it } from "vitest";
import { Access, CR0, CR4, EFER, FlatPhysMem, Mmu, newTranslateResult, Pte } from "../src/index.js";

it("README example: a 2 MiB user page, A and D set by a user write", () => {
  const mem = new FlatPhysMem(new ArrayBuffer(4 << 20));
  mem.write64(0x1000, 0x2000 | 7, 0);
  mem.write64(0x2000, 0x3000 | 7, 0);
  mem.write64(0x3000, 0x0000 | 0x87, 0);
  const regs = {
    cr0: CR0.PG | CR0.WP | CR0.PE,
    cr3Lo: 0x1000,
    cr3Hi: 0,
    cr4: CR4.PAE,
    efer: EFER.LME | EFER.LMA,
  };
  const mmu = new Mmu(regs, mem, { maxPhyAddr: 46 });
  const out = newTranslateResult();
  expect(mmu.translate(0x12345, 0, Access.WRITE | Access.USER, out)).toBe(true);
  expect(out.paddr).toBe(0x12345);
  expect(mem.read32(0x3000) & (Pte.A | Pte.D)).toBe(Pte.A | Pte.D);
  const eptp = { lo: 0x100000 | 6 | (3 << 3), hi: 0 };
  expect(mmu.checkEptp(eptp.lo, eptp.hi)).toBeNull();
  mmu.vmTransition(1, true, eptp);
  expect(mmu.vpid).toBe(1);
  // The EPT at 0x100000 is empty: the first guest paging-structure access is an EPT violation.
  expect(mmu.translate(0x12345, 0, Access.USER, out)).toBe(false);
  expect(mmu.exitReason).toBe(48);
  expect(mmu.exitGpa).toBe(0x1000);
  expect(mmu.afterCrWrite(3, 0x1000, false)).toBeNull();
  mmu.invlpg(0x12345, 0);
  expect(mmu.invpcid(1, 5, 0, 0)).toBe(true);
  expect(mmu.invvpid(1, 1)).toBe(true);
  expect(mmu.invept(2)).toBe(true);
});
