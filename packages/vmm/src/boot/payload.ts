/**
 * The kernel inside a bzImage, unpacked on the host: the compressed payload that the bzImage's own
 * decompressor (arch/x86/boot/compressed) would inflate in the guest, inflated here instead, and
 * the ELF program headers of the vmlinux it holds. Loading those segments at their physical
 * addresses and entering vmlinux's `startup_64` is how Firecracker boots Linux; it spares the
 * guest the decompression (for the bundled kernel ~22 M of its ~80 M instructions to init).
 *
 * Supported payloads: LZ4 (the kernel's "legacy" LZ4 stream, `lz4 -l`), gzip, and an uncompressed
 * ELF (CONFIG_KERNEL_UNCOMPRESSED). Other compressions (xz, zstd, bzip2, lzma, lzo) return
 * `undefined` from {@link unpackPayload} so the caller lets the guest decompress as usual.
 * Malformed input fails with a {@link PayloadError}, never anything else; output never exceeds the
 * limit the caller gives (guest RAM), so a hostile image cannot exhaust host memory.
 */
import { gunzipSync } from "node:zlib";

/** A malformed payload: `message` is one line naming what is wrong and where. */
export class PayloadError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "PayloadError";
  }
}

/** The magic of LZ4's legacy stream (lz4 -l), which the kernel's build writes and `unlz4` reads. */
const LZ4_LEGACY_MAGIC = 0x184c2102;
/** Each legacy-stream chunk inflates to at most 8 MiB (LZ4_DEFAULT_UNCOMPRESSED_CHUNK_SIZE). */
const LZ4_CHUNK_MAX = 8 << 20;

const u32 = (b: Uint8Array, o: number) =>
  (b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16) | (b[o + 3]! << 24)) >>> 0;

/** The length `lz4Length` read last (a second result without allocating a pair). */
let lengthOut = 0;

/**
 * A token's 4-bit length `n`: 15 continues in bytes from `src[i]` that add up until one is not 255.
 * Returns the index past them, the length in `lengthOut`. A plain function, not a closure over the
 * caller's index: that would put the index in a context slot for every byte the block copies.
 */
function lz4Length(src: Uint8Array, i: number, end: number, n: number, start: number, what: string): number {
  if (n === 15) {
    let b: number;
    do {
      if (i >= end) throw new PayloadError(`LZ4 block at ${start}: truncated ${what}`);
      b = src[i++]!;
      n += b;
    } while (b === 255);
  }
  lengthOut = n;
  return i;
}

/**
 * Inflates one LZ4 block (the block format: sequences of a token, literals, a 16-bit offset and a
 * match) into `out` at `pos`; returns the new end. Every read and write is bounds-checked.
 */
function lz4Block(
  src: Uint8Array,
  start: number,
  end: number,
  out: Uint8Array,
  pos: number,
  limit: number,
): number {
  let i = start;
  let o = pos;
  for (;;) {
    if (i >= end) throw new PayloadError(`LZ4 block at ${start}: truncated sequence`);
    const token = src[i++]!;
    i = lz4Length(src, i, end, token >>> 4, start, "literal length");
    const lit = lengthOut;
    if (i + lit > end) throw new PayloadError(`LZ4 block at ${start}: literals run past the block`);
    if (o + lit > limit) throw new PayloadError(`LZ4 block at ${start}: output exceeds ${limit} bytes`);
    // Short runs byte by byte: a subarray per sequence would allocate ~1 M objects per kernel.
    if (lit < 64) for (let k = 0; k < lit; k++) out[o++] = src[i++]!;
    else {
      out.set(src.subarray(i, i + lit), o);
      i += lit;
      o += lit;
    }
    // The last sequence has literals only and ends the block exactly.
    if (i === end) return o;
    if (i + 2 > end) throw new PayloadError(`LZ4 block at ${start}: truncated match offset`);
    const offset = src[i]! | (src[i + 1]! << 8);
    i += 2;
    if (offset === 0 || offset > o - pos)
      throw new PayloadError(`LZ4 block at ${start}: match offset ${offset} is out of range`);
    i = lz4Length(src, i, end, token & 15, start, "match length");
    const len = lengthOut + 4;
    if (o + len > limit) throw new PayloadError(`LZ4 block at ${start}: output exceeds ${limit} bytes`);
    let from = o - offset;
    if (offset >= len && len >= 64) {
      out.copyWithin(o, from, from + len);
      o += len;
    } else {
      // Short or overlapping (a repeating pattern): forward byte by byte, as the format defines.
      for (const stop = o + len; o < stop; ) out[o++] = out[from++]!;
    }
  }
}

/**
 * Inflates a legacy LZ4 stream as the kernel's `unlz4` does: the magic, then chunks of a 32-bit
 * compressed size and a block; a repeated magic starts a concatenated stream. `size` is the
 * inflated size the kernel build appends after the stream (mkpiggy reads it the same way).
 */
export function lz4Legacy(src: Uint8Array, size: number): Uint8Array {
  if (src.length < 4 || u32(src, 0) !== LZ4_LEGACY_MAGIC) throw new PayloadError("not an LZ4 legacy stream");
  const out = new Uint8Array(size);
  let i = 4;
  let o = 0;
  while (i + 4 <= src.length && o < size) {
    const chunk = u32(src, i);
    i += 4;
    if (chunk === LZ4_LEGACY_MAGIC) continue;
    if (chunk === 0 || chunk > src.length - i)
      throw new PayloadError(
        `LZ4 chunk at ${i - 4}: size ${chunk} runs past the payload (${src.length} bytes)`,
      );
    const before = o;
    o = lz4Block(src, i, i + chunk, out, o, Math.min(size, o + LZ4_CHUNK_MAX));
    if (o === before) throw new PayloadError(`LZ4 chunk at ${i - 4}: inflates to nothing`);
    i += chunk;
  }
  if (o !== size)
    throw new PayloadError(`LZ4 stream inflates to ${o} bytes, the kernel build recorded ${size}`);
  return out;
}

/** One PT_LOAD segment of the kernel ELF. */
export interface ElfSegment {
  /** Physical load address (p_paddr). */
  paddr: number;
  /** The bytes stored in the file (p_filesz of them). */
  data: Uint8Array;
  /** Bytes in memory (p_memsz): the tail past `data` is zero (.bss, .brk). */
  memSize: number;
}

/** The vmlinux inside the payload. */
export interface KernelElf {
  /** e_entry: vmlinux's entry is the physical address of startup_64 (ENTRY(phys_startup_64)). */
  entry: number;
  segments: ElfSegment[];
  /** Lowest and end of the physical range the segments occupy. */
  start: number;
  end: number;
}

const ET_EXEC = 2;
const EM_X86_64 = 62;
const PT_LOAD = 1;

/** Parses and validates a 64-bit little-endian x86-64 ELF executable's PT_LOAD segments. */
export function parseKernelElf(b: Uint8Array): KernelElf {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  if (b.length < 64 || u32(b, 0) !== 0x464c457f) throw new PayloadError("payload is not an ELF file");
  if (b[4] !== 2 || b[5] !== 1) throw new PayloadError("payload ELF is not 64-bit little-endian");
  if (dv.getUint16(16, true) !== ET_EXEC || dv.getUint16(18, true) !== EM_X86_64)
    throw new PayloadError("payload ELF is not an x86-64 executable");
  const big = (o: number): number => {
    const v = dv.getBigUint64(o, true);
    if (v > BigInt(Number.MAX_SAFE_INTEGER))
      throw new PayloadError(`payload ELF field at ${o} is out of range`);
    return Number(v);
  };
  const entry = big(24);
  const phoff = big(32);
  const phentsize = dv.getUint16(54, true);
  const phnum = dv.getUint16(56, true);
  if (phentsize < 56 || phoff + phnum * phentsize > b.length)
    throw new PayloadError("payload ELF program headers run past the file");
  const segments: ElfSegment[] = [];
  let start = Number.POSITIVE_INFINITY;
  let end = 0;
  for (let k = 0; k < phnum; k++) {
    const ph = phoff + k * phentsize;
    if (dv.getUint32(ph, true) !== PT_LOAD) continue;
    const offset = big(ph + 8);
    const paddr = big(ph + 24);
    const filesz = big(ph + 32);
    const memsz = big(ph + 40);
    if (filesz > memsz || offset + filesz > b.length)
      throw new PayloadError(
        `payload ELF segment ${k}: file bytes [${offset}, +${filesz}) outside the file or above its size in memory`,
      );
    segments.push({ paddr, data: b.subarray(offset, offset + filesz), memSize: memsz });
    start = Math.min(start, paddr);
    end = Math.max(end, paddr + memsz);
  }
  if (segments.length === 0) throw new PayloadError("payload ELF has no loadable segment");
  if (!segments.some((s) => entry >= s.paddr && entry < s.paddr + s.data.length))
    throw new PayloadError(`payload ELF entry 0x${entry.toString(16)} is outside its loaded segments`);
  return { entry, segments, start, end };
}

/**
 * The kernel ELF inside a bzImage payload, or `undefined` when the payload's compression is one
 * the host does not inflate. `maxBytes` caps the inflated size (the guest's RAM).
 */
export function unpackPayload(payload: Uint8Array, maxBytes: number): KernelElf | undefined {
  if (payload.length < 8) throw new PayloadError(`payload of ${payload.length} bytes is too short`);
  const magic = u32(payload, 0);
  let elf: Uint8Array;
  if (magic === 0x464c457f) elf = payload;
  else {
    // The build appends the inflated size, little-endian, after the compressed stream.
    const size = u32(payload, payload.length - 4);
    if (size > maxBytes)
      throw new PayloadError(`payload inflates to ${size} bytes, more than guest memory (${maxBytes})`);
    if (magic === LZ4_LEGACY_MAGIC) elf = lz4Legacy(payload.subarray(0, payload.length - 4), size);
    else if (payload[0] === 0x1f && payload[1] === 0x8b) {
      try {
        elf = gunzipSync(payload, { maxOutputLength: Math.max(1, maxBytes) });
      } catch (e) {
        throw new PayloadError(`gzip payload: ${(e as Error).message}`);
      }
    } else return undefined;
  }
  return parseKernelElf(elf);
}
