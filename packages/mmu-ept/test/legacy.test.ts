import { describe, expect, it } from "vitest";
import { Access, CR4, GuestWalker, PfErr } from "../src/index.js";
import { A, D, halves, Machine, out, P, PS, Regs, RW, US, XD } from "./helpers.js";

const U = Access.USER;
const W = Access.WRITE;
const X = Access.FETCH;

function tr(w: GuestWalker, lin: bigint, access: number) {
  const o = out();
  const [lo, hi] = halves(lin);
  return { ok: w.translate(lo, hi, access, o), o };
}

function setup32() {
  const m = new Machine();
  const regs = new Regs();
  regs.cr4 = 0;
  regs.efer = 0;
  const pd = m.alloc();
  regs.cr3 = pd;
  return { m, regs, pd, w: new GuestWalker(regs, m.mem) };
}

describe("32-bit paging (SDM Vol. 3A 4.3)", () => {
  it("SDM 4.3: a PDE points to a page table; a PTE maps a 4 KiB page; A on both, D on the PTE", () => {
    const { m, pd, w } = setup32();
    const pt = m.alloc();
    m.w32(pd + 4n * 3n, Number(pt) | 7);
    m.w32(pt + 4n * 5n, 0x00abc000 | 7);
    const r = tr(w, (3n << 22n) | (5n << 12n) | 0x123n, W | U);
    expect(r.ok).toBe(true);
    expect(r.o.paddr).toBe(0xabc123);
    expect(m.r32(pd + 12n) & 0x60).toBe(0x20);
    expect(m.r32(pt + 20n) & 0x60).toBe(0x60);
  });

  it("SDM 4.3: with CR4.PSE=1 a PDE with PS maps 4 MiB; bits 20:13 are address bits 39:32 (PSE-36)", () => {
    const { m, regs, pd, w } = setup32();
    regs.cr4 |= CR4.PSE;
    m.w32(pd + 4n, 0x00c00000 | (0x12 << 13) | 0x87);
    const r = tr(w, 0x00523456n, U);
    expect(r.ok).toBe(true);
    expect(r.o.paddr).toBe(0x12 * 2 ** 32 + 0x00c00000 + 0x123456);
    expect(r.o.pageSize).toBe(0x400000);
  });

  it("SDM 4.3: bit 21 of a 4 MiB PDE is reserved; so are bits 20:13 beyond MAXPHYADDR", () => {
    const { m, regs, pd, w } = setup32();
    regs.cr4 |= CR4.PSE;
    m.w32(pd, 0x00200000 | 0x83);
    expect(tr(w, 0x1000n, 0).o.errorCode).toBe(PfErr.P | PfErr.RSVD);
    m.w32(pd, (0x10 << 13) | 0x83); // address bit 36
    const w36 = new GuestWalker(regs, m.mem, { maxPhyAddr: 36 });
    expect(tr(w36, 0x1000n, 0).o.errorCode).toBe(PfErr.P | PfErr.RSVD);
    expect(tr(w, 0x1000n, 0).ok).toBe(true);
  });

  it("SDM 4.3: with CR4.PSE=0 the PS flag is ignored and the PDE points to a page table", () => {
    const { m, pd, w } = setup32();
    const pt = m.alloc();
    m.w32(pd, Number(pt) | 0x83);
    m.w32(pt, 0x7000 | 3);
    expect(tr(w, 0x10n, 0).o.paddr).toBe(0x7010);
  });

  it("SDM 4.7: without PAE or SMEP, a fetch fault does not set I/D", () => {
    const { w } = setup32();
    expect(tr(w, 0x1000n, X | U).o.errorCode).toBe(PfErr.U);
  });

  it("SDM 4.7: with SMEP, I/D is set on fetch faults even in 32-bit paging", () => {
    const { regs, w } = setup32();
    regs.cr4 |= CR4.SMEP;
    expect(tr(w, 0x1000n, X | U).o.errorCode).toBe(PfErr.U | PfErr.I);
  });

  it("SDM 4.3: 32-bit paging has no XD and no protection keys: fetches need only U/S", () => {
    const { m, regs, pd, w } = setup32();
    regs.cr4 |= CR4.PSE | CR4.PKE;
    regs.pkru = -1;
    m.w32(pd, 0x00400000 | 0x87);
    expect(tr(w, 0x1000n, X | U).ok).toBe(true);
    expect(tr(w, 0x1000n, W | U).ok).toBe(true);
  });
});

function setupPae() {
  const m = new Machine();
  const regs = new Regs();
  regs.cr4 = CR4.PAE;
  regs.efer = 0x800; // NXE, no LMA
  const pdpt = 0x3000n + 0x20n; // 32-byte aligned, not page aligned
  regs.cr3 = pdpt;
  return { m, regs, pdpt, w: new GuestWalker(regs, m.mem) };
}

describe("PAE paging (SDM Vol. 3A 4.4)", () => {
  it("SDM 4.4.2: PDPTE -> PDE -> PTE, 32-byte-aligned PDPT, no A flag in PDPTEs", () => {
    const { m, pdpt, w } = setupPae();
    const pd = m.alloc();
    const pt = m.alloc();
    m.w64(pdpt + 8n * 2n, pd | P);
    m.w64(pd + 8n * 3n, pt | P | RW | US);
    m.w64(pt + 8n * 4n, 0x1_2345_6000n | P | RW | US);
    expect(w.loadPdptes()).toBeNull();
    const r = tr(w, (2n << 30n) | (3n << 21n) | (4n << 12n) | 0x10n, W | U);
    expect(r.ok).toBe(true);
    expect(r.o.paddr).toBe(0x1_2345_6010);
    expect(m.r64(pdpt + 16n)).toBe(pd | P);
    expect(m.r64(pd + 24n) & A).toBe(A);
    expect(m.r64(pt + 32n) & (A | D)).toBe(A | D);
  });

  it("SDM 4.4.1: PDPTEs are loaded with CR3; reserved bits 2:1, 8:5 or 63:M make the load fail (#GP)", () => {
    const { m, pdpt, w } = setupPae();
    m.w64(pdpt, 0x5000n | P | RW);
    expect(w.loadPdptes()).toBe("PdpteReservedBits");
    m.w64(pdpt, 0x5000n | P | XD);
    expect(w.loadPdptes()).toBe("PdpteReservedBits");
    m.w64(pdpt, 0x5000n | RW); // not present: other bits are ignored
    expect(w.loadPdptes()).toBeNull();
  });

  it("SDM 4.4.1: walks use the PDPTEs loaded at MOV to CR3, not the ones in memory", () => {
    const { m, pdpt, w } = setupPae();
    const pd = m.alloc();
    m.w64(pdpt, pd | P);
    m.w64(pd, 0x20_0000n | P | PS | RW);
    expect(w.loadPdptes()).toBeNull();
    m.w64(pdpt, 0n);
    expect(tr(w, 0x1234n, 0).o.paddr).toBe(0x20_1234);
    w.loadPdptes();
    expect(tr(w, 0x1234n, 0).o.errorCode).toBe(0);
  });

  it("SDM 4.4.2: bits 62:52 of PAE PDEs and PTEs are reserved (unlike 4-level paging)", () => {
    const { m, pdpt, w } = setupPae();
    const pd = m.alloc();
    m.w64(pdpt, pd | P);
    m.w64(pd, 0x20_0000n | P | PS | RW | (1n << 55n));
    expect(tr(w, 0x1234n, 0).o.errorCode).toBe(PfErr.P | PfErr.RSVD);
  });

  it("SDM 4.7: PAE with NXE sets I/D on fetch faults; XD forbids fetches", () => {
    const { m, pdpt, w } = setupPae();
    const pd = m.alloc();
    m.w64(pdpt, pd | P);
    m.w64(pd, 0x20_0000n | P | PS | RW | US | XD);
    expect(tr(w, 0x1234n, X | U).o.errorCode).toBe(PfErr.P | PfErr.U | PfErr.I);
    expect(tr(w, 0x40001234n, X).o.errorCode).toBe(PfErr.I);
  });
});

describe("PDPTE reloads through Mmu (SDM Vol. 3A 4.4.1)", () => {
  it("SDM 4.4.1: a CR4 write changing PGE in PAE mode reloads the PDPTEs; one changing SMAP does not", async () => {
    const { Mmu } = await import("../src/index.js");
    const m = new Machine();
    const regs = new Regs();
    regs.cr4 = CR4.PAE;
    regs.efer = 0x800;
    regs.cr3 = 0x3000n;
    const pd = m.alloc();
    m.w64(0x3000n, pd | P);
    m.w64(pd, 0x20_0000n | P | PS | RW);
    const mmu = new Mmu(regs, m.mem);
    expect(mmu.afterCrWrite(3, 0)).toBeNull();
    m.w64(0x3000n, pd | P | RW); // reserved bit 1 now set in memory
    const old = regs.cr4;
    regs.cr4 |= CR4.SMAP;
    expect(mmu.afterCrWrite(4, old)).toBeNull();
    const old2 = regs.cr4;
    regs.cr4 |= CR4.PGE;
    expect(mmu.afterCrWrite(4, old2)).toBe("PdpteReservedBits");
  });
});
