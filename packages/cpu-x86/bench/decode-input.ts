// Inputs for the decoder benchmarks: the .text of the bundled Linux kernel (guests/bzImage, an
// LZ4-compressed vmlinux inside a bzImage), or of /bin/ls when the image is absent, and seeded
// random bytes. Cold-path code: allocations are fine here.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { DecodeStatus, decode, Insn } from "../src/index.js";

/** Decodes the LZ4 legacy frame format (magic 0x184C2102), as the kernel's LZ4 decompressor reads it. */
export function lz4Legacy(src: Uint8Array, start: number): Uint8Array {
  const dv = new DataView(src.buffer, src.byteOffset, src.byteLength);
  const chunks: Uint8Array[] = [];
  let p = start + 4;
  while (p + 4 <= src.length) {
    const size = dv.getUint32(p, true);
    if (size === 0x184c2102) {
      p += 4; // a new frame's magic
      continue;
    }
    if (size === 0 || p + 4 + size > src.length) break;
    p += 4;
    const out = new Uint8Array(8 << 20);
    let o = 0;
    const end = p + size;
    while (p < end) {
      const token = src[p++]!;
      let lit = token >> 4;
      if (lit === 15) for (let b = 255; b === 255 && p < end; ) lit += b = src[p++]!;
      out.set(src.subarray(p, p + lit), o);
      o += lit;
      p += lit;
      if (p >= end) break;
      const off = src[p]! | (src[p + 1]! << 8);
      p += 2;
      let len = token & 15;
      if (len === 15) for (let b = 255; b === 255 && p < end; ) len += b = src[p++]!;
      len += 4;
      for (let k = 0; k < len; k++, o++) out[o] = out[o - off]!;
    }
    chunks.push(out.subarray(0, o));
    if (o < 8 << 20) break; // the last block is short
  }
  const total = chunks.reduce((a, c) => a + c.length, 0);
  const all = new Uint8Array(total);
  let q = 0;
  for (const c of chunks) {
    all.set(c, q);
    q += c.length;
  }
  return all;
}

/** The bytes of an ELF64 file's `.text` section, or undefined. */
export function elfText(elf: Uint8Array): Uint8Array | undefined {
  if (elf.length < 64 || elf[0] !== 0x7f || elf[1] !== 0x45 || elf[4] !== 2) return undefined;
  const dv = new DataView(elf.buffer, elf.byteOffset, elf.byteLength);
  const shoff = Number(dv.getBigUint64(0x28, true));
  const shentsize = dv.getUint16(0x3a, true);
  const shnum = dv.getUint16(0x3c, true);
  const shstrndx = dv.getUint16(0x3e, true);
  const sh = (i: number) => shoff + i * shentsize;
  const strOff = Number(dv.getBigUint64(sh(shstrndx) + 0x18, true));
  for (let i = 0; i < shnum; i++) {
    const nameOff = dv.getUint32(sh(i), true);
    let name = "";
    for (let k = strOff + nameOff; elf[k] !== 0 && k < elf.length; k++) name += String.fromCharCode(elf[k]!);
    if (name === ".text") {
      const off = Number(dv.getBigUint64(sh(i) + 0x18, true));
      const size = Number(dv.getBigUint64(sh(i) + 0x20, true));
      return elf.subarray(off, off + size);
    }
  }
  return undefined;
}

/** The kernel's .text (about 10 MB for the bundled 6.1 image), or /bin/ls's; with its source. */
export function realisticCode(): { name: string; bytes: Uint8Array } {
  // From bench/ in the source tree, or from the working directory (the bundled runner).
  const candidates = [
    join(import.meta.dirname, "../../../guests/bzImage"),
    join(process.cwd(), "../../guests/bzImage"),
  ];
  const bz = candidates.find((c) => existsSync(c));
  if (bz) {
    const img = new Uint8Array(readFileSync(bz));
    for (let i = 0; i + 4 < img.length; i++)
      if (img[i] === 0x02 && img[i + 1] === 0x21 && img[i + 2] === 0x4c && img[i + 3] === 0x18) {
        const text = elfText(lz4Legacy(img, i));
        if (text && text.length > 1 << 20) return { name: "guests/bzImage vmlinux .text", bytes: text };
      }
  }
  const text = elfText(new Uint8Array(readFileSync("/bin/ls")));
  if (!text) throw new Error("no code to benchmark: neither guests/bzImage nor /bin/ls has a .text");
  return { name: "/bin/ls .text", bytes: text };
}

/**
 * `code` without its INT3 padding: the kernel fills the gaps between functions with CC bytes, which
 * make up 80% of its .text's instructions and would flatter a decode benchmark. Whole
 * instructions are kept, in order, so the result is still a valid instruction stream.
 */
export function withoutPadding(code: Uint8Array): Uint8Array {
  const out = new Uint8Array(code.length);
  const insn = new Insn();
  let o = 0;
  let off = 0;
  while (off < code.length) {
    const len = decode(code, off, 64, insn) === DecodeStatus.Ok ? insn.length : 1;
    if (!(len === 1 && code[off] === 0xcc)) {
      out.set(code.subarray(off, off + len), o);
      o += len;
    }
    off += len;
  }
  return out.subarray(0, o);
}

/** Seeded random bytes (mulberry32). */
export function randomBytes(n: number, seed = 1): Uint8Array {
  const out = new Uint8Array(n);
  let s = seed | 0;
  for (let i = 0; i < n; i++) {
    s = (s + 0x6d2b79f5) | 0;
    let t = Math.imul(s ^ (s >>> 15), 1 | s);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    out[i] = (t ^ (t >>> 14)) & 255;
  }
  return out;
}
