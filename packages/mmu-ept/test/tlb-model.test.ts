// Model-based property: an Mmu (with its TLB) and a bare GuestWalker (no caching) agree on every
// translation, as long as the "OS" invalidates after each change to the tables as the SDM requires
// (4.10.4.2). Register changes that need no invalidation (CR0.WP, CR4.SMEP/SMAP when turned off, PKRU,
// RFLAGS.AC) are applied without any: the TLB must re-check rights itself.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { CR4, FlatPhysMem, GuestWalker, Mmu, newTranslateResult } from "../src/index.js";

const LONG = process.env.TSKVM_LONG === "1";
// Linear addresses in play: two PML4 slots, a few pages in two PDs (some large-page candidates).
const LINS = [0x0040_0000, 0x0040_1000, 0x0060_0000, 0x4000_0000, 0x4020_3000].flatMap((lo) => [
  [lo, 0],
  [lo, 0x80],
]);
const TABLES = 24; // pages of tables at 0x10000..

/** Proper 4-level tables for every address in LINS; returns the entry addresses the walks use. */
function build(mem: FlatPhysMem): number[] {
  let next = 1;
  const used = new Set<number>();
  for (const [lo, hi] of LINS) {
    let table = 0x10000;
    for (let level = 4; level >= 1; level--) {
      const shift = 12 + 9 * (level - 1);
      const idx =
        level === 4
          ? (hi! >>> 7) & 0x1ff
          : level === 3
            ? ((lo! >>> 30) | (hi! << 2)) & 0x1ff
            : (lo! >>> shift) & 0x1ff;
      const ea = table + idx * 8;
      used.add(ea);
      if (level === 1) {
        mem.write64(ea, (0x100000 + (lo! & 0xfffff000)) | 0x7, 0);
        break;
      }
      let e = mem.read32(ea);
      if ((e & 1) === 0) {
        e = (0x10000 + next++ * 0x1000) | 0x7;
        mem.write64(ea, e, 0);
      }
      table = e & ~0xfff;
    }
  }
  return [...used];
}

const FLIPS_LO = [0x1, 0x2, 0x4, 0x20, 0x40, 0x80, 0x100, 0x2000];
const FLIPS_HI = [0x80000000 | 0, 0x10000000, 0x20000, 0x100000];

const op = fc.oneof(
  {
    weight: 8,
    arbitrary: fc.record({
      t: fc.constant("tr" as const),
      lin: fc.oneof(fc.nat(3), fc.nat(LINS.length - 1)),
      // Mostly a few common accesses, so memoised rights get reused; sometimes any of the 32.
      access: fc.oneof(fc.constantFrom(0, 1, 2, 3, 4, 6, 17), fc.nat(31)),
    }),
  },
  fc.record({
    t: fc.constant("write" as const),
    entry: fc.nat(63),
    flip: fc.nat(FLIPS_LO.length + FLIPS_HI.length),
    inval: fc.constantFrom("invlpg-all", "invpcid2", "pge-toggle"),
  }),
  { weight: 2, arbitrary: fc.record({ t: fc.constant("wp" as const) }) },
  fc.record({ t: fc.constant("pkru" as const), v: fc.integer() }),
  fc.record({
    t: fc.constant("regs" as const),
    cr0wp: fc.boolean(),
    smep: fc.boolean(),
    smap: fc.boolean(),
    pkru: fc.integer(),
  }),
);

describe("TLB model vs uncached walks (SDM 4.10)", () => {
  it(
    "with the required invalidations, the TLB never changes an outcome",
    () => {
      const stats = { tr: 0, ok: 0, writes: 0 };
      fc.assert(
        fc.property(fc.boolean(), fc.array(op, { minLength: 20, maxLength: 60 }), (pcide, ops) => {
          const mem = new FlatPhysMem(new ArrayBuffer(0x200000));
          const entries = build(mem);
          const regs = {
            cr0: 0x80010001 | 0,
            cr3Lo: 0x10000 | (pcide ? 5 : 0),
            cr3Hi: 0,
            cr4: CR4.PAE | CR4.PGE | (pcide ? CR4.PCIDE : 0),
            efer: 0xd00,
            pkru: 0,
          };
          const mmu = new Mmu(regs, mem, { tlbSets: 4, tlbWays: 2 }); // tiny: plenty of evictions
          const oracle = new GuestWalker(regs, mem);
          const a = newTranslateResult();
          const b = newTranslateResult();
          for (const o of ops) {
            if (o.t === "tr") {
              const [lo, hi] = LINS[o.lin]!;
              const okA = mmu.translate(lo!, hi!, o.access, a);
              stats.tr++;
              if (okA) stats.ok++;
              const okB = oracle.translate(lo!, hi!, o.access, b);
              expect({ ok: okA, ...(okA ? a : { fault: a.fault, errorCode: a.errorCode }) }).toEqual({
                ok: okB,
                ...(okB ? b : { fault: b.fault, errorCode: b.errorCode }),
              });
            } else if (o.t === "write") {
              // Flip one flag (P, R/W, U/S, A, D, PS, G, a PAT/reserved bit, XD, a key bit, a high
              // address bit) or point the entry at another table page.
              const ea = entries[o.entry % entries.length]!;
              if (o.flip < FLIPS_LO.length) mem.write32(ea, mem.read32(ea) ^ FLIPS_LO[o.flip]!);
              else if (o.flip < FLIPS_LO.length + FLIPS_HI.length) {
                mem.write32(ea + 4, mem.read32(ea + 4) ^ FLIPS_HI[o.flip - FLIPS_LO.length]!);
              } else mem.write32(ea, (mem.read32(ea) & 0xfff) | (0x10000 + (o.entry % TABLES) * 0x1000));
              stats.writes++;
              if (o.inval === "invlpg-all") for (const [lo, hi] of LINS) mmu.invlpg(lo!, hi!);
              else if (o.inval === "invpcid2") mmu.invpcid(2, 0, 0, 0);
              else {
                const old = regs.cr4;
                regs.cr4 ^= CR4.PGE;
                mmu.movCr4(old, regs.cr4);
                regs.cr4 ^= CR4.PGE;
                mmu.movCr4(old ^ CR4.PGE, regs.cr4);
              }
            } else if (o.t === "wp") {
              regs.cr0 ^= 0x10000; // CR0.WP: no invalidation required
            } else if (o.t === "pkru") {
              regs.cr4 |= CR4.PKE; // WRPKRU: no invalidation required
              regs.pkru = o.v;
            } else {
              // SDM 4.10.4.1: setting SMEP requires nothing of software here (the MOV flushes), the
              // rest needs no invalidation at all.
              const old = regs.cr4;
              regs.cr0 = o.cr0wp ? regs.cr0 | 0x10000 : regs.cr0 & ~0x10000;
              regs.cr4 =
                (regs.cr4 & ~(CR4.SMEP | CR4.SMAP | CR4.PKE)) |
                (o.smep ? CR4.SMEP : 0) |
                (o.smap ? CR4.SMAP | CR4.PKE : 0);
              regs.pkru = o.pkru;
              mmu.movCr4(old, regs.cr4);
            }
          }
        }),
        { numRuns: LONG ? 20_000 : 300 },
      );
      console.log(`tlb-model: ${stats.tr} translations (${stats.ok} ok), ${stats.writes} table writes`);
      expect(stats.ok).toBeGreaterThan(stats.tr / 5);
    },
    LONG ? 3_600_000 : undefined,
  );
});
