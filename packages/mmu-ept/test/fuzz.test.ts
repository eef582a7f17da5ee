// Fuzz: random paging-structure contents and control registers give a translation or a fault, never an
// exception or an endless walk (STYLE.md: "page walks over guest-written tables"). TSKVM_LONG=1 runs
// far more cases (see BENCHMARKS.md for the command).
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  checkEptp,
  FlatPhysMem,
  Mmu,
  type MmuState,
  newTranslateResult,
  type PhysMem,
  TranslateFault,
} from "../src/index.js";

const LONG = process.env.TSKVM_LONG === "1";
const RUNS = LONG ? 200_000 : 1500;
const MEM_WORDS = 16384; // 64 KiB of physical memory

/** Counts reads so a test can bound the work a walk does. */
class CountingMem implements PhysMem {
  reads = 0;
  constructor(readonly inner: FlatPhysMem) {}
  read32(pa: number): number {
    this.reads++;
    return this.inner.read32(pa);
  }
  write32(pa: number, v: number): void {
    this.inner.write32(pa, v);
  }
  cmpxchg32(pa: number, e: number, r: number): number {
    return this.inner.cmpxchg32(pa, e, r);
  }
}

/**
 * Fills the whole memory from a seed: most entries present and pointing at one of the 16 pages (so
 * walks go deep, loop, and land on tables of every kind), with random flags, sometimes XD, protection
 * keys, reserved or out-of-range high bits. The same words serve as guest and EPT entries.
 */
function fill(flat: FlatPhysMem, seed: number, density: number): void {
  let x = seed | 1;
  const rnd = (): number => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return x >>> 0;
  };
  for (let i = 0; i < MEM_WORDS / 2; i++) {
    const r = rnd();
    if (r % 100 >= density) {
      flat.write64(i * 8, 0, 0);
      continue;
    }
    let lo = ((rnd() & 15) << 12) | (rnd() & 0xfff);
    if (r & 0x100) lo |= 0x7; // present, writable, user / RWX
    if ((r & 0x600) === 0) lo = (lo & ~0x38) | 0x30; // EPT memory type WB
    if ((r & 0x7000) === 0) lo &= ~0x80; // fewer large pages
    const h = rnd();
    const hi = h % 8 === 0 ? h : h % 8 === 1 ? 0x80000000 | 0 : h % 8 === 2 ? (h & 0xf) << 27 : 0;
    flat.write64(i * 8, lo, hi);
  }
}

const scenario = fc.record({
  seed: fc.integer({ min: 1, max: 2 ** 31 - 1 }),
  density: fc.integer({ min: 20, max: 100 }),
  cr0: fc.constantFrom(0x80010001 | 0, 0x80000001 | 0, 1),
  cr3: fc.integer({ min: 0, max: 0xffff }),
  cr4: fc.oneof(
    fc.integer({ min: 0, max: 0x1ffffff }),
    fc.constantFrom(0x20, 0x20 | 0x1000, 0, 0x10, 0x20 | 0x80 | 0x20000 | 0x300000 | 0x400000),
  ),
  efer: fc.constantFrom(0, 0x800, 0x500, 0xd00),
  pkru: fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }),
  ept: fc.oneof(fc.constant(null), fc.integer({ min: 0, max: 0xffff })), // EPT on half the time
  linLo: fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }),
  linHi: fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }),
  accesses: fc.array(fc.integer({ min: 0, max: 31 }), { minLength: 1, maxLength: 4 }),
});

describe("fuzz: page walks over hostile tables", () => {
  it(
    "always ends in a translation or an architected fault, with bounded work",
    () => {
      const n = { all: 0, ok: 0, pf: 0, exit: 0 };
      fc.assert(
        fc.property(scenario, (s) => {
          const flat = new FlatPhysMem(new ArrayBuffer(MEM_WORDS * 4));
          fill(flat, s.seed, s.density);
          const mem = new CountingMem(flat);
          const regs = {
            cr0: s.cr0,
            cr3Lo: s.cr3,
            cr3Hi: 0,
            cr4: s.cr4,
            efer: s.efer,
            pkru: s.pkru,
            pkrs: s.pkru ^ 0x5555,
          };
          const mmu = new Mmu(regs, mem);
          // EPTP: WB, 4- or 5-level, A/D on or off; the root anywhere in the 64 KiB.
          if (s.ept !== null)
            mmu.setEptp({
              lo: (s.ept & 0xf000) | 6 | (s.ept & 1 ? 4 << 3 : 3 << 3) | (s.ept & 2 ? 0x40 : 0),
              hi: 0,
            });
          const out = newTranslateResult();
          for (const access of s.accesses) {
            n.all++;
            mem.reads = 0;
            const ok = mmu.translate(s.linLo, s.linHi, access, out);
            // Five guest levels (or four PDPTEs), each through a five-level EPT walk, the final access
            // and the A/D updates, with at most eight restarts: far below this bound.
            expect(mem.reads).toBeLessThan(2000);
            if (ok) {
              n.ok++;
              expect(out.fault).toBe(TranslateFault.NONE);
              expect(Number.isFinite(out.paddr) && out.paddr >= 0 && out.paddr < 2 ** 53).toBe(true);
              // The same access right away is a TLB hit (or a fresh walk) with the same answer.
              const first = { ...out };
              expect(mmu.translate(s.linLo, s.linHi, access, out)).toBe(true);
              expect(out).toEqual(first);
            } else if (out.fault === TranslateFault.PAGE_FAULT) {
              n.pf++;
              expect(out.errorCode & ~0x3f).toBe(0);
            } else {
              n.exit++;
              expect(out.fault).toBe(TranslateFault.EXIT);
              expect([48, 49]).toContain(mmu.exitReason);
            }
          }
        }),
        { numRuns: RUNS },
      );
      // The generator must reach every outcome, or the property tests little.
      expect(n.ok).toBeGreaterThan(RUNS / 20);
      expect(n.pf).toBeGreaterThan(RUNS / 20);
      expect(n.exit).toBeGreaterThan(RUNS / 50);
      console.log(`fuzz: ${n.all} translations: ${n.ok} ok, ${n.pf} #PF, ${n.exit} EPT exits`);
    },
    LONG ? 3_600_000 : undefined,
  );

  it("self-referencing tables in every mode terminate", () => {
    fc.assert(
      fc.property(
        fc.constantFrom(0x20, 0x20 | 0x1000, 0, 0x10),
        fc.integer({ min: 0, max: 31 }),
        (cr4, access) => {
          const flat = new FlatPhysMem(new ArrayBuffer(1 << 16));
          for (let i = 0; i < 512; i++) flat.write64(0x1000 + i * 8, 0x1000 | 0x67, 0);
          const regs = { cr0: 0x80010001 | 0, cr3Lo: 0x1000, cr3Hi: 0, cr4, efer: 0xd00 };
          const mmu = new Mmu(regs, flat);
          const out = newTranslateResult();
          expect(typeof mmu.translate(0x12345678, 0x1234, access, out)).toBe("boolean");
        },
      ),
    );
  });
});

describe("fuzz: other inputs a guest or a snapshot controls", () => {
  it("checkEptp answers every EPTP with null or a named error", () => {
    const caps = new Mmu({ cr0: 0, cr3Lo: 0, cr3Hi: 0, cr4: 0, efer: 0 }, new FlatPhysMem(new ArrayBuffer(8)))
      .ept.caps;
    const named = [
      null,
      "EptpMemoryType",
      "EptpWalkLength",
      "EptpAccessDirty",
      "EptpShadowStack",
      "EptpReservedBits",
    ];
    fc.assert(
      fc.property(fc.integer(), fc.integer(), fc.integer({ min: 36, max: 52 }), (lo, hi, m) => {
        expect(named).toContain(checkEptp(lo, hi, caps, m));
      }),
      { numRuns: RUNS },
    );
  });

  it("Mmu.restore takes any JSON and returns an Mmu or a BadField error, never throws", () => {
    const mem = new FlatPhysMem(new ArrayBuffer(4096));
    const regs = { cr0: 0, cr3Lo: 0, cr3Hi: 0, cr4: 0, efer: 0 };
    fc.assert(
      fc.property(
        fc.record({
          vpid: fc.oneof(fc.integer(), fc.double(), fc.string(), fc.constant(null)),
          eptp: fc.oneof(
            fc.constant(null),
            fc.record({ lo: fc.anything(), hi: fc.anything() }),
            fc.anything(),
          ),
          pdptes: fc.oneof(fc.constant(null), fc.array(fc.integer(), { maxLength: 9 }), fc.anything()),
          pdpteCr3: fc.anything(),
        }),
        (state) => {
          const r = Mmu.restore(regs, mem, state as unknown as MmuState);
          expect(r instanceof Mmu || (r as { kind: string }).kind === "BadField").toBe(true);
        },
      ),
      { numRuns: RUNS },
    );
  });
});
