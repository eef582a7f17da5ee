// `npx vitest bench --run bench/decode.bench.ts`: one iteration decodes 10,000 instructions
// (hz x 10,000 = decodes/s). bench/decode-run.ts prints M decodes/s directly.
import { bench, describe } from "vitest";
import { DecodeStatus, decode, Insn } from "../src/index.js";
import { randomBytes, realisticCode, withoutPadding } from "./decode-input.js";

const code = withoutPadding(realisticCode().bytes);
const rnd = randomBytes(1 << 20);
const insn = new Insn();
const PER = 10_000;

function make(bytes: Uint8Array, mode: 16 | 32 | 64) {
  let off = 0;
  return () => {
    for (let i = 0; i < PER; i++) {
      if (off >= bytes.length) off = 0;
      const st = decode(bytes, off, mode, insn);
      off += st === DecodeStatus.Ok ? insn.length : 1;
    }
  };
}

describe("decode (10,000 instructions per iteration)", () => {
  bench("kernel .text without INT3 padding, 64-bit", make(code, 64));
  bench("random bytes, 64-bit", make(rnd, 64));
  bench("random bytes, 32-bit", make(rnd, 32));
  bench("random bytes, 16-bit", make(rnd, 16));
});
