// Page-level protection beyond U/S and R/W (SDM Vol. 3 4.6): SMEP, SMAP with RFLAGS.AC and STAC/CLAC
// and implicit supervisor accesses, protection keys (CR4.PKE, PKRU, RDPKRU/WRPKRU) and the #PF error
// code bits I/D and PK (SDM 4.7). Every rule is checked twice where the TLB could answer instead of
// the walker: once on a cold TLB, once with the page's translation already cached.
import { describe, expect, it } from "vitest";
import { CPUID_7_ECX_PKU, CR0, CR4, F, PfErr, Vec } from "../src/index.js";
import { CODE, I, PagedMachine, PTE } from "./helpers/paged.js";

const U = 0x100000;
const P = PfErr.P;

function sup(cr4: number): PagedMachine {
  const m = new PagedMachine(0);
  m.map(U, U, PTE.P | PTE.W | PTE.U);
  m.ram.set([...I.hlt], U); // user page code: hlt
  m.cpu.cr4 |= cr4;
  m.cpu.updateAccessMasks();
  m.cpu.tlbFlushAll();
  m.setReg(3, U); // rbx
  return m;
}

describe("SMEP (SDM 4.6.1)", () => {
  it("a supervisor fetch from a user page faults with P|I; without SMEP it runs", () => {
    const m = sup(CR4.SMEP);
    m.load([...I.jmpRbx]);
    expect(m.run()).toEqual({ vec: Vec.PF, err: P | PfErr.I });
    expect(m.cpu.pfLo).toBe(U);
    const off = sup(0);
    off.load([...I.jmpRbx]);
    expect(off.run()).toBeNull();
    expect(off.cpu.ripLo).toBe(U + 1);
  });

  it("also when the user page is already in the TLB from a data read", () => {
    const m = sup(CR4.SMEP);
    m.load([...I.movRaxMemRbx, ...I.jmpRbx]);
    expect(m.run()).toEqual({ vec: Vec.PF, err: P | PfErr.I });
    expect(m.cpu.ripLo).toBe(U);
  });
});

describe("SMAP (SDM 4.6.1)", () => {
  it("supervisor reads and writes of a user page fault (P, P|W) unless AC = 1", () => {
    const m = sup(CR4.SMAP);
    m.load([...I.movRaxMemRbx]);
    expect(m.run()).toEqual({ vec: Vec.PF, err: P });
    m.load([...I.movMemRbxRax], CODE + 0x10);
    expect(m.run()).toEqual({ vec: Vec.PF, err: P | PfErr.W });
    m.load([...I.stac, ...I.movRaxMemRbx, ...I.movMemRbxRax, ...I.hlt], CODE + 0x20);
    expect(m.run()).toBeNull();
    expect(m.cpu.getRflags() & F.AC).toBe(F.AC);
  });

  it("CLAC takes the right away again with the translation cached", () => {
    const m = sup(CR4.SMAP);
    m.load([...I.stac, ...I.movRaxMemRbx, ...I.movMemRbxRax, ...I.clac, ...I.movRaxMemRbx]);
    expect(m.run()).toEqual({ vec: Vec.PF, err: P });
    expect(m.cpu.getRflags() & F.AC).toBe(0);
    m.load([...I.movMemRbxRax], CODE + 0x40);
    expect(m.run()).toEqual({ vec: Vec.PF, err: P | PfErr.W });
  });

  it("POPF setting AC grants the right like STAC", () => {
    const m = sup(CR4.SMAP);
    // pushfq; or dword [rsp], 0x40000; popfq; mov rax, [rbx]; hlt
    m.setReg(4, 0x9000);
    m.load([0x9c, 0x81, 0x0c, 0x24, 0x00, 0x00, 0x04, 0x00, 0x9d, ...I.movRaxMemRbx, ...I.hlt]);
    expect(m.run()).toBeNull();
    expect(m.reg(0)).toBe(0xf4); // the HLT byte at the start of the user page
  });

  it("implicit supervisor accesses ignore AC: a descriptor read from a GDT on a user page faults at CPL 3", () => {
    const m = new PagedMachine(3);
    m.map(CODE, CODE, PTE.P | PTE.U);
    m.map(U, U, PTE.P | PTE.W | PTE.U);
    m.w64(U + 0x28, 0x0000ffff, 0x00cff300); // flat DPL-3 data segment
    m.cpu.gdtrBaseLo = U;
    m.cpu.gdtrLimit = 0x3f;
    m.cpu.cr4 |= CR4.SMAP;
    m.cpu.setRflags(m.cpu.getRflags() | F.AC);
    m.cpu.tlbFlushAll();
    m.setReg(0, 0x2b);
    m.load([0x8e, 0xd8]); // mov ds, eax
    expect(m.run()).toEqual({ vec: Vec.PF, err: P });
    expect(m.cpu.pfLo).toBe(U + 0x28);
    m.cpu.cr4 &= ~CR4.SMAP;
    m.cpu.tlbFlushAll();
    m.cpu.updateAccessMasks();
    m.load([0x8e, 0xd8, ...I.hlt]);
    expect(m.run()).toEqual({ vec: Vec.GP, err: 0 }); // the load worked; HLT at CPL 3 is #GP(0)
  });

  it("STAC and CLAC are #UD above CPL 0", () => {
    const m = new PagedMachine(3);
    m.map(CODE, CODE, PTE.P | PTE.U);
    m.load([...I.stac]);
    expect(m.run()).toEqual({ vec: Vec.UD, err: -1 });
    m.load([...I.clac]);
    expect(m.run()).toEqual({ vec: Vec.UD, err: -1 });
  });

  it("CPUID.(7,0):EBX reports SMEP (bit 7) and SMAP (bit 20)", () => {
    const m = new PagedMachine();
    m.setReg(0, 7);
    m.setReg(1, 0);
    m.load([...I.cpuid, ...I.hlt]);
    expect(m.run()).toBeNull();
    expect((m.reg(3) >>> 7) & 1).toBe(1);
    expect((m.reg(3) >>> 20) & 1).toBe(1);
  });
});

describe("protection keys (SDM 4.6.2)", () => {
  /** A CPL-3 machine with PKU on; page U has protection key 1 (PTE bits 62:59). */
  function pk(cpl: 0 | 3 = 3): PagedMachine {
    const m = new PagedMachine(cpl);
    m.cpu.cpuidModel.features7Ecx |= CPUID_7_ECX_PKU;
    m.map(CODE, CODE, PTE.P | PTE.U);
    m.map(U, U, PTE.P | PTE.W | PTE.U, 1 << 27);
    m.dv.setUint32(U, 0x77, true);
    m.cpu.cr4 |= CR4.PKE;
    m.cpu.tlbFlushAll();
    m.setReg(3, U);
    return m;
  }
  const wrpkru = (v: number) => [0xb8, v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff, v >>> 24, ...I.wrpkru];
  const prologue = [0x31, 0xc9, 0x31, 0xd2]; // xor ecx, ecx; xor edx, edx

  it("AD forbids reads and writes (P|U|PK), WD writes (P|W|U|PK); key 0 is unaffected", () => {
    const m = pk();
    m.load([...prologue, ...wrpkru(1 << 2), ...I.movRaxMemRbx]);
    expect(m.run()).toEqual({ vec: Vec.PF, err: P | PfErr.U | PfErr.PK });
    m.load([...prologue, ...wrpkru(2 << 2), ...I.movRaxMemRbx, ...I.movMemRbxRax], CODE + 0x40);
    expect(m.run()).toEqual({ vec: Vec.PF, err: P | PfErr.W | PfErr.U | PfErr.PK });
    expect(m.reg(0)).toBe(0x77);
    m.load([...prologue, ...wrpkru(3), ...I.movRaxMemRbx, ...I.movMemRbxRax, ...I.hlt], CODE + 0x80);
    expect(m.run()).toEqual({ vec: Vec.GP, err: 0 }); // key 0 locked, key 1 open: reaches HLT
  });

  it("WRPKRU takes rights away from translations already in the TLB", () => {
    const m = pk();
    m.load([...prologue, ...I.movRaxMemRbx, ...I.movMemRbxRax, ...wrpkru(1 << 2), ...I.movRaxMemRbx]);
    expect(m.run()).toEqual({ vec: Vec.PF, err: P | PfErr.U | PfErr.PK });
    expect(m.cpu.pkru).toBe(4);
  });

  it("WD stops supervisor writes to user pages with CR0.WP = 1, not with WP = 0", () => {
    const m = pk(0);
    m.cpu.pkru = 2 << 2;
    m.load([...I.movMemRbxRax]);
    expect(m.run()).toEqual({ vec: Vec.PF, err: P | PfErr.W | PfErr.PK });
    m.cpu.cr0 &= ~CR0.WP;
    m.cpu.tlbFlushAll();
    m.load([...I.movMemRbxRax, ...I.hlt], CODE + 0x40);
    expect(m.run()).toBeNull();
  });

  it("RDPKRU/WRPKRU: EDX:EAX = 0:PKRU; #GP(0) for ECX/EDX != 0; #UD with CR4.PKE = 0", () => {
    const m = pk();
    m.load([...prologue, ...wrpkru(0x55555554), ...I.rdpkru, ...I.hlt]);
    expect(m.run()).toEqual({ vec: Vec.GP, err: 0 });
    expect([m.reg(0), m.reg(2)]).toEqual([0x55555554, 0]);
    m.setReg(1, 1);
    m.load([...I.wrpkru], CODE + 0x40);
    expect(m.run()).toEqual({ vec: Vec.GP, err: 0 });
    expect(m.cpu.ripLo).toBe(CODE + 0x40);
    m.cpu.cr4 &= ~CR4.PKE;
    m.load([...I.rdpkru], CODE + 0x80);
    expect(m.run()).toEqual({ vec: Vec.UD, err: -1 });
  });

  it("CR4.PKE is reserved without CPUID PKU; CPUID.(7,0):ECX.OSPKE follows CR4.PKE", () => {
    const m = new PagedMachine();
    m.setReg(0, m.cpu.cr4 | CR4.PKE);
    m.load([...I.movCr4Rax]);
    expect(m.run()).toEqual({ vec: Vec.GP, err: 0 });
    m.cpu.cpuidModel.features7Ecx |= CPUID_7_ECX_PKU;
    m.load([...I.movCr4Rax, 0xb8, 7, 0, 0, 0, 0x31, 0xc9, ...I.cpuid, ...I.hlt], CODE + 0x40);
    expect(m.run()).toBeNull();
    expect(m.reg(1) & 0x18).toBe(0x18);
  });
});
