// The built-in page walker (SDM Vol. 3 ch. 4): 4-level, PAE and 32-bit paging, large pages, A/D
// updates, and the #PF error code for each protection rule (SDM 4.6, 4.7).
import { describe, expect, it } from "vitest";
import { Access, CR0, CR4, EFER, FlatMemory, newTranslateResult, PageWalker, PfErr } from "../src/index.js";

const ram = () => new Uint8Array(8 << 20);

function regs(cr0: number, cr4: number, efer: number, cr3: number) {
  return { cr0, cr3Lo: cr3, cr3Hi: 0, cr4, efer };
}

function w64(m: Uint8Array, at: number, lo: number, hi = 0): void {
  const dv = new DataView(m.buffer);
  dv.setUint32(at, lo >>> 0, true);
  dv.setUint32(at + 4, hi >>> 0, true);
}
const r32 = (m: Uint8Array, at: number) => new DataView(m.buffer).getUint32(at, true);

describe("4-level paging", () => {
  // PML4 0x1000 -> PDPT 0x2000 -> PD 0x3000 -> PT 0x4000; 0x40_0000 is a 4 KiB user RW page at 0x5000,
  // 0x40_1000 a supervisor read-only NX page at 0x6000; 0x60_0000 a 2 MiB page at 0x20_0000.
  const m = ram();
  w64(m, 0x1000, 0x2007);
  w64(m, 0x2000, 0x3007);
  w64(m, 0x3000 + 2 * 8, 0x4007);
  w64(m, 0x3000 + 3 * 8, 0x200087);
  w64(m, 0x4000, 0x5007);
  w64(m, 0x4000 + 8, 0x6001, 0x80000000);
  const walker = new PageWalker(
    regs(CR0.PE | CR0.PG | CR0.WP, CR4.PAE, EFER.LME | EFER.LMA | EFER.NXE, 0x1000),
    new FlatMemory(m),
  );
  const out = newTranslateResult();

  it("translates a 4 KiB page and sets A on every level, D on the leaf for writes", () => {
    expect(walker.translate(0x400123, 0, Access.WRITE | Access.USER, out)).toBe(true);
    expect(out.paddr).toBe(0x5123);
    expect(out.writable && out.user).toBe(true);
    expect(r32(m, 0x1000) & 0x20).toBe(0x20);
    expect(r32(m, 0x3000 + 16) & 0x20).toBe(0x20);
    expect(r32(m, 0x4000) & 0x60).toBe(0x60);
  });

  it("translates a 2 MiB page", () => {
    expect(walker.translate(0x6abcde, 0, 0, out)).toBe(true);
    expect(out.paddr).toBe(0x2abcde);
    expect(out.pageSize).toBe(0x200000);
  });

  it("SDM 4.7: not present -> P=0; user on a supervisor page -> P|U; write to read-only with WP -> P|W; NX fetch -> P|I", () => {
    expect(walker.translate(0x800000, 0, Access.USER, out)).toBe(false);
    expect(out.errorCode).toBe(PfErr.U);
    expect(walker.translate(0x401000, 0, Access.USER, out)).toBe(false);
    expect(out.errorCode).toBe(PfErr.P | PfErr.U);
    expect(walker.translate(0x401000, 0, Access.WRITE, out)).toBe(false);
    expect(out.errorCode).toBe(PfErr.P | PfErr.W);
    expect(walker.translate(0x401000, 0, Access.FETCH, out)).toBe(false);
    expect(out.errorCode).toBe(PfErr.P | PfErr.I);
  });

  it("SDM 4.7: I/D is set for a fetch only with PAE and NXE both set, or with SMEP", () => {
    // A not-present page, fetched: P = 0 whatever the mode; I/D depends on CR4.PAE, EFER.NXE and CR4.SMEP.
    const lm = CR0.PE | CR0.PG;
    const noNxe = new PageWalker(regs(lm, CR4.PAE, EFER.LME | EFER.LMA, 0x1000), new FlatMemory(m));
    expect(noNxe.translate(0x800000, 0, Access.FETCH, out)).toBe(false);
    expect(out.errorCode).toBe(0);
    const smep = new PageWalker(regs(lm, CR4.PAE | CR4.SMEP, EFER.LME | EFER.LMA, 0x1000), new FlatMemory(m));
    expect(smep.translate(0x800000, 0, Access.FETCH, out)).toBe(false);
    expect(out.errorCode).toBe(PfErr.I);
    expect(walker.translate(0x800000, 0, Access.FETCH, out)).toBe(false);
    expect(out.errorCode).toBe(PfErr.I);
  });

  it("SDM 4.7: a reserved bit (physical address above MAXPHYADDR) sets RSVD", () => {
    w64(m, 0x4000 + 16, 0x7001, 0x000f0000);
    expect(walker.translate(0x402000, 0, 0, out)).toBe(false);
    expect(out.errorCode).toBe(PfErr.P | PfErr.RSVD);
  });
});

describe("PAE and 32-bit paging", () => {
  it("PAE: PDPTE -> PD -> PT", () => {
    const m = ram();
    w64(m, 0x1000 + 8 * 1, 0x2001); // PDPTE for 0x4000_0000..
    w64(m, 0x2000, 0x3007);
    w64(m, 0x3000 + 5 * 8, 0x9007);
    const walker = new PageWalker(regs(CR0.PE | CR0.PG, CR4.PAE, 0, 0x1000), new FlatMemory(m));
    const out = newTranslateResult();
    expect(walker.translate(0x40005010, 0, 0, out)).toBe(true);
    expect(out.paddr).toBe(0x9010);
  });

  it("32-bit paging with a 4 MiB PSE page and a 4 KiB page", () => {
    const m = ram();
    const dv = new DataView(m.buffer);
    dv.setUint32(0x1000 + 1 * 4, 0x00400087, true); // 4 MiB page at 4 MiB
    dv.setUint32(0x1000 + 2 * 4, 0x2007, true);
    dv.setUint32(0x2000 + 3 * 4, 0x7007, true);
    const walker = new PageWalker(regs(CR0.PE | CR0.PG, CR4.PSE, 0, 0x1000), new FlatMemory(m));
    const out = newTranslateResult();
    expect(walker.translate(0x00512345, 0, 0, out)).toBe(true);
    expect(out.paddr).toBe(0x00512345);
    expect(walker.translate(0x00803abc, 0, 0, out)).toBe(true);
    expect(out.paddr).toBe(0x7abc);
  });
});
