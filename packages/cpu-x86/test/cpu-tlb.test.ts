// The software TLB's invalidation rules (SDM Vol. 3 4.10.4): INVLPG drops one page (every 4 KiB entry of
// a large page), MOV to CR3 keeps global translations when CR4.PGE = 1, a #PF drops the faulting page's
// entry, INVPCID by type. "Stale" reads below are the TLB keeping a translation the SDM lets it keep
// after the tables changed; they show which entries an instruction did and did not invalidate.
import { describe, expect, it } from "vitest";
import { CR4, Vec } from "../src/index.js";
import { CODE, type Fault, I, PagedMachine, PTE } from "./helpers/paged.js";

const A = 0x100000;
const B = 0x101000;
/** Physical pages the tests remap A and B to. */
const A2 = 0x180000;
const B2 = 0x181000;

function twoPages(flagsA = PTE.P | PTE.W, flagsB = PTE.P | PTE.W): PagedMachine {
  const m = new PagedMachine();
  m.map(A, A, flagsA);
  m.map(B, B, flagsB);
  m.dv.setUint32(A, 0xa1, true);
  m.dv.setUint32(B, 0xb1, true);
  m.dv.setUint32(A2, 0xa2, true);
  m.dv.setUint32(B2, 0xb2, true);
  m.setReg(3, A); // rbx
  m.setReg(6, B); // rsi
  // Fill the TLB for both pages.
  m.load([...I.movRaxMemRbx, ...I.movRcxMemRsi, ...I.hlt]);
  expect(m.run()).toBeNull();
  expect([m.reg(0), m.reg(1)]).toEqual([0xa1, 0xb1]);
  return m;
}

describe("INVLPG (SDM Vol. 3 4.10.4.1)", () => {
  it("drops the translation of its page only", () => {
    const m = twoPages(PTE.P | PTE.W | PTE.G, PTE.P | PTE.W);
    m.map(A, A2, PTE.P | PTE.W | PTE.G);
    m.map(B, B2, PTE.P | PTE.W);
    m.load([...I.invlpgRbx, ...I.movRaxMemRbx, ...I.movRcxMemRsi, ...I.hlt], CODE + 0x100);
    expect(m.run()).toBeNull();
    // A was global: INVLPG drops global entries too. B was not invalidated.
    expect([m.reg(0), m.reg(1)]).toEqual([0xa2, 0xb1]);
  });

  it("drops every 4 KiB entry of a 2 MiB page, whatever address in it is given", () => {
    const m = new PagedMachine();
    const L = 0x400000;
    m.mapLarge(L, 0x200000, PTE.P | PTE.W);
    m.dv.setUint32(0x205000, 0x51, true);
    m.dv.setUint32(0x209000, 0x91, true);
    m.dv.setUint32(0x605000, 0x52, true);
    m.dv.setUint32(0x609000, 0x92, true);
    m.setReg(3, L + 0x5000);
    m.setReg(6, L + 0x9000);
    m.load([...I.movRaxMemRbx, ...I.movRcxMemRsi, ...I.hlt]);
    expect(m.run()).toBeNull();
    expect([m.reg(0), m.reg(1)]).toEqual([0x51, 0x91]);
    m.mapLarge(L, 0x600000, PTE.P | PTE.W);
    m.setReg(2, L + 0x1ff000); // rdx: the last 4 KiB of the large page
    m.load([0x0f, 0x01, 0x3a, ...I.movRaxMemRbx, ...I.movRcxMemRsi, ...I.hlt], CODE + 0x100); // invlpg [rdx]
    expect(m.run()).toBeNull();
    expect([m.reg(0), m.reg(1)]).toEqual([0x52, 0x92]);
  });

  it("is a no-op for a non-canonical address and #GP(0) above CPL 0", () => {
    const m = twoPages();
    m.map(A, A2, PTE.P | PTE.W);
    m.cpu.r[3 * 2 + 1] = 0x00008000; // rbx = 0x00008000_00100000: non-canonical
    m.load([...I.invlpgRbx, ...I.hlt], CODE + 0x100);
    expect(m.run()).toBeNull();
    const u = new PagedMachine(3);
    u.map(CODE, CODE, PTE.P | PTE.U);
    u.load([...I.invlpgRbx]);
    expect(u.run()).toEqual({ vec: Vec.GP, err: 0 });
  });
});

describe("MOV to CR3 and CR4.PGE (SDM Vol. 3 4.10.4.1, 4.10.2.4)", () => {
  const remapAndReloadCr3 = (cr4: number) => {
    const m = twoPages(PTE.P | PTE.W | PTE.G, PTE.P | PTE.W);
    m.cpu.cr4 |= cr4;
    m.cpu.tlbFlushAll();
    m.load([...I.movRaxMemRbx, ...I.movRcxMemRsi, ...I.hlt]);
    expect(m.run()).toBeNull();
    m.map(A, A2, PTE.P | PTE.W | PTE.G);
    m.map(B, B2, PTE.P | PTE.W);
    m.load([...I.movRaxCr3, ...I.movCr3Rax, ...I.movRaxMemRbx, ...I.movRcxMemRsi, ...I.hlt], CODE + 0x100);
    expect(m.run()).toBeNull();
    return m;
  };

  it("keeps global translations with CR4.PGE = 1 and drops the others", () => {
    const m = remapAndReloadCr3(CR4.PGE);
    expect([m.reg(0), m.reg(1)]).toEqual([0xa1, 0xb2]);
  });

  it("drops everything with CR4.PGE = 0 (G is ignored)", () => {
    const m = remapAndReloadCr3(0);
    expect([m.reg(0), m.reg(1)]).toEqual([0xa2, 0xb2]);
  });

  it("a MOV to CR4 that clears PGE drops the global translations", () => {
    const m = remapAndReloadCr3(CR4.PGE);
    m.setReg(0, m.cpu.cr4 & ~CR4.PGE);
    m.load([...I.movCr4Rax, ...I.movRaxMemRbx, ...I.hlt], CODE + 0x200);
    expect(m.run()).toBeNull();
    expect(m.reg(0)).toBe(0xa2);
  });

  it("with CR4.PCIDE = 1, bit 63 of the source is not stored; bits 62:MAXPHYADDR are reserved (#GP)", () => {
    const m = new PagedMachine();
    m.cpu.cr4 |= CR4.PCIDE;
    m.cpu.r[0] = 0x1000;
    m.cpu.r[1] = 0x80000000 | 0;
    m.load([...I.movCr3Rax, ...I.movRaxCr3, ...I.hlt]);
    expect(m.run()).toBeNull();
    expect([m.cpu.r[0]! >>> 0, m.cpu.r[1]]).toEqual([0x1000, 0]);
    m.cpu.r[0] = 0x1000;
    m.cpu.r[1] = 0x40000000;
    m.load([...I.movCr3Rax, ...I.hlt], CODE + 0x100);
    expect(m.run()).toEqual({ vec: Vec.GP, err: 0 });
  });
});

describe("other invalidations", () => {
  it("SDM 4.10.4.1: a #PF drops the TLB entry of the faulting page", () => {
    const m = twoPages();
    // A becomes not present behind the TLB's back. The TLB holds a read entry for it (the fill was a
    // read), so the write walks and faults; the read after it must walk again and fault too.
    m.map(A, A, 0);
    m.load([...I.movMemRbxRax, ...I.movRaxMemRbx, ...I.hlt], CODE + 0x100);
    expect(m.run()).toEqual({ vec: Vec.PF, err: 2 });
    m.cpu.ripLo = CODE + 0x103;
    expect(m.run()).toEqual({ vec: Vec.PF, err: 0 });
  });

  it("SDM 4.10.4.1: after a #PF on a code page, a jump there fetches through the new translation", () => {
    const m = new PagedMachine();
    const X = 0x120000;
    m.ram.set([0xb8, 1, 0, 0, 0, ...I.hlt], 0x130000); // mov eax, 1; hlt
    m.ram.set([0xb8, 2, 0, 0, 0, ...I.hlt], 0x140000); // mov eax, 2; hlt
    m.map(X, 0x130000, PTE.P | PTE.W);
    m.setReg(3, X);
    m.load([...I.jmpRbx]);
    for (let k = 0; k < 3; k++) {
      m.cpu.ripLo = CODE;
      expect(m.run()).toBeNull();
    }
    expect(m.reg(0)).toBe(1);
    // Not present behind the TLB's back; a write faults and invalidates the page's translation.
    m.map(X, 0x130000, 0);
    m.load([...I.movMemRbxRax], CODE + 0x100);
    expect(m.run()).toEqual({ vec: Vec.PF, err: 2 });
    m.map(X, 0x140000, PTE.P | PTE.W);
    m.cpu.ripLo = CODE;
    expect(m.run()).toBeNull();
    expect(m.reg(0)).toBe(2);
  });

  it("INVPCID: type 3 keeps globals, type 2 drops them, type 4 is #GP(0)", () => {
    const m = twoPages(PTE.P | PTE.W | PTE.G, PTE.P | PTE.W);
    m.cpu.cr4 |= CR4.PGE;
    m.cpu.tlbFlushAll();
    m.load([...I.movRaxMemRbx, ...I.movRcxMemRsi, ...I.hlt]);
    expect(m.run()).toBeNull();
    m.map(A, A2, PTE.P | PTE.W | PTE.G);
    m.map(B, B2, PTE.P | PTE.W);
    m.dv.setBigUint64(0x8000, 0n, true); // descriptor: PCID 0, address 0
    m.dv.setBigUint64(0x8008, 0n, true);
    m.setReg(7, 0x8000); // rdi
    const invpcid = [0x66, 0x0f, 0x38, 0x82, 0x17]; // invpcid rdx, [rdi]
    m.setReg(2, 3);
    m.load([...invpcid, ...I.movRaxMemRbx, ...I.movRcxMemRsi, ...I.hlt], CODE + 0x100);
    expect(m.run()).toBeNull();
    expect([m.reg(0), m.reg(1)]).toEqual([0xa1, 0xb2]);
    m.setReg(2, 2);
    m.load([...invpcid, ...I.movRaxMemRbx, ...I.hlt], CODE + 0x200);
    expect(m.run()).toBeNull();
    expect(m.reg(0)).toBe(0xa2);
    m.setReg(2, 4);
    m.load([...invpcid, ...I.hlt], CODE + 0x300);
    expect(m.run()).toEqual({ vec: Vec.GP, err: 0 });
  });
});

// Block links and the jump cache stand for fetch translations: they must be dropped exactly when the
// TLB entry they were made through would be (global ones survive MOV CR3, SDM Vol. 3 4.10.4.1), and
// a link made at one CPL must not serve another.
describe("decoded-code links follow the fetch translations", () => {
  const XG = 0x120000; // global page
  const XN = 0x121000; // non-global page
  /** XG and XN each run `mov eax, <n>; hlt`: 1 from their first physical page, 2 from the second. */
  const primed = (): PagedMachine => {
    const m = new PagedMachine();
    m.cpu.cr4 |= CR4.PGE;
    m.cpu.tlbFlushAll();
    m.ram.set([0xb8, 1, 0, 0, 0, ...I.hlt], 0x130000);
    m.ram.set([0xb8, 2, 0, 0, 0, ...I.hlt], 0x131000);
    m.ram.set([0xb8, 1, 0, 0, 0, ...I.hlt], 0x132000);
    m.ram.set([0xb8, 2, 0, 0, 0, ...I.hlt], 0x133000);
    m.map(XG, 0x130000, PTE.P | PTE.G);
    m.map(XN, 0x132000, PTE.P);
    m.load([...I.jmpRbx]);
    for (const x of [XG, XN, XG, XN, XG, XN]) {
      m.setReg(3, x);
      m.cpu.ripLo = CODE;
      expect(m.run()).toBeNull();
      expect(m.reg(0)).toBe(1);
    }
    // Both remapped behind the TLB's back.
    m.map(XG, 0x131000, PTE.P | PTE.G);
    m.map(XN, 0x133000, PTE.P);
    return m;
  };
  const jumpTo = (m: PagedMachine, x: number, at: number, before: number[] = []): Fault | null => {
    m.setReg(3, x);
    m.load([...before, ...I.jmpRbx], CODE + at);
    return m.run();
  };

  it("MOV CR3 keeps what was reached through a global translation and drops the rest", () => {
    const m = primed();
    expect(jumpTo(m, XN, 0x100, [...I.movRaxCr3, ...I.movCr3Rax])).toBeNull();
    expect(m.reg(0)).toBe(2);
    expect(jumpTo(m, XG, 0x200, [...I.movRaxCr3, ...I.movCr3Rax])).toBeNull();
    expect(m.reg(0)).toBe(1);
    // The same jump again, now from a block linked to XG: still the global translation.
    m.cpu.ripLo = CODE + 0x200;
    expect(m.run()).toBeNull();
    expect(m.reg(0)).toBe(1);
  });

  it("INVLPG and clearing CR4.PGE drop what was reached through a global translation", () => {
    const m = primed();
    expect(jumpTo(m, XG, 0x100, [...I.invlpgRbx])).toBeNull();
    expect(m.reg(0)).toBe(2);
    const n = primed();
    n.setReg(0, n.cpu.cr4 & ~CR4.PGE);
    expect(jumpTo(n, XG, 0x100, [...I.movCr4Rax])).toBeNull();
    expect(n.reg(0)).toBe(2);
  });

  it("code reached at CPL 0 through a global supervisor translation is not reached again at CPL 3", () => {
    const m = primed();
    // To CPL 3 as SYSRET does it (no TLB flush), with the jump on a user page.
    const USER = 0x140000;
    m.map(USER, USER, PTE.P | PTE.U);
    const c = m.cpu;
    for (const s of [1, 2]) {
      c.segSel[s] = (c.segSel[s]! | 3) & 0xffff;
      c.segAttr[s] = c.segAttr[s]! | (3 << 5);
    }
    c.cpl = 3;
    c.segCacheAll();
    c.updateMode();
    c.updateAccessMasks();
    m.setReg(3, XG);
    m.load([...I.jmpRbx], USER);
    m.cpu.ripLo = USER;
    // The fetch at XG: a supervisor page from user mode, #PF(P | U | I/D).
    expect(m.run()).toEqual({ vec: Vec.PF, err: 0x15 });
    expect(c.ripLo).toBe(XG);
  });

  it("the same after SYSRETQ, which changes CPL through its own fast path", () => {
    const m = primed();
    const USER = 0x140000;
    m.map(USER, USER, PTE.P | PTE.U);
    m.ram.set([...I.jmpRbx], USER);
    m.cpu.notifyPhysicalWrite(USER, 2);
    m.cpu.msr64[1] = 0x10 << 16; // STAR[63:48]: SYSRET loads CS 0x23 and SS 0x1b
    m.setReg(3, XG);
    m.setReg(1, USER); // rcx: where SYSRETQ returns to
    m.setReg(11, 0x202); // r11: the RFLAGS it loads
    expect(jumpTo(m, XG, 0x100, [0x48, 0x0f, 0x07])).toEqual({ vec: Vec.PF, err: 0x15 }); // sysretq
    expect(m.cpu.cpl).toBe(3);
    expect(m.cpu.ripLo).toBe(XG);
  });
});
