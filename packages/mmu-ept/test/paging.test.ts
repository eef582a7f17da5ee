import { describe, expect, it } from "vitest";
import { Access, CR4, GuestWalker, PfErr, TranslateFault } from "../src/index.js";
import { A, D, G, halves, Machine, map, out, P, PS, Regs, RW, US, XD } from "./helpers.js";

const R = 0;
const W = Access.WRITE;
const U = Access.USER;
const X = Access.FETCH;

function setup4(levels = 4) {
  const m = new Machine();
  const regs = new Regs();
  const root = m.alloc();
  regs.cr3 = root;
  if (levels === 5) regs.cr4 |= CR4.LA57;
  const w = new GuestWalker(regs, m.mem);
  return { m, regs, root, w };
}

function tr(w: GuestWalker, lin: bigint, access: number) {
  const o = out();
  const [lo, hi] = halves(lin);
  const ok = w.translate(lo, hi, access, o);
  return { ok, o };
}

describe("4-level paging (SDM Vol. 3A 4.5)", () => {
  it("SDM 4.5.4: a 4 KiB page maps bits 11:0 onto the PTE's frame", () => {
    const { m, root, w } = setup4();
    map(m, root, 0x7f12_3456_7000n, 0x5000n, P | RW | US);
    const { ok, o } = tr(w, 0x7f12_3456_7abcn, R);
    expect(ok).toBe(true);
    expect(o.paddr).toBe(0x5abc);
    expect(o.pageSize).toBe(4096);
    expect(o.writable && o.user && !o.nx).toBe(true);
  });

  it("SDM 4.8: a read sets A in every entry used and D in none", () => {
    const { m, root, w } = setup4();
    const used = map(m, root, 0x400000n, 0x5000n, P | RW | US);
    tr(w, 0x400000n, R);
    for (const ea of used) expect(m.r64(ea) & (A | D)).toBe(A);
  });

  it("SDM 4.8: a write sets D in the leaf only", () => {
    const { m, root, w } = setup4();
    const used = map(m, root, 0x400000n, 0x5000n, P | RW | US);
    tr(w, 0x400000n, W);
    for (const ea of used.slice(0, -1)) expect(m.r64(ea) & (A | D)).toBe(A);
    expect(m.r64(used.at(-1)!) & (A | D)).toBe(A | D);
  });

  it("SDM 4.8: a faulting access sets no A or D flag (as KVM's walker)", () => {
    const { m, root, w } = setup4();
    const used = map(m, root, 0x400000n, 0x5000n, P | US);
    const { ok, o } = tr(w, 0x400000n, W | U);
    expect(ok).toBe(false);
    expect(o.errorCode).toBe(PfErr.P | PfErr.W | PfErr.U);
    for (const ea of used) expect(m.r64(ea) & (A | D)).toBe(0n);
  });

  it("SDM 4.7: a not-present entry gives P=0 with W/R, U/S and I/D of the access", () => {
    const { w } = setup4();
    expect(tr(w, 0x1000n, R).o.errorCode).toBe(0);
    expect(tr(w, 0x1000n, W).o.errorCode).toBe(PfErr.W);
    expect(tr(w, 0x1000n, W | U).o.errorCode).toBe(PfErr.W | PfErr.U);
    expect(tr(w, 0x1000n, X | U).o.errorCode).toBe(PfErr.I | PfErr.U);
    expect(tr(w, 0x1000n, R).o.fault).toBe(TranslateFault.PAGE_FAULT);
  });

  it("SDM 4.7: a not-present PTE below present tables is still P=0", () => {
    const { m, root, w } = setup4();
    map(m, root, 0x400000n, 0x5000n, 0n);
    expect(tr(w, 0x400000n, U).o.errorCode).toBe(PfErr.U);
  });

  it("SDM 4.6.1: user-mode accesses need U/S=1 at every level", () => {
    const { m, root, w } = setup4();
    map(m, root, 0x400000n, 0x5000n, P | RW | US, { upper: P | RW });
    expect(tr(w, 0x400000n, U).o.errorCode).toBe(PfErr.P | PfErr.U);
    expect(tr(w, 0x400000n, R).ok).toBe(true);
  });

  it("SDM 4.6.1: user-mode writes need R/W=1 at every level", () => {
    const { m, root, w } = setup4();
    map(m, root, 0x400000n, 0x5000n, P | RW | US, { upper: P | US });
    expect(tr(w, 0x400000n, W | U).o.errorCode).toBe(PfErr.P | PfErr.W | PfErr.U);
    expect(tr(w, 0x400000n, U).ok).toBe(true);
  });

  it("SDM 4.6.1: CR0.WP=0 lets supervisor writes ignore R/W; CR0.WP=1 does not", () => {
    const { m, regs, root, w } = setup4();
    map(m, root, 0x400000n, 0x5000n, P);
    expect(tr(w, 0x400000n, W).o.errorCode).toBe(PfErr.P | PfErr.W);
    regs.cr0 &= ~0x10000;
    const r = tr(w, 0x400000n, W);
    expect(r.ok).toBe(true);
    expect(r.o.writable).toBe(false);
  });

  it("SDM 4.6.1: XD=1 with EFER.NXE=1 forbids fetches (I/D set)", () => {
    const { m, root, w } = setup4();
    map(m, root, 0x400000n, 0x5000n, P | RW | US | XD);
    expect(tr(w, 0x400000n, X | U).o.errorCode).toBe(PfErr.P | PfErr.U | PfErr.I);
    expect(tr(w, 0x400000n, R).ok).toBe(true);
    expect(tr(w, 0x400000n, R).o.nx).toBe(true);
  });

  it("SDM 4.5.4: XD=1 with EFER.NXE=0 is a reserved bit; I/D stays clear without NXE and SMEP", () => {
    const { m, regs, root, w } = setup4();
    regs.efer &= ~0x800;
    map(m, root, 0x400000n, 0x5000n, P | RW | US | XD);
    expect(tr(w, 0x400000n, X).o.errorCode).toBe(PfErr.P | PfErr.RSVD);
  });

  it("SDM 4.6.1: SMEP forbids supervisor fetches from user-mode addresses", () => {
    const { m, regs, root, w } = setup4();
    map(m, root, 0x400000n, 0x5000n, P | RW | US);
    expect(tr(w, 0x400000n, X).ok).toBe(true);
    regs.cr4 |= CR4.SMEP;
    expect(tr(w, 0x400000n, X).o.errorCode).toBe(PfErr.P | PfErr.I);
    expect(tr(w, 0x400000n, X | U).ok).toBe(true);
  });

  it("SDM 4.6.1: SMAP forbids supervisor data accesses to user addresses unless explicit with RFLAGS.AC", () => {
    const { m, regs, root, w } = setup4();
    map(m, root, 0x400000n, 0x5000n, P | RW | US);
    regs.cr4 |= CR4.SMAP;
    expect(tr(w, 0x400000n, R).o.errorCode).toBe(PfErr.P);
    expect(tr(w, 0x400000n, W).o.errorCode).toBe(PfErr.P | PfErr.W);
    expect(tr(w, 0x400000n, R | Access.AC).ok).toBe(true);
    // Implicit supervisor accesses ignore AC, at any CPL.
    expect(tr(w, 0x400000n, Access.IMPLICIT_SUPERVISOR | Access.AC).o.errorCode).toBe(PfErr.P);
    expect(tr(w, 0x400000n, U | Access.IMPLICIT_SUPERVISOR | Access.AC).o.errorCode).toBe(PfErr.P);
    // Fetches are SMEP's business, user accesses are unaffected.
    expect(tr(w, 0x400000n, X).ok).toBe(true);
    expect(tr(w, 0x400000n, U).ok).toBe(true);
  });

  it("SDM 4.6: implicit supervisor accesses at CPL 3 reach supervisor pages and report U/S=0", () => {
    const { m, root, w } = setup4();
    map(m, root, 0x400000n, 0x5000n, P | RW);
    expect(tr(w, 0x400000n, U | Access.IMPLICIT_SUPERVISOR).ok).toBe(true);
    map(m, root, 0x401000n, 0x6000n, 0n);
    expect(tr(w, 0x401000n, U | Access.IMPLICIT_SUPERVISOR | W).o.errorCode).toBe(PfErr.W);
  });

  it("SDM 4.6.2: PKRU.AD forbids data accesses to user pages of that key; fetches are not checked", () => {
    const { m, regs, root, w } = setup4();
    map(m, root, 0x400000n, 0x5000n, P | RW | US | (5n << 59n));
    regs.cr4 |= CR4.PKE;
    regs.pkru = 1 << 10; // AD for key 5
    expect(tr(w, 0x400000n, U).o.errorCode).toBe(PfErr.P | PfErr.U | PfErr.PK);
    expect(tr(w, 0x400000n, R).o.errorCode).toBe(PfErr.P | PfErr.PK);
    expect(tr(w, 0x400000n, X | U).ok).toBe(true);
    regs.pkru = 1 << 8; // AD for key 4 only
    expect(tr(w, 0x400000n, U).ok).toBe(true);
  });

  it("SDM 4.6.2: PKRU.WD forbids user writes, and supervisor writes only with CR0.WP=1", () => {
    const { m, regs, root, w } = setup4();
    map(m, root, 0x400000n, 0x5000n, P | RW | US | (3n << 59n));
    regs.cr4 |= CR4.PKE;
    regs.pkru = 2 << 6; // WD for key 3
    expect(tr(w, 0x400000n, U | W).o.errorCode).toBe(PfErr.P | PfErr.W | PfErr.U | PfErr.PK);
    expect(tr(w, 0x400000n, U).ok).toBe(true);
    expect(tr(w, 0x400000n, W).o.errorCode).toBe(PfErr.P | PfErr.W | PfErr.PK);
    regs.cr0 &= ~0x10000;
    expect(tr(w, 0x400000n, W).ok).toBe(true);
  });

  it("SDM 4.6.2: without CR4.PKE bits 62:59 are ignored; PKS guards supervisor pages", () => {
    const { m, regs, root, w } = setup4();
    map(m, root, 0x400000n, 0x5000n, P | RW | (7n << 59n));
    regs.pkru = -1;
    regs.pkrs = 1 << 14; // AD for key 7
    expect(tr(w, 0x400000n, R).ok).toBe(true);
    regs.cr4 |= CR4.PKE;
    expect(tr(w, 0x400000n, R).ok).toBe(true); // PKRU is for user pages
    regs.cr4 |= CR4.PKS;
    expect(tr(w, 0x400000n, R).o.errorCode).toBe(PfErr.P | PfErr.PK);
  });

  it("SDM 4.5.4: bits 51:MAXPHYADDR are reserved in every entry", () => {
    const { m, root, w } = setup4();
    map(m, root, 0x400000n, 0x5000n | (1n << 46n), P | RW | US);
    expect(tr(w, 0x400000n, U).o.errorCode).toBe(PfErr.P | PfErr.RSVD | PfErr.U);
    const w52 = new GuestWalker(w.regs, m.mem, { maxPhyAddr: 52 });
    expect(tr(w52, 0x400000n, U).ok).toBe(true);
  });

  it("SDM 4.5.4: PS is reserved in a PML4E", () => {
    const { m, root, w } = setup4();
    m.w64(root, P | RW | PS | 0x5000n);
    expect(tr(w, 0x1000n, R).o.errorCode).toBe(PfErr.P | PfErr.RSVD);
  });

  it("SDM 4.5.4: a reserved bit ends the walk before lower levels are read", () => {
    const { m, root, w } = setup4();
    const used = map(m, root, 0x400000n, 0x5000n, P | RW | US);
    m.w64(used[1]!, m.r64(used[1]!) | (1n << 50n));
    m.w64(used[3]!, 0n); // not present below, but the reserved bit wins
    expect(tr(w, 0x400000n, W).o.errorCode).toBe(PfErr.P | PfErr.RSVD | PfErr.W);
  });

  it("SDM 4.5.4: a 2 MiB page maps bits 20:0; bits 20:13 of its PDE are reserved", () => {
    const { m, root, w } = setup4();
    const used = map(m, root, 0x40000000n, 0x600000n, P | RW | PS | US, { leafLevel: 2 });
    const ok = tr(w, 0x40000000n + 0x12345n, U);
    expect(ok.ok).toBe(true);
    expect(ok.o.paddr).toBe(0x600000 + 0x12345);
    expect(ok.o.pageSize).toBe(0x200000);
    m.w64(used.at(-1)!, m.r64(used.at(-1)!) | 0x2000n);
    expect(tr(w, 0x40000000n, U).o.errorCode).toBe(PfErr.P | PfErr.RSVD | PfErr.U);
    // Bit 12 is PAT, not an address bit.
    m.w64(used.at(-1)!, (m.r64(used.at(-1)!) & ~0x2000n) | 0x1000n);
    expect(tr(w, 0x40000000n + 0x12345n, U).o.paddr).toBe(0x612345);
  });

  it("SDM 4.5.4: a 1 GiB page maps bits 29:0; without 1 GiB support PDPTE.PS is reserved", () => {
    const { m, regs, root, w } = setup4();
    map(m, root, 0x80_0000_0000n, 0x4000_0000n, P | RW | PS, { leafLevel: 3 });
    const ok = tr(w, 0x80_1234_5678n, W);
    expect(ok.ok).toBe(true);
    expect(ok.o.paddr).toBe(0x4000_0000 + 0x1234_5678);
    expect(ok.o.pageSize).toBe(0x4000_0000);
    const w2 = new GuestWalker(regs, m.mem, { pages1G: false });
    expect(tr(w2, 0x80_1234_5678n, R).o.errorCode).toBe(PfErr.P | PfErr.RSVD);
  });

  it("SDM 4.10.2.4: G in the leaf makes the translation global only with CR4.PGE", () => {
    const { m, regs, root, w } = setup4();
    map(m, root, 0x400000n, 0x5000n, P | RW | G);
    expect(tr(w, 0x400000n, R).o.global).toBe(false);
    regs.cr4 |= CR4.PGE;
    expect(tr(w, 0x400000n, R).o.global).toBe(true);
  });

  it("SDM 4.5: 5-level paging (CR4.LA57) indexes a PML5 with bits 56:48", () => {
    const { m, root, w } = setup4(5);
    const lin = 0x00ab_cdef_1234_5000n;
    map(m, root, lin, 0x9000n, P | RW | US, { levels: 5 });
    const r = tr(w, lin + 0x10n, U);
    expect(r.ok).toBe(true);
    expect(r.o.paddr).toBe(0x9010);
    expect(tr(w, lin ^ (1n << 48n), U).o.errorCode).toBe(PfErr.U);
  });

  it("SDM 4.5: high-half (canonical) addresses index from bits 47:39", () => {
    const { m, root, w } = setup4();
    const lin = 0xffff_8000_0010_0000n;
    map(m, root, lin, 0x7000n, P | RW);
    const r = tr(w, lin + 0x8n, R);
    expect(r.ok).toBe(true);
    expect(r.o.paddr).toBe(0x7008);
  });

  it("a page table that points at itself ends after four levels", () => {
    const { m, root, w } = setup4();
    m.w64(root, root | P | RW | US);
    // Every level reads the same table: the walk ends at level 1, "mapping" the table itself.
    const r = tr(w, 0n, U);
    expect(r.ok).toBe(true);
    expect(r.o.paddr).toBe(Number(root));
  });
});

describe("A/D updates on shared memory (SDM Vol. 3A 4.8)", () => {
  it("SDM 4.8: an entry changed by another processor between read and update restarts the walk", () => {
    const { m, root, regs } = setup4();
    const used = map(m, root, 0x400000n, 0x5000n, P | RW | US);
    const leaf = Number(used.at(-1)!);
    let raced = false;
    // Another vCPU clears P in the PTE just as this one is about to set its A flag.
    const racing = {
      read32: (pa: number) => m.mem.read32(pa),
      write32: (pa: number, v: number) => m.mem.write32(pa, v),
      cmpxchg32: (pa: number, expected: number, replacement: number) => {
        if (pa === leaf && !raced) {
          raced = true;
          m.mem.write32(pa, m.mem.read32(pa) & ~1);
        }
        return m.mem.cmpxchg32(pa, expected, replacement);
      },
    };
    const w = new GuestWalker(regs, racing);
    const r = tr(w, 0x400000n, W);
    expect(raced).toBe(true);
    expect(r.ok).toBe(false);
    expect(r.o.errorCode).toBe(PfErr.W);
    expect(m.r64(used.at(-1)!) & (A | D | P)).toBe(0n);
  });
});
