import { describe, expect, it } from "vitest";
import { prepare } from "../src/cpu/dispatch.js";
import { BuildInsn, loadXInsn, newXInsn } from "../src/cpu/operands.js";
import { decode } from "../src/decoder/decode.js";

function built(bytes: number[], mode: 16 | 32 | 64): BuildInsn {
  const b = new BuildInsn();
  prepare(b, decode(Uint8Array.from(bytes), 0, mode, b));
  return b;
}

describe("the executor's instruction record", () => {
  // add [rax+rbx*4+8], ecx; lock xadd [rdi], eax; fld st1; paddb mm0, mm1; enter 16, 3; jmp far 8:0x1000; an invalid form
  const cases: [number[], 16 | 32 | 64][] = [
    [[0x01, 0x4c, 0x98, 0x08], 64],
    [[0xf0, 0x0f, 0xc1, 0x07], 64],
    [[0xd9, 0xc1], 64],
    [[0x0f, 0xfc, 0xc1], 64],
    [[0xc8, 0x10, 0x00, 0x03], 32],
    [[0xea, 0x00, 0x10, 0x00, 0x00, 0x08, 0x00], 32],
    [[0x0f, 0x0b], 64],
  ];

  it("the cross-page path's reused record gets the same fields, in the same order, as a block's", () => {
    const cross = newXInsn(new BuildInsn());
    for (const [bytes, mode] of cases) {
      const b = built(bytes, mode);
      const fresh = newXInsn(b);
      loadXInsn(cross, b);
      expect(Object.keys(cross)).toEqual(Object.keys(fresh));
      expect({ ...cross }).toEqual({ ...fresh });
    }
  });

  it("keeps what handlers need of the decode-only fields in k", () => {
    expect(newXInsn(built([0xc8, 0x10, 0x00, 0x23], 32)).k).toBe(3); // ENTER level 0x23 mod 32
    expect(newXInsn(built([0xea, 0x00, 0x10, 0x00, 0x00, 0x08, 0x00], 32)).k).toBe(8); // selector
    expect(newXInsn(built([0xff, 0x28], 32)).k).toBe(-1); // jmp far [eax]
    expect(newXInsn(built([0xd9, 0xc1], 64)).k).toBe((1 << 8) | 0xc1); // FOP of fld st1
    const mmx = newXInsn(built([0x0f, 0xfc, 0xc1], 64)); // paddb mm0, mm1
    expect([mmx.mmx, mmx.k]).toEqual([true, 0]);
    const sse = newXInsn(built([0x66, 0x0f, 0xfc, 0xc1], 64)); // paddb xmm0, xmm1
    expect([sse.mmx, sse.k]).toEqual([false, -1]);
  });
});
