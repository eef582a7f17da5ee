import { describe, expect, it } from "vitest";
import {
  Access,
  CR4,
  checkEptp,
  DEFAULT_EPT_VPID_CAP,
  EptAccess,
  EptExit,
  EptQual,
  EptWalker,
  eptCapsFromMsr,
  GuestWalker,
  TranslateFault,
} from "../src/index.js";
import { A, halves, Machine, map, out, P, PS, Regs, RW, US } from "./helpers.js";

// EPT entry bits (SDM Vol. 3C 29.3.2).
const ER = 1n;
const EW = 2n;
const EX = 4n;
const RWX = ER | EW | EX;
const WB = 6n << 3n;
const EA = 1n << 8n;
const ED = 1n << 9n;
const caps = eptCapsFromMsr(DEFAULT_EPT_VPID_CAP.lo, DEFAULT_EPT_VPID_CAP.hi);

function eptSetup(ad = false) {
  const m = new Machine();
  const root = m.alloc();
  const ept = new EptWalker(m.mem);
  ept.setEptp(Number(root) | 6 | (3 << 3) | (ad ? 0x40 : 0), 0);
  return { m, root, ept };
}
const emap = (m: Machine, root: bigint, gpa: bigint, hpa: bigint, leaf: bigint, leafLevel = 1) =>
  map(m, root, gpa, hpa, leaf, { leafLevel, upper: RWX });

describe("EPT translation (SDM Vol. 3C 29.3.2)", () => {
  it("SDM 29.3.2: 4 KiB, 2 MiB and 1 GiB EPT pages", () => {
    const { m, root, ept } = eptSetup();
    emap(m, root, 0x5000n, 0x9000n, RWX | WB);
    emap(m, root, 0x40_0000n, 0x80_0000n, RWX | WB | PS, 2);
    emap(m, root, 0x1_0000_0000n, 0x4000_0000n, RWX | WB | PS, 3);
    expect(ept.translate(0x5123, EptAccess.READ, false)).toBe(true);
    expect(ept.hpa).toBe(0x9123);
    expect(ept.translate(0x41_2345, EptAccess.WRITE, false)).toBe(true);
    expect(ept.hpa).toBe(0x81_2345);
    expect(ept.pageSize).toBe(0x20_0000);
    expect(ept.translate(0x1_1234_5678, EptAccess.FETCH, false)).toBe(true);
    expect(ept.hpa).toBe(0x5234_5678);
    expect(ept.memType).toBe(6);
  });

  it("SDM 29.3.3.2: a not-present entry is a violation reporting no permissions", () => {
    const { ept } = eptSetup();
    expect(ept.translate(0x5000, EptAccess.WRITE, false)).toBe(false);
    expect(ept.exitReason).toBe(EptExit.VIOLATION);
    expect(ept.qual).toBe(EptQual.WRITE);
  });

  it("SDM 29.3.3.2: a write to a read/execute page is a violation reporting R and X found", () => {
    const { m, root, ept } = eptSetup();
    emap(m, root, 0x5000n, 0x9000n, ER | EX | WB);
    expect(ept.translate(0x5000, EptAccess.WRITE, false)).toBe(false);
    expect(ept.qual).toBe(EptQual.WRITE | EptQual.READABLE | EptQual.EXECUTABLE);
    expect(ept.translate(0x5000, EptAccess.READ, false)).toBe(true);
  });

  it("SDM 29.3.3.2: permissions are the AND over every level", () => {
    const { m, root, ept } = eptSetup();
    const used = emap(m, root, 0x5000n, 0x9000n, RWX | WB);
    m.w64(used[1]!, m.r64(used[1]!) & ~EX);
    expect(ept.translate(0x5000, EptAccess.FETCH, false)).toBe(false);
    expect(ept.qual).toBe(EptQual.FETCH | EptQual.READABLE | EptQual.WRITABLE);
  });

  it("SDM 29.3.3.1: write-without-read is a misconfiguration", () => {
    const { m, root, ept } = eptSetup();
    emap(m, root, 0x5000n, 0x9000n, EW | WB);
    expect(ept.translate(0x5000, EptAccess.READ, false)).toBe(false);
    expect(ept.exitReason).toBe(EptExit.MISCONFIG);
  });

  it("SDM 29.3.3.1: execute-only is a misconfiguration unless supported, then reads violate", () => {
    const { m, root, ept } = eptSetup();
    emap(m, root, 0x5000n, 0x9000n, EX | WB);
    expect(ept.translate(0x5000, EptAccess.FETCH, false)).toBe(true);
    expect(ept.translate(0x5000, EptAccess.READ, false)).toBe(false);
    expect(ept.exitReason).toBe(EptExit.VIOLATION);
    const noXo = new EptWalker(m.mem, { caps: { ...caps, executeOnly: false } });
    noXo.setEptp(ept.eptpLo, 0);
    expect(noXo.translate(0x5000, EptAccess.FETCH, false)).toBe(false);
    expect(noXo.exitReason).toBe(EptExit.MISCONFIG);
  });

  it("SDM 29.3.3.1: memory types 2, 3 and 7 in the last entry are misconfigurations", () => {
    const { m, root, ept } = eptSetup();
    for (const mt of [2n, 3n, 7n]) {
      emap(m, root, 0x5000n, 0x9000n, RWX | (mt << 3n));
      expect(ept.translate(0x5000, EptAccess.READ, false)).toBe(false);
      expect(ept.exitReason).toBe(EptExit.MISCONFIG);
    }
    for (const mt of [0n, 1n, 4n, 5n, 6n]) {
      emap(m, root, 0x5000n, 0x9000n, RWX | (mt << 3n));
      expect(ept.translate(0x5000, EptAccess.READ, false)).toBe(true);
    }
  });

  it("SDM 29.3.3.1: reserved bits (7:3 of a PML4E, 6:3 of a non-leaf PDE, 20:12 of a 2 MiB page, 51:M)", () => {
    const cases: [number, bigint][] = [
      [0, 1n << 3n],
      [2, 1n << 4n],
      [3, 1n << 46n],
    ];
    for (const [level, bit] of cases) {
      const { m, root, ept } = eptSetup();
      const used = emap(m, root, 0x5000n, 0x9000n, RWX | WB);
      m.w64(used[level]!, m.r64(used[level]!) | bit);
      expect(ept.translate(0x5000, EptAccess.READ, false), `level ${level}`).toBe(false);
      expect(ept.exitReason).toBe(EptExit.MISCONFIG);
    }
    const { m, root, ept } = eptSetup();
    emap(m, root, 0x40_0000n, 0x80_0000n | 0x1000n, RWX | WB | PS, 2);
    expect(ept.translate(0x40_0000, EptAccess.READ, false)).toBe(false);
    expect(ept.exitReason).toBe(EptExit.MISCONFIG);
  });

  it("SDM 29.3.3.1: a misconfigured entry below a not-readable one still misconfigures", () => {
    const { m, root, ept } = eptSetup();
    const used = emap(m, root, 0x5000n, 0x9000n, EW | WB);
    m.w64(used[0]!, (m.r64(used[0]!) & ~7n) | EX);
    expect(ept.translate(0x5000, EptAccess.READ, false)).toBe(false);
    expect(ept.exitReason).toBe(EptExit.MISCONFIG);
  });

  it("SDM 29.3.5: with EPTP bit 6, A is set on every entry used and D on the leaf of a write", () => {
    const { m, root, ept } = eptSetup(true);
    const used = emap(m, root, 0x5000n, 0x9000n, RWX | WB);
    ept.translate(0x5000, EptAccess.READ, false);
    for (const ea of used) expect(m.r64(ea) & (EA | ED)).toBe(EA);
    ept.translate(0x5000, EptAccess.WRITE, false);
    expect(m.r64(used.at(-1)!) & (EA | ED)).toBe(EA | ED);
    const { m: m2, root: r2, ept: noAd } = eptSetup(false);
    const u2 = emap(m2, r2, 0x5000n, 0x9000n, RWX | WB);
    noAd.translate(0x5000, EptAccess.WRITE, false);
    for (const ea of u2) expect(m2.r64(ea) & (EA | ED)).toBe(0n);
  });

  it("SDM 29.3.2: 5-level EPT walks (EPTP bits 5:3 = 4)", () => {
    const m = new Machine();
    const root = m.alloc();
    const ept = new EptWalker(m.mem);
    ept.setEptp(Number(root) | 6 | (4 << 3), 0);
    map(m, root, 0x1_0000_0000_5000n, 0x9000n, RWX | WB, { levels: 5, upper: RWX });
    expect(ept.translate(0x1_0000_0000_5004, EptAccess.READ, false)).toBe(true);
    expect(ept.hpa).toBe(0x9004);
  });

  it("mode-based execute control: bit 10 gates fetches from user-mode linear addresses", () => {
    const m = new Machine();
    const root = m.alloc();
    const ept = new EptWalker(m.mem, { modeBasedExecute: true });
    ept.setEptp(Number(root) | 6 | (3 << 3), 0);
    map(m, root, 0x5000n, 0x9000n, ER | EX | WB, { upper: RWX | (1n << 10n) });
    expect(ept.translate(0x5000, EptAccess.FETCH, false)).toBe(true);
    expect(ept.translate(0x5000, EptAccess.FETCH, true)).toBe(false);
    expect(ept.qual).toBe(EptQual.FETCH | EptQual.READABLE | EptQual.EXECUTABLE);
  });
});

describe("EPTP check (SDM Vol. 3C 27.2.1.1)", () => {
  const ok = 0x1000 | 6 | (3 << 3);
  it.each([
    ["valid WB, 4-level", ok, 0, null],
    ["valid UC, 5-level with A/D", 0x1000 | 0 | (4 << 3) | 0x40, 0, null],
    ["memory type WT", 0x1000 | 4 | (3 << 3), 0, "EptpMemoryType"],
    ["walk length 3", 0x1000 | 6 | (2 << 3), 0, "EptpWalkLength"],
    ["bit 7 without shadow-stack support", ok | 0x80, 0, "EptpShadowStack"],
    ["bits 11:8", ok | 0x100, 0, "EptpReservedBits"],
    ["bit 46 with MAXPHYADDR 46", ok, 0x4000, "EptpReservedBits"],
    ["bit 63", ok, 0x80000000 | 0, "EptpReservedBits"],
  ] as const)("%s", (_name, lo, hi, want) => {
    expect(checkEptp(lo, hi, caps, 46)).toBe(want);
  });
  it("A/D only when IA32_VMX_EPT_VPID_CAP bit 21 says so; 5-level only with bit 7", () => {
    const noAd = { ...caps, accessDirty: false, walk5: false };
    expect(checkEptp(ok | 0x40, 0, noAd, 46)).toBe("EptpAccessDirty");
    expect(checkEptp(0x1000 | 6 | (4 << 3), 0, noAd, 46)).toBe("EptpWalkLength");
  });
});

describe("the two-dimensional walk (SDM Vol. 3C 29.3.2, 28.2.1)", () => {
  // Guest: 4-level tables in guest-physical memory at 0x100000.., identity-mapped by EPT at +0x800000.
  function setup2d(ad = false) {
    const m = new Machine(1 << 25);
    const eroot = 0x1f0_0000n;
    const ept = new EptWalker(m.mem);
    ept.setEptp(Number(eroot) | 6 | (3 << 3) | (ad ? 0x40 : 0), 0);
    // EPT tables are allocated from their own region.
    let enext = eroot + 0x1000n;
    const ealloc = () => {
      const p = enext;
      enext += 0x1000n;
      return p;
    };
    const emap2 = (gpa: bigint, hpa: bigint, leaf: bigint) => {
      let table = eroot;
      const used: bigint[] = [];
      for (let l = 4; l > 1; l--) {
        const ea = table + ((gpa >> BigInt(12 + 9 * (l - 1))) & 0x1ffn) * 8n;
        used.push(ea);
        let e = m.r64(ea);
        if ((e & 7n) === 0n) {
          e = ealloc() | RWX;
          m.w64(ea, e);
        }
        table = e & 0xffffffffff000n;
      }
      const ea = table + ((gpa >> 12n) & 0x1ffn) * 8n;
      used.push(ea);
      m.w64(ea, hpa | leaf | WB);
      return used;
    };
    const regs = new Regs();
    const gRoot = 0x10_0000n;
    regs.cr3 = gRoot;
    const w = new GuestWalker(regs, m.mem);
    w.ept = ept;
    // Guest tables live at guest-physical 0x100000.. and host-physical 0x900000..
    const H = 0x80_0000n;
    const gAlloc = { next: gRoot + 0x1000n };
    const gmap = (lin: bigint, gpa: bigint, leaf: bigint) => {
      let table = gRoot;
      const used: bigint[] = [];
      for (let l = 4; l > 1; l--) {
        const ea = table + ((lin >> BigInt(12 + 9 * (l - 1))) & 0x1ffn) * 8n;
        used.push(ea);
        let e = m.r64(ea + H);
        if ((e & 1n) === 0n) {
          e = gAlloc.next | P | RW | US;
          gAlloc.next += 0x1000n;
          m.w64(ea + H, e);
        }
        table = e & 0xffffffffff000n;
      }
      const ea = table + ((lin >> 12n) & 0x1ffn) * 8n;
      used.push(ea);
      m.w64(ea + H, gpa | leaf);
      return used;
    };
    return { m, w, ept, emap2, gmap, H, regs };
  }

  function tr(w: GuestWalker, lin: bigint, access: number) {
    const o = out();
    const [lo, hi] = halves(lin);
    return { ok: w.translate(lo, hi, access, o), o };
  }

  it("SDM 29.3.2: each guest entry is read through EPT, then the final address", () => {
    const { m, w, emap2, gmap, H } = setup2d();
    const gUsed = gmap(0x40_1000n, 0x7000n, P | RW | US);
    for (const e of gUsed) emap2(e & ~0xfffn, (e & ~0xfffn) + H, RWX);
    emap2(0x7000n, 0xabc000n, RWX);
    const r = tr(w, 0x40_1010n, Access.WRITE | Access.USER);
    expect(r.ok).toBe(true);
    expect(r.o.paddr).toBe(0xabc010);
    // Guest A/D flags land in host memory.
    expect(m.r64(gUsed.at(-1)! + H) & 0x60n).toBe(0x60n);
  });

  it("Table 28-7: an EPT violation on a guest paging-structure access has bit 7 set, bit 8 clear", () => {
    const { w, emap2, gmap, H } = setup2d();
    const gUsed = gmap(0x40_1000n, 0x7000n, P | RW | US);
    for (const e of gUsed.slice(0, -1)) emap2(e & ~0xfffn, (e & ~0xfffn) + H, RWX);
    const r = tr(w, 0x40_1010n, Access.USER);
    expect(r.ok).toBe(false);
    expect(r.o.fault).toBe(TranslateFault.EXIT);
    expect(w.exitReason).toBe(EptExit.VIOLATION);
    expect(w.exitQual).toBe(EptQual.READ | EptQual.LINEAR_VALID);
    expect(w.exitGpa).toBe(Number(gUsed.at(-1)!));
    expect([w.exitLinLo, w.exitLinHi]).toEqual([0x40_1010, 0]);
  });

  it("Table 28-7: an EPT violation on the final access has bits 7 and 8, plus the linear rights", () => {
    const { w, emap2, gmap, H } = setup2d();
    const gUsed = gmap(0x40_1000n, 0x7000n, P | US);
    for (const e of gUsed) emap2(e & ~0xfffn, (e & ~0xfffn) + H, RWX);
    emap2(0x7000n, 0xabc000n, ER);
    const r = tr(w, 0x40_1010n, Access.FETCH | Access.USER);
    expect(r.ok).toBe(false);
    expect(w.exitQual).toBe(
      EptQual.FETCH | EptQual.READABLE | EptQual.LINEAR_VALID | EptQual.FINAL_ACCESS | EptQual.LINEAR_USER,
    );
    expect(w.exitGpa).toBe(0x7010);
  });

  it("SDM 29.3.3.2: with EPT A/D, guest paging-structure accesses are writes (bits 0 and 1)", () => {
    const { m, w, emap2, gmap, H } = setup2d(true);
    const gUsed = gmap(0x40_1000n, 0x7000n, P | RW | US);
    const eUsed: bigint[][] = [];
    for (const e of gUsed.slice(0, 2)) eUsed.push(emap2(e & ~0xfffn, (e & ~0xfffn) + H, RWX));
    emap2(gUsed[2]! & ~0xfffn, (gUsed[2]! & ~0xfffn) + H, ER);
    const r = tr(w, 0x40_1010n, 0);
    expect(r.ok).toBe(false);
    expect(w.exitQual).toBe(EptQual.READ | EptQual.WRITE | EptQual.READABLE | EptQual.LINEAR_VALID);
    // The first guest table's EPT leaf got A and D: the access counted as a write.
    expect(m.r64(eUsed[0]!.at(-1)!) & (EA | ED)).toBe(EA | ED);
  });

  it("SDM 29.3.2: guest #PF comes first when the guest tables fault before EPT does", () => {
    const { w, emap2, gmap, H } = setup2d();
    const gUsed = gmap(0x40_1000n, 0x7000n, P | RW);
    for (const e of gUsed) emap2(e & ~0xfffn, (e & ~0xfffn) + H, RWX);
    const r = tr(w, 0x40_1010n, Access.USER);
    expect(r.o.fault).toBe(TranslateFault.PAGE_FAULT);
    expect(r.o.errorCode).toBe(5);
  });

  it("setting a guest A flag needs EPT write access to the guest table", () => {
    const { m, w, emap2, gmap, H } = setup2d();
    const gUsed = gmap(0x40_1000n, 0x7000n, P | RW | US);
    for (const e of gUsed) emap2(e & ~0xfffn, (e & ~0xfffn) + H, ER | EX);
    emap2(0x7000n, 0xabc000n, RWX);
    const r = tr(w, 0x40_1010n, 0);
    expect(r.o.fault).toBe(TranslateFault.EXIT);
    expect(w.exitQual & 3).toBe(3);
    expect(w.exitGpa).toBe(Number(gUsed[0]!));
    // Once A is set everywhere, reads need no write.
    for (const e of gUsed) m.w64(e + H, m.r64(e + H) | A);
    expect(tr(w, 0x40_1010n, 0).ok).toBe(true);
  });

  it("SDM 29.3.5: a guest write sets D in the EPT leaf of the data page; reads of guest tables set only A", () => {
    const { m, w, emap2, gmap, H } = setup2d(false);
    const gUsed = gmap(0x40_1000n, 0x7000n, P | RW | US);
    for (const e of gUsed) m.w64(e + H, m.r64(e + H) | A | 0x40n);
    for (const e of gUsed) emap2(e & ~0xfffn, (e & ~0xfffn) + H, RWX);
    const data = emap2(0x7000n, 0xabc000n, RWX);
    // Turn EPT A/D on for the same root.
    w.ept!.setEptp(w.ept!.eptpLo | 0x40, 0);
    expect(tr(w, 0x40_1010n, 0).ok).toBe(true);
    expect(m.r64(data.at(-1)!) & (EA | ED)).toBe(EA);
    expect(tr(w, 0x40_1010n, Access.WRITE).ok).toBe(true);
    expect(m.r64(data.at(-1)!) & (EA | ED)).toBe(EA | ED);
  });

  it("Table 28-7: with guest paging off, the final access is a linear-address translation (user, writable)", () => {
    const { w, regs } = setup2d();
    regs.cr0 = 0x00000011; // PE, ET: paging off (unrestricted guest)
    const r = tr(w, 0x1234_5678n, Access.FETCH);
    expect(r.o.fault).toBe(TranslateFault.EXIT);
    expect(w.exitGpa).toBe(0x1234_5678);
    expect(w.exitQual).toBe(
      EptQual.FETCH |
        EptQual.LINEAR_VALID |
        EptQual.FINAL_ACCESS |
        EptQual.LINEAR_USER |
        EptQual.LINEAR_WRITABLE,
    );
  });

  it("PAE PDPTE loads go through EPT with the linear-address-valid bit clear", () => {
    const { w, regs } = setup2d();
    regs.efer = 0x800;
    regs.cr4 = CR4.PAE;
    expect(w.loadPdptes()).toBe("PdpteEptExit");
    expect(w.exitReason).toBe(EptExit.VIOLATION);
    expect(w.exitQual).toBe(EptQual.READ);
  });
});
