// The XSAVE feature set as the executor runs it (SDM Vol. 1 ch. 13, Vol. 2 XSAVE*/XRSTOR/XGETBV/XSETBV)
// and CPUID leaf 0DH. XSAVE, XSAVEOPT and XSAVEC images of random x87/SSE state are compared byte for
// byte with the host CPU (test/oracle/xsave.c) where gcc is available.
import { describe, expect, it } from "vitest";
import { CR0, CR4, Vec } from "../src/index.js";
import { CODE, I, PagedMachine } from "./helpers/paged.js";
import { buildOracle, haveOracle, Rng, runOracle } from "./oracle/build.js";

const IMG = 0x8000;
const AREA = 0x9000;
const OPS = {
  xsave: [0x48, 0x0f, 0xae, 0x26], // xsave64 [rsi]
  xsaveopt: [0x48, 0x0f, 0xae, 0x36], // xsaveopt64 [rsi]
  xsavec: [0x48, 0x0f, 0xc7, 0x26], // xsavec64 [rsi]
} as const;
const XRSTOR = [0x48, 0x0f, 0xae, 0x2e]; // xrstor64 [rsi]
const FXRSTOR = [0x48, 0x0f, 0xae, 0x0b]; // fxrstor64 [rbx]
const RFBM3 = [0xb8, 3, 0, 0, 0, 0x31, 0xd2]; // mov eax, 3; xor edx, edx
const XSETBV = [0x0f, 0x01, 0xd1];
const XGETBV = [0x0f, 0x01, 0xd0];

/** CPL 0 with CR4.OSXSAVE and XCR0 = x87 | SSE. */
function machine(): PagedMachine {
  const m = new PagedMachine();
  m.cpu.cr4 |= CR4.OSXSAVE;
  m.cpu.xcr0Lo = 3;
  m.setReg(3, IMG);
  m.setReg(6, AREA);
  return m;
}

/** A random but loadable FXSAVE64 image (MXCSR without reserved bits). */
function randomImage(rng: Rng): Uint8Array {
  const b = new Uint8Array(512);
  for (let k = 0; k < 512; k++) b[k] = rng.below(256);
  const dv = new DataView(b.buffer);
  dv.setUint32(24, 0x1f80 | rng.below(64) | (rng.below(2) << 6), true);
  dv.setUint32(28, 0, true);
  return b;
}

function emulateSave(op: keyof typeof OPS, img: Uint8Array): string {
  const m = machine();
  m.ram.set(img, IMG);
  m.ram.fill(0xa5, AREA, AREA + 512);
  m.ram.fill(0, AREA + 512, AREA + 576);
  m.load([...FXRSTOR, ...RFBM3, ...OPS[op], ...I.hlt]);
  expect(m.run()).toBeNull();
  return Buffer.from(m.ram.subarray(AREA, AREA + 576)).toString("hex");
}

const hexOf = (b: Uint8Array) => Buffer.from(b).toString("hex");
/**
 * Bytes that differ by design: FOP/FIP/FDP (6..23; this AMD host keeps them only with ES = 1, see
 * fpu-image.test.ts) and MXCSR_MASK (28..31: the host reports 0x2FFFF, the model an Intel 0xFFFF).
 */
const maskArea = (h: string) => `${h.slice(0, 12)}${"-".repeat(36)}${h.slice(48, 56)}--------${h.slice(64)}`;

describe("XSAVE, XSAVEOPT, XSAVEC against the host CPU", () => {
  it.skipIf(!haveOracle())("images of random x87/SSE state match the host byte for byte", () => {
    const rng = new Rng(0xd5);
    const cases: [keyof typeof OPS, Uint8Array][] = [];
    const ops = ["xsave", "xsaveopt", "xsavec"] as const;
    for (let k = 0; k < 60; k++) cases.push([ops[k % 3]!, randomImage(rng)]);
    const host = runOracle(
      buildOracle("xsave"),
      cases.map(([op, img]) => `${op} ${hexOf(img)}`),
    );
    cases.forEach(([op, img], k) => {
      expect(maskArea(emulateSave(op, img)), `${op} case ${k}`).toBe(maskArea(host[k]!));
    });
  });
});

describe("XSAVEC and the compacted XRSTOR (SDM Vol. 1 13.8.2, 13.10)", () => {
  it("saves only components in use; XSTATE_BV = RFBM & XINUSE, XCOMP_BV = bit 63 | RFBM; no other header byte", () => {
    const m = machine();
    m.ram.fill(0xa5, AREA, AREA + 576);
    m.cpu.xmm[4] = 0x1234; // SSE in use, x87 in its initial configuration (after FNINIT)
    m.load([0xdb, 0xe3, ...RFBM3, ...OPS.xsavec, ...I.hlt]); // fninit
    expect(m.run()).toBeNull();
    const dv = m.dv;
    expect(dv.getBigUint64(AREA + 512, true)).toBe(2n);
    expect(dv.getBigUint64(AREA + 520, true)).toBe(0x8000000000000003n);
    expect(dv.getUint32(AREA + 0, true)).toBe(0xa5a5a5a5); // x87 part not written
    expect(dv.getUint32(AREA + 24, true)).toBe(0x1f80); // MXCSR with the SSE component
    expect(dv.getUint32(AREA + 160 + 16, true)).toBe(0x1234); // XMM1
    expect(dv.getUint32(AREA + 530, true)).toBe(0xa5a5a5a5); // header bytes 16..63 untouched
  });

  it("XRSTOR of a compacted image: restores what it holds, initializes the rest (MXCSR = 1F80H)", () => {
    const m = machine();
    m.ram.fill(0, AREA, AREA + 576);
    m.dv.setBigUint64(AREA + 520, 0x8000000000000003n, true); // XCOMP_BV, XSTATE_BV = 0
    m.dv.setUint32(AREA + 24, 0x1f00, true);
    m.cpu.xmm[0] = 7;
    m.cpu.mxcsr = 0x1fc0;
    m.load([...RFBM3, ...XRSTOR, ...I.hlt]);
    expect(m.run()).toBeNull();
    expect([m.cpu.xmm[0], m.cpu.mxcsr]).toEqual([0, 0x1f80]);
    // The standard form loads MXCSR from the image whenever RFBM[1] is set.
    m.dv.setBigUint64(AREA + 520, 0n, true);
    m.load([...RFBM3, ...XRSTOR, ...I.hlt], CODE + 0x40);
    expect(m.run()).toBeNull();
    expect(m.cpu.mxcsr).toBe(0x1f00);
  });

  it("#GP(0): XSTATE_BV outside XCOMP_BV, XCOMP_BV outside XCR0, reserved header bytes, bad MXCSR", () => {
    const bad: [number, bigint, number][] = [
      // [header offset, value, MXCSR]
      [512, 3n, 0x1f80], // XSTATE_BV = 3 with XCOMP_BV = bit 63 | 1
      [520, 0x8000000000000005n, 0x1f80], // XCOMP_BV names AVX, not in XCR0
      [540, 1n, 0x1f80], // reserved header bytes
      [512, 2n, 0x10000], // MXCSR reserved bit, SSE loaded
    ];
    for (const [at, v, mx] of bad) {
      const m = machine();
      m.ram.fill(0, AREA, AREA + 576);
      m.dv.setBigUint64(AREA + 520, 0x8000000000000001n, true);
      if (at === 512 && v === 2n) m.dv.setBigUint64(AREA + 520, 0x8000000000000003n, true);
      m.dv.setBigUint64(AREA + at, v, true);
      m.dv.setUint32(AREA + 24, mx, true);
      m.load([...RFBM3, ...XRSTOR, ...I.hlt]);
      expect(m.run(), `${at} ${v}`).toEqual({ vec: Vec.GP, err: 0 });
    }
  });
});

describe("XSAVE feature set: enabling and faults (SDM Vol. 1 13.3, Vol. 2 XSAVE, XSETBV, XGETBV)", () => {
  it("CPUID.1:ECX.XSAVE = 1, OSXSAVE follows CR4.OSXSAVE; leaf 0DH sub-leaves 0 and 1", () => {
    const m = new PagedMachine();
    const cpuid = (eax: number, ecx: number) => {
      m.setReg(0, eax);
      m.setReg(1, ecx);
      m.load([...I.cpuid, ...I.hlt], CODE + 0x80);
      expect(m.run()).toBeNull();
      return [m.reg(0), m.reg(3), m.reg(1), m.reg(2)];
    };
    expect((cpuid(1, 0)[2]! >>> 26) & 3).toBe(1);
    m.setReg(0, m.cpu.cr4 | CR4.OSXSAVE);
    m.load([...I.movCr4Rax, ...I.hlt]);
    expect(m.run()).toBeNull();
    expect((cpuid(1, 0)[2]! >>> 26) & 3).toBe(3);
    expect(cpuid(0xd, 0)).toEqual([3, 576, 576, 0]);
    expect(cpuid(0xd, 1)).toEqual([3, 576, 0, 0]);
    expect(cpuid(0xd, 2)).toEqual([0, 0, 0, 0]);
  });

  it("CR4.OSXSAVE = 0: XGETBV, XSETBV and XSAVE are #UD; CR0.TS: XSAVE is #NM; a misaligned area is #GP(0)", () => {
    const m = machine();
    m.cpu.cr4 &= ~CR4.OSXSAVE;
    for (const insn of [XGETBV, XSETBV, OPS.xsave]) {
      m.load([...insn]);
      expect(m.run()).toEqual({ vec: Vec.UD, err: -1 });
    }
    m.cpu.cr4 |= CR4.OSXSAVE;
    m.cpu.cr0 |= CR0.TS;
    m.load([...OPS.xsavec]);
    expect(m.run()).toEqual({ vec: Vec.NM, err: -1 });
    m.cpu.cr0 &= ~CR0.TS;
    m.setReg(6, AREA + 32);
    m.load([...OPS.xsave]);
    expect(m.run()).toEqual({ vec: Vec.GP, err: 0 });
  });

  it("XSETBV: bit 0 must be set, only supported bits, ECX = 0, CPL 0; XGETBV reads it back", () => {
    const m = machine();
    const xsetbv = (eax: number, ecx = 0, edx = 0) => {
      m.setReg(0, eax);
      m.setReg(1, ecx);
      m.setReg(2, edx);
      m.load([...XSETBV, ...I.hlt]);
      return m.run();
    };
    expect(xsetbv(1)).toBeNull();
    m.setReg(1, 0);
    m.load([...XGETBV, ...I.hlt]);
    expect(m.run()).toBeNull();
    expect([m.reg(0), m.reg(2)]).toEqual([1, 0]);
    for (const [eax, ecx, edx] of [
      [2, 0, 0],
      [7, 0, 0],
      [3, 1, 0],
      [3, 0, 1],
    ] as const)
      expect(xsetbv(eax, ecx, edx), `${eax} ${ecx} ${edx}`).toEqual({ vec: Vec.GP, err: 0 });
    m.setReg(1, 1);
    m.load([...XGETBV]); // XGETBV ECX=1 needs CPUID.(0DH,1):EAX[2]
    expect(m.run()).toEqual({ vec: Vec.GP, err: 0 });
  });
});
