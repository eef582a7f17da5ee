// Walk and TLB costs. Each benchmark op does N = 1024 translations: translations per second are
// ops/s x 1024 (BENCHMARKS.md lists them). Run: cd packages/mmu-ept && npx vitest bench --run
import { bench, describe } from "vitest";
import { Access, EptWalker, FlatPhysMem, GuestWalker, Mmu, newTranslateResult } from "../src/index.js";

const N = 1024;
const PAGES = 4096; // 16 MiB of linear space, 8 page tables

/** 4-level tables mapping linear 0x40000000.. (PAGES pages) to physical 0x1000000.., A/D preset. */
function build(mem: FlatPhysMem, base: number) {
  const pml4 = base;
  const pdpt = base + 0x1000;
  const pd = base + 0x2000;
  mem.write64(pml4, pdpt | 0x67, 0);
  mem.write64(pdpt + 8, pd | 0x67, 0); // 1 GiB slot 1
  for (let t = 0; t < PAGES / 512; t++) {
    const pt = base + 0x3000 + t * 0x1000;
    mem.write64(pd + t * 8, pt | 0x67, 0);
    for (let i = 0; i < 512; i++) mem.write64(pt + i * 8, (0x1000000 + (t * 512 + i) * 0x1000) | 0x67, 0);
  }
  return pml4;
}

const mem = new FlatPhysMem(new ArrayBuffer(64 << 20));
const root = build(mem, 0x100000);
const regs = { cr0: 0x80010001 | 0, cr3Lo: root, cr3Hi: 0, cr4: 0x20, efer: 0xd00 };
const walker = new GuestWalker(regs, mem);

// EPT: identity map of the first 64 MiB with 4 KiB pages (the worst case: 4 EPT levels per access).
const eroot = 0x2000000;
function buildEpt(): void {
  mem.write64(eroot, (eroot + 0x1000) | 7, 0);
  mem.write64(eroot + 0x1000, (eroot + 0x2000) | 7, 0);
  for (let d = 0; d < 32; d++) {
    const pt = eroot + 0x3000 + d * 0x1000;
    mem.write64(eroot + 0x2000 + d * 8, pt | 7, 0);
    for (let i = 0; i < 512; i++) mem.write64(pt + i * 8, ((d * 512 + i) * 0x1000) | 7 | (6 << 3), 0);
  }
}
buildEpt();
const walker2d = new GuestWalker(regs, mem);
walker2d.ept = new EptWalker(mem);
walker2d.ept.setEptp(eroot | 6 | (3 << 3), 0);

const mmu = new Mmu(regs, mem);
const out = newTranslateResult();
let sink = 0;

describe(`per op: ${N} translations`, () => {
  let p = 0;
  bench("cold 4-level walk, 4 KiB pages (no TLB)", () => {
    for (let k = 0; k < N; k++) {
      p = (p + 1) & (PAGES - 1);
      walker.translate(0x40000000 + p * 4096, 0, Access.USER, out);
      sink += out.paddr;
    }
  });
  bench("cold 2D walk: 4-level guest + 4-level EPT (no TLB)", () => {
    for (let k = 0; k < N; k++) {
      p = (p + 1) & (PAGES - 1);
      walker2d.translate(0x40000000 + p * 4096, 0, Access.USER, out);
      sink += out.paddr;
    }
  });
  bench("Mmu TLB hit (same page)", () => {
    for (let k = 0; k < N; k++) {
      mmu.translate(0x40000000 + (k & 0xfff), 0, Access.USER, out);
      sink += out.paddr;
    }
  });
  bench("Mmu TLB hits over 512 pages", () => {
    for (let k = 0; k < N; k++) {
      mmu.translate(0x40000000 + (k & 511) * 4096, 0, Access.USER | Access.WRITE, out);
      sink += out.paddr;
    }
  });
});

export { sink };
