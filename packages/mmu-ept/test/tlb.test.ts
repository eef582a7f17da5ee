import { describe, expect, it } from "vitest";
import { Access, CR4, Mmu, PfErr, TranslateFault } from "../src/index.js";
import { A, D, G, halves, Machine, map, out, P, PS, Regs, RW, US } from "./helpers.js";

function setup() {
  const m = new Machine();
  const regs = new Regs();
  const root = m.alloc();
  regs.cr3 = root;
  const mmu = new Mmu(regs, m.mem);
  return { m, regs, root, mmu };
}

function tr(mmu: Mmu, lin: bigint, access = 0) {
  const o = out();
  const [lo, hi] = halves(lin);
  const ok = mmu.translate(lo, hi, access, o);
  return ok ? o.paddr : o.fault === TranslateFault.PAGE_FAULT ? `#PF${o.errorCode}` : "exit";
}

/** Remaps the leaf of `lin` so that a stale TLB entry and a fresh walk give different answers. */
function remap(m: Machine, root: bigint, lin: bigint, pa: bigint, flags = P | RW | US) {
  map(m, root, lin, pa, flags);
}

describe("TLB (SDM Vol. 3A 4.10)", () => {
  it("SDM 4.10.2: a cached translation is used until invalidated (INVLPG)", () => {
    const { m, root, mmu } = setup();
    remap(m, root, 0x400000n, 0x5000n);
    expect(tr(mmu, 0x400010n)).toBe(0x5010);
    remap(m, root, 0x400000n, 0x6000n);
    expect(tr(mmu, 0x400010n)).toBe(0x5010);
    mmu.invlpg(0x400000, 0);
    expect(tr(mmu, 0x400010n)).toBe(0x6010);
  });

  it("SDM 4.10.4.1: a page fault drops the entry, so a walk sees the tables as they are now", () => {
    const { m, root, mmu } = setup();
    remap(m, root, 0x400000n, 0x5000n, P | US);
    expect(tr(mmu, 0x400000n, Access.USER)).toBe(0x5000);
    // Made writable in memory without INVLPG: the cached read-only entry would fault, so the walk runs.
    remap(m, root, 0x400000n, 0x5000n, P | RW | US);
    expect(tr(mmu, 0x400000n, Access.USER | Access.WRITE)).toBe(0x5000);
  });

  it("SDM 4.8: a write through an entry cached with D=0 walks and sets D", () => {
    const { m, root, mmu } = setup();
    const used = map(m, root, 0x400000n, 0x5000n, P | RW | US);
    tr(mmu, 0x400000n);
    expect(m.r64(used.at(-1)!) & D).toBe(0n);
    tr(mmu, 0x400000n, Access.WRITE);
    expect(m.r64(used.at(-1)!) & (A | D)).toBe(A | D);
  });

  it("SDM 4.6: cached rights are checked against the current CR4.SMAP and RFLAGS.AC", () => {
    const { m, regs, root, mmu } = setup();
    remap(m, root, 0x400000n, 0x5000n);
    expect(tr(mmu, 0x400000n)).toBe(0x5000);
    regs.cr4 |= CR4.SMAP;
    expect(tr(mmu, 0x400000n)).toBe(`#PF${PfErr.P}`);
    expect(tr(mmu, 0x400000n, Access.AC)).toBe(0x5000);
  });

  it("SDM 4.6.2: a WRPKRU that sets AD makes the next access to a cached user page fault", () => {
    const { m, regs, root, mmu } = setup();
    regs.cr4 |= CR4.PKE;
    remap(m, root, 0x400000n, 0x5000n, P | RW | US | (2n << 59n));
    expect(tr(mmu, 0x400000n, Access.USER)).toBe(0x5000);
    expect(tr(mmu, 0x400000n, Access.USER)).toBe(0x5000);
    regs.pkru = 1 << 4;
    expect(tr(mmu, 0x400000n, Access.USER)).toBe(`#PF${PfErr.P | PfErr.U | PfErr.PK}`);
    regs.pkru = 0;
    expect(tr(mmu, 0x400000n, Access.USER)).toBe(0x5000);
  });

  it("SDM 4.10.4.1: MOV to CR3 without PCIDs drops non-global entries and keeps global ones", () => {
    const { m, regs, root, mmu } = setup();
    regs.cr4 |= CR4.PGE;
    remap(m, root, 0x400000n, 0x5000n);
    remap(m, root, 0x401000n, 0x6000n, P | RW | G);
    tr(mmu, 0x400000n);
    tr(mmu, 0x401000n);
    remap(m, root, 0x400000n, 0x7000n);
    remap(m, root, 0x401000n, 0x8000n, P | RW | G);
    mmu.movCr3();
    expect(tr(mmu, 0x400000n)).toBe(0x7000);
    expect(tr(mmu, 0x401000n)).toBe(0x6000);
  });

  it("SDM 4.10.4.1: changing CR4.PGE drops global entries too", () => {
    const { m, regs, root, mmu } = setup();
    regs.cr4 |= CR4.PGE;
    remap(m, root, 0x401000n, 0x6000n, P | RW | G);
    tr(mmu, 0x401000n);
    remap(m, root, 0x401000n, 0x8000n, P | RW | G);
    const old = regs.cr4;
    regs.cr4 &= ~CR4.PGE;
    mmu.movCr4(old, regs.cr4);
    expect(tr(mmu, 0x401000n)).toBe(0x8000);
  });

  it("SDM 4.10.4.1: changing CR4.PAE, or setting CR4.SMEP, drops the cached entries; CR4.SMAP does not", () => {
    const { m, regs, root, mmu } = setup();
    remap(m, root, 0x400000n, 0x5000n);
    tr(mmu, 0x400000n);
    remap(m, root, 0x400000n, 0x6000n);
    mmu.movCr4(regs.cr4, regs.cr4 | CR4.SMAP);
    expect(tr(mmu, 0x400000n)).toBe(0x5000);
    mmu.movCr4(regs.cr4, regs.cr4 | CR4.SMEP);
    expect(tr(mmu, 0x400000n)).toBe(0x6000);
  });

  it("SDM 4.10.4.1: clearing CR0.PG drops everything", () => {
    const { m, regs, root, mmu } = setup();
    regs.cr4 |= CR4.PGE;
    remap(m, root, 0x400000n, 0x5000n, P | G);
    tr(mmu, 0x400000n);
    remap(m, root, 0x400000n, 0x6000n, P | G);
    mmu.movCr0(regs.cr0, regs.cr0 & ~0x80000000);
    expect(tr(mmu, 0x400000n)).toBe(0x6000);
  });

  it("SDM 4.10.1: entries are tagged by PCID; MOV CR3 with bit 63 keeps them", () => {
    const { m, regs, root, mmu } = setup();
    regs.cr4 |= CR4.PCIDE;
    const root2 = m.alloc();
    remap(m, root, 0x400000n, 0x5000n);
    remap(m, root2, 0x400000n, 0x6000n);
    regs.cr3 = root | 1n;
    mmu.movCr3(true);
    expect(tr(mmu, 0x400000n)).toBe(0x5000);
    regs.cr3 = root2 | 2n;
    mmu.movCr3(true);
    expect(tr(mmu, 0x400000n)).toBe(0x6000);
    remap(m, root, 0x400000n, 0x7000n);
    regs.cr3 = root | 1n;
    mmu.movCr3(true); // no flush: PCID 1's stale entry is still there
    expect(tr(mmu, 0x400000n)).toBe(0x5000);
    regs.cr3 = root | 1n;
    mmu.movCr3(false); // flushes PCID 1 only
    expect(tr(mmu, 0x400000n)).toBe(0x7000);
    remap(m, root2, 0x400000n, 0x8000n);
    regs.cr3 = root2 | 2n;
    mmu.movCr3(true);
    expect(tr(mmu, 0x400000n)).toBe(0x6000);
  });

  it("SDM 4.10.4.1: INVLPG drops every 4 KiB piece of a 2 MiB page and global entries in other PCIDs", () => {
    const { m, regs, root, mmu } = setup();
    regs.cr4 |= CR4.PCIDE | CR4.PGE;
    map(m, root, 0x40_0000n, 0x20_0000n, P | RW | PS | G, { leafLevel: 2 });
    expect(tr(mmu, 0x40_0000n)).toBe(0x20_0000);
    expect(tr(mmu, 0x5f_f000n)).toBe(0x3f_f000);
    map(m, root, 0x40_0000n, 0x80_0000n, P | RW | PS | G, { leafLevel: 2 });
    regs.cr3 = root | 5n; // another PCID: global entries still match
    expect(tr(mmu, 0x5f_f000n)).toBe(0x3f_f000);
    mmu.invlpg(0x41_2345, 0);
    expect(tr(mmu, 0x40_0000n)).toBe(0x80_0000);
    expect(tr(mmu, 0x5f_f000n)).toBe(0x9f_f000);
  });

  it("SDM INVPCID: types 0 and 1 spare global entries, type 2 drops them, type 3 spares them", () => {
    const { m, regs, root, mmu } = setup();
    regs.cr4 |= CR4.PCIDE | CR4.PGE;
    regs.cr3 = root | 3n;
    const fill = () => {
      remap(m, root, 0x400000n, 0x5000n);
      remap(m, root, 0x401000n, 0x6000n, P | RW | G);
      mmu.flushAll();
      tr(mmu, 0x400000n);
      tr(mmu, 0x401000n);
      remap(m, root, 0x400000n, 0x7000n);
      remap(m, root, 0x401000n, 0x8000n, P | RW | G);
    };
    const both = () => [tr(mmu, 0x400000n), tr(mmu, 0x401000n)];
    fill();
    mmu.invpcid(0, 4, 0x400000, 0); // other PCID: nothing
    expect(both()).toEqual([0x5000, 0x6000]);
    mmu.invpcid(0, 3, 0x400000, 0);
    mmu.invpcid(0, 3, 0x401000, 0);
    expect(both()).toEqual([0x7000, 0x6000]);
    fill();
    mmu.invpcid(1, 3, 0, 0);
    expect(both()).toEqual([0x7000, 0x6000]);
    fill();
    mmu.invpcid(3, 0, 0, 0);
    expect(both()).toEqual([0x7000, 0x6000]);
    fill();
    mmu.invpcid(2, 0, 0, 0);
    expect(both()).toEqual([0x7000, 0x8000]);
    expect(mmu.invpcid(4, 0, 0, 0)).toBe(false);
  });

  it("SDM Vol. 3C 29.4: entries are tagged by VPID; INVVPID types 0-3", () => {
    const { m, regs, root, mmu } = setup();
    regs.cr4 |= CR4.PGE;
    const fill = () => {
      mmu.flushAll();
      remap(m, root, 0x400000n, 0x5000n);
      remap(m, root, 0x401000n, 0x6000n, P | RW | G);
      for (const v of [0, 1, 2]) {
        mmu.vpid = v;
        tr(mmu, 0x400000n);
        tr(mmu, 0x401000n);
      }
      remap(m, root, 0x400000n, 0x7000n);
      remap(m, root, 0x401000n, 0x8000n, P | RW | G);
    };
    const seen = (v: number) => {
      mmu.vpid = v;
      return [tr(mmu, 0x400000n), tr(mmu, 0x401000n)];
    };
    fill();
    mmu.vpid = 2;
    mmu.invlpg(0x400000, 0); // the current VPID only
    expect(seen(1)).toEqual([0x5000, 0x6000]);
    expect(seen(2)).toEqual([0x7000, 0x6000]);
    fill();
    mmu.invvpid(0, 1, 0x401000, 0);
    expect(seen(1)).toEqual([0x5000, 0x8000]);
    expect(seen(2)).toEqual([0x5000, 0x6000]);
    fill();
    mmu.invvpid(1, 1);
    expect(seen(1)).toEqual([0x7000, 0x8000]);
    expect(seen(2)).toEqual([0x5000, 0x6000]);
    fill();
    mmu.invvpid(3, 2);
    expect(seen(2)).toEqual([0x7000, 0x6000]);
    fill();
    mmu.invvpid(2, 0);
    expect(seen(0)).toEqual([0x5000, 0x6000]);
    expect(seen(1)).toEqual([0x7000, 0x8000]);
    expect(seen(2)).toEqual([0x7000, 0x8000]);
  });

  it("SDM Vol. 3C 29.4: combined mappings are tagged by EPT root; INVEPT types 1 and 2", () => {
    const { m, root, mmu } = setup();
    // Two EPT roots: guest page tables identity-mapped, guest-physical 0x5000 / 0x6000 sent to two
    // different host ranges.
    const RWX = 7n;
    remap(m, root, 0x400000n, 0x5000n);
    const roots: bigint[] = [m.alloc(), m.alloc()];
    roots.forEach((er, k) => {
      const base = k === 0 ? 0x100_0000n : 0x180_0000n;
      for (const g of [0x5000n, 0x6000n]) map(m, er, g, base + g, RWX | (6n << 3n), { upper: RWX });
      for (let g = 0x10_0000n; g < 0x14_0000n; g += 0x1000n)
        map(m, er, g, g, RWX | (6n << 3n), { upper: RWX });
    });
    const eptp = (er: bigint) => ({ lo: Number(er) | 6 | (3 << 3), hi: 0 });
    const fill = () => {
      mmu.flushAll();
      remap(m, root, 0x400000n, 0x5000n);
      for (const er of roots) {
        mmu.setEptp(eptp(er));
        tr(mmu, 0x400000n);
      }
      mmu.setEptp(null);
      tr(mmu, 0x400000n);
      remap(m, root, 0x400000n, 0x6000n);
    };
    const seen = () => {
      const r: (string | number)[] = [];
      for (const er of roots) {
        mmu.setEptp(eptp(er));
        r.push(tr(mmu, 0x400000n));
      }
      mmu.setEptp(null);
      r.push(tr(mmu, 0x400000n));
      return r;
    };
    fill();
    expect(seen()).toEqual([0x100_5000, 0x180_5000, 0x5000]);
    mmu.invept(1, eptp(roots[1]!).lo, 0);
    expect(seen()).toEqual([0x100_5000, 0x180_6000, 0x5000]);
    fill();
    mmu.invept(2);
    expect(seen()).toEqual([0x100_6000, 0x180_6000, 0x5000]);
    expect(mmu.invept(3)).toBe(false);
  });

  it("SDM Vol. 3C 29.4.3.1: VMX transitions without VPIDs drop VPID 0's mappings; with VPIDs they keep them", () => {
    const { m, root, mmu } = setup();
    remap(m, root, 0x400000n, 0x5000n);
    tr(mmu, 0x400000n); // cached for VPID 0 (VMX root)
    remap(m, root, 0x400000n, 0x6000n);
    mmu.vmTransition(3, true, null); // VM entry with VPID 3
    expect(tr(mmu, 0x400000n)).toBe(0x6000);
    remap(m, root, 0x400000n, 0x7000n);
    mmu.vmTransition(0, true, null); // VM exit from the VPID-3 guest: VPID 0's entry survives
    expect(tr(mmu, 0x400000n)).toBe(0x5000);
    mmu.vmTransition(3, true, null);
    expect(tr(mmu, 0x400000n)).toBe(0x6000); // VPID 3's own entry survived too
    mmu.vmTransition(9, false, null); // VM entry with "enable VPID" = 0: flushes VPID 0
    expect(mmu.vpid).toBe(0);
    expect(tr(mmu, 0x400000n)).toBe(0x7000);
  });

  it("translations with paging off are never cached", () => {
    const { regs, mmu } = setup();
    regs.cr0 = 1;
    expect(tr(mmu, 0x1234n)).toBe(0x1234);
    expect(mmu.tlb!.count()).toBe(0);
  });
});

describe("TLB and protection keys", () => {
  it("SDM 4.10.2.2: the TLB caches the protection key, so setting CR4.PKE applies it to cached entries", () => {
    const { m, regs, root, mmu } = setup();
    remap(m, root, 0x400000n, 0x5000n, P | RW | US | (9n << 59n));
    regs.pkru = 1 << 18; // AD for key 9
    expect(tr(mmu, 0x400000n, Access.USER)).toBe(0x5000);
    regs.cr4 |= CR4.PKE;
    expect(tr(mmu, 0x400000n, Access.USER)).toBe(`#PF${PfErr.P | PfErr.U | PfErr.PK}`);
  });
});
