// Multi-byte guest memory accesses through the TLB's fast paths (`rd16`..`wr64`, and the inline
// loads and stores of generated blocks) on RAM handed out as views that do not start at their
// buffer's first byte: each access must land at the view's byteOffset + offset, little-endian, as
// the bytes of a real x86 store do.
import { describe, expect, it } from "vitest";
import {
  Cpu,
  enterFlatLongMode,
  IdentityTranslator,
  type PhysicalMemory,
  type RamView,
  RunExit,
} from "../src/index.js";

const PAGES = 64;

/**
 * Guest RAM from one buffer cut into two views at odd offsets (3 bytes in, and 5 bytes after the
 * first view): even guest pages are in the first view, odd pages in the second, each view holding
 * its pages back to back.
 */
const HALF = (PAGES / 2) * 4096;
class SplitRam implements PhysicalMemory {
  readonly buffer = new ArrayBuffer(3 + HALF + 5 + HALF + 3);
  readonly even = new Uint8Array(this.buffer, 3, HALF);
  readonly odd = new Uint8Array(this.buffer, 3 + HALF + 5, HALF);
  ramPage(pfn: number, out: RamView): boolean {
    if (pfn >= PAGES) return false;
    out.u8 = pfn % 2 === 0 ? this.even : this.odd;
    out.offset = (pfn >> 1) * 4096;
    return true;
  }
  /** The view and index holding guest-physical byte `gpa`. */
  at(gpa: number): [Uint8Array, number] {
    const pfn = Math.floor(gpa / 4096);
    return [pfn % 2 === 0 ? this.even : this.odd, (pfn >> 1) * 4096 + (gpa % 4096)];
  }
  byte(gpa: number): number {
    const [u8, i] = this.at(gpa);
    return u8[i]!;
  }
  setByte(gpa: number, v: number): void {
    const [u8, i] = this.at(gpa);
    u8[i] = v;
  }
  mmioRead(): number {
    return 0;
  }
  mmioWrite(): void {}
}

function machine(jit = false): { cpu: Cpu; ram: SplitRam } {
  const ram = new SplitRam();
  const cpu = new Cpu({ memory: ram, translator: new IdentityTranslator(), jit, jitThreshold: 1 });
  enterFlatLongMode(cpu, 0);
  return { cpu, ram };
}

const bytesAt = (ram: SplitRam, gpa: number, n: number) =>
  Array.from({ length: n }, (_, k) => ram.byte(gpa + k));

describe("multi-byte accesses on RAM views with a byteOffset", () => {
  // In the page, at its last fast-path offset for the size, and across into the next page (which
  // lives in the other view).
  const places = [0x3010, 0x3ff8, 0x3ffc, 0x3ffe, 0x3fff, 0x4ffa];

  it("writes land little-endian at the view's bytes, and read back", () => {
    const { cpu, ram } = machine();
    for (const a of places) {
      cpu.wr64(a, 0, 0x44332211, 0x88776655 | 0);
      expect(bytesAt(ram, a, 8), `wr64 @${a.toString(16)}`).toEqual([
        0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88,
      ]);
      expect(cpu.rd64(a, 0) >>> 0).toBe(0x44332211);
      expect(cpu.hiOut >>> 0).toBe(0x88776655);
      cpu.wr32(a, 0, 0xdeadbeef | 0);
      expect(bytesAt(ram, a, 4)).toEqual([0xef, 0xbe, 0xad, 0xde]);
      expect(cpu.rd32(a, 0)).toBe(0xdeadbeef | 0);
      cpu.wr16(a, 0, 0xcafe);
      expect(bytesAt(ram, a, 2)).toEqual([0xfe, 0xca]);
      expect(cpu.rd16(a, 0)).toBe(0xcafe);
    }
    // The bytes outside the views stay untouched.
    expect(Array.from(new Uint8Array(ram.buffer, 0, 3))).toEqual([0, 0, 0]);
    expect(Array.from(new Uint8Array(ram.buffer, 3 + HALF, 5))).toEqual([0, 0, 0, 0, 0]);
  });

  it("reads see bytes the host put in the views", () => {
    const { cpu, ram } = machine();
    for (const a of places) {
      for (let k = 0; k < 8; k++) ram.setByte(a + k, 0xa0 + k);
      expect(cpu.rd64(a, 0) >>> 0).toBe(0xa3a2a1a0);
      expect(cpu.hiOut >>> 0).toBe(0xa7a6a5a4);
      expect(cpu.rd32(a, 0) >>> 0).toBe(0xa3a2a1a0);
      expect(cpu.rd16(a, 0)).toBe(0xa1a0);
    }
  });

  for (const jit of [false, true]) {
    it(`a copy loop moves qwords between views (${jit ? "generated code" : "interpreter"})`, () => {
      const { cpu, ram } = machine(jit);
      // mov rax, [rsi]; mov [rdi], rax; mov ebx, [rsi]; mov [rdi+8], ebx;
      // add rsi, 8; add rdi, 16; dec ecx; jnz loop; hlt
      const code = [
        0x48, 0x8b, 0x06, 0x48, 0x89, 0x07, 0x8b, 0x1e, 0x89, 0x5f, 0x08, 0x48, 0x83, 0xc6, 0x08, 0x48, 0x83,
        0xc7, 0x10, 0xff, 0xc9, 0x75, 0xe9, 0xf4,
      ];
      for (let k = 0; k < code.length; k++) ram.setByte(0x1000 + k, code[k]!);
      const src = 0x6000 - 64; // the copies run over page ends: 0x5fc0.. into page 6, 0xaf80.. into 11
      const dst = 0xb000 - 128;
      for (let k = 0; k < 8 * 16; k++) ram.setByte(src + k, (k * 7 + 3) & 0xff);
      const r = cpu.r;
      r[6 * 2] = src; // rsi
      r[7 * 2] = dst; // rdi
      r[1 * 2] = 16; // ecx
      cpu.ripLo = 0x1000;
      cpu.ripHi = 0;
      expect(cpu.run(10_000)).toBe(RunExit.HLT);
      for (let q = 0; q < 16; q++) {
        const want = bytesAt(ram, src + q * 8, 8);
        expect(bytesAt(ram, dst + q * 16, 8), `qword ${q}`).toEqual(want);
        expect(bytesAt(ram, dst + q * 16 + 8, 4), `dword ${q}`).toEqual(want.slice(0, 4));
      }
    });
  }
});
