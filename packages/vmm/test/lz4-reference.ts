/**
 * The reference for src/boot/lz4.wat: the plain JS LZ4 legacy-stream decoder that src/boot/payload.ts
 * used before the WebAssembly one, byte by byte and with the same checks in the same order. The
 * differential tests in payload.test.ts hold the two to the same output and the same PayloadError
 * on every input, the malformed ones included (the `lz4` tool checks the output, not our errors).
 */
import { PayloadError } from "../src/boot/payload.js";

/** One block into `out` at `pos`, at most up to `limit`; returns the new end. */
function block(
  src: Uint8Array,
  start: number,
  end: number,
  out: Uint8Array,
  pos: number,
  limit: number,
): number {
  const fail = (what: string) => new PayloadError(`LZ4 block at ${start}: ${what}`);
  let i = start;
  let o = pos;
  // A 4-bit length: 15 continues in bytes that add up until one is not 255.
  const length = (n: number, what: string) => {
    if (n < 15) return n;
    for (let b = 255; b === 255; n += b) {
      if (i >= end) throw fail(`truncated ${what}`);
      b = src[i++]!;
    }
    return n;
  };
  for (;;) {
    if (i >= end) throw fail("truncated sequence");
    const token = src[i++]!;
    const lit = length(token >>> 4, "literal length");
    if (i + lit > end) throw fail("literals run past the block");
    if (o + lit > limit) throw fail(`output exceeds ${limit} bytes`);
    for (let k = 0; k < lit; k++) out[o++] = src[i++]!;
    if (i === end) return o;
    if (i + 2 > end) throw fail("truncated match offset");
    const offset = src[i]! | (src[i + 1]! << 8);
    i += 2;
    if (offset === 0 || offset > o - pos) throw fail(`match offset ${offset} is out of range`);
    const len = length(token & 15, "match length") + 4;
    if (o + len > limit) throw fail(`output exceeds ${limit} bytes`);
    for (let from = o - offset, k = 0; k < len; k++) out[o++] = out[from++]!;
  }
}

/** lz4Legacy's reference: the same stream walk, every block through {@link block}. */
export function lz4LegacyReference(src: Uint8Array, size: number): Uint8Array {
  const dv = new DataView(src.buffer, src.byteOffset, src.byteLength);
  const magic = 0x184c2102;
  if (src.length < 4 || dv.getUint32(0, true) !== magic) throw new PayloadError("not an LZ4 legacy stream");
  const out = new Uint8Array(size);
  let o = 0;
  for (let i = 4; i + 4 <= src.length && o < size; ) {
    const at = i;
    const n = dv.getUint32(at, true);
    i = at + 4;
    if (n === magic) continue;
    if (n === 0 || n > src.length - i)
      throw new PayloadError(`LZ4 chunk at ${at}: size ${n} runs past the payload (${src.length} bytes)`);
    const next = block(src, i, i + n, out, o, Math.min(size, o + (8 << 20)));
    if (next === o) throw new PayloadError(`LZ4 chunk at ${at}: inflates to nothing`);
    o = next;
    i += n;
  }
  if (o !== size)
    throw new PayloadError(`LZ4 stream inflates to ${o} bytes, the kernel build recorded ${size}`);
  return out;
}
