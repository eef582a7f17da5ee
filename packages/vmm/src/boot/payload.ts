/**
 * The kernel inside a bzImage, unpacked on the host: the compressed payload that the bzImage's own
 * decompressor (arch/x86/boot/compressed) would inflate in the guest, inflated here instead, and
 * the ELF program headers of the vmlinux it holds. Loading those segments at their physical
 * addresses and entering vmlinux's `startup_64` is how Firecracker boots Linux; it spares the
 * guest the decompression (for the bundled kernel ~22 M of its ~80 M instructions to init).
 *
 * Supported payloads: LZ4 (the kernel's "legacy" LZ4 stream, `lz4 -l`), gzip, and an uncompressed
 * ELF (CONFIG_KERNEL_UNCOMPRESSED). Other compressions (xz, zstd, bzip2, lzma, lzo) return
 * `undefined` from {@link unpackPayload} so the caller lets the guest decompress as usual; so does
 * LZ4 where WebAssembly, which inflates its blocks (src/boot/lz4.wat), is off (`node --jitless`).
 * Malformed input fails with a {@link PayloadError}, never anything else; output never exceeds the
 * limit the caller gives (guest RAM), so a hostile image cannot exhaust host memory.
 */
import { LZ4_WASM } from "../generated/lz4-wasm.js";
import { nodeZlib } from "../lazy-node.js";

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

/** A WebAssembly page. */
const WASM_PAGE = 65536;
/** lz4.wat's addresses stay below 2^31 (so its unsigned arithmetic cannot wrap): 32767 pages at most. */
const LZ4_MAX_PAGES = 0x7fff;

/**
 * The WebAssembly JS API as used here. TypeScript declares it only in lib "dom", which this
 * package leaves out (it runs on Node), so the global is typed by hand.
 */
interface Wasm {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: object };
  Memory: new (descriptor: { initial: number; maximum: number }) => { buffer: ArrayBuffer };
}
/** The WebAssembly global: absent when V8 runs without code generation (`node --jitless`). */
const wasmApi = () => (globalThis as unknown as { WebAssembly?: Wasm }).WebAssembly;
/** lz4.wat's exports. */
interface Lz4Exports {
  /** Inflates the block in [start, end) to [pos, ...) within `limit`: the new end, or a code < 0. */
  block(start: number, end: number, pos: number, limit: number): number;
  /** The offending match offset after code -6. */
  detail: { value: number };
}

/** The check that lz4.wat's `block` failed (its code -1 ... -7), for the block at `start`. */
function lz4Error(code: number, start: number, limit: number, offset: number): PayloadError {
  const what = [
    "truncated sequence",
    "truncated literal length",
    "literals run past the block",
    `output exceeds ${limit} bytes`,
    "truncated match offset",
    `match offset ${offset} is out of range`,
    "truncated match length",
  ][-code - 1];
  return new PayloadError(`LZ4 block at ${start}: ${what ?? `decoder failed with code ${code}`}`);
}

/**
 * Inflates a legacy LZ4 stream as the kernel's `unlz4` does: the magic, then chunks of a 32-bit
 * compressed size and a block; a repeated magic starts a concatenated stream. `size` is the
 * inflated size the kernel build appends after the stream (mkpiggy reads it the same way).
 *
 * Blocks inflate in WebAssembly (src/boot/lz4.wat), in a memory of the stream followed by the
 * output; the result is a view of that memory. Every read and write is bounds-checked inside.
 */
export function lz4Legacy(src: Uint8Array, size: number): Uint8Array {
  if (src.length < 4 || u32(src, 0) !== LZ4_LEGACY_MAGIC) throw new PayloadError("not an LZ4 legacy stream");
  const base = src.length;
  const pages = Math.ceil((base + size) / WASM_PAGE);
  if (pages > LZ4_MAX_PAGES)
    throw new PayloadError(
      `LZ4 stream of ${src.length} bytes inflating to ${size} needs more than the decoder's 2 GiB`,
    );
  const wasm = wasmApi();
  if (wasm === undefined)
    throw new PayloadError("LZ4 needs WebAssembly, which this Node has off (--jitless)");
  const memory = new wasm.Memory({ initial: pages, maximum: pages });
  const lz4 = new wasm.Instance(new wasm.Module(LZ4_WASM), { lz4: { memory } }).exports as Lz4Exports;
  new Uint8Array(memory.buffer).set(src);
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
    const limit = Math.min(size, o + LZ4_CHUNK_MAX);
    const end = lz4.block(i, i + chunk, base + o, base + limit);
    if (end < 0) throw lz4Error(end, i, limit, lz4.detail.value);
    if (end - base === o) throw new PayloadError(`LZ4 chunk at ${i - 4}: inflates to nothing`);
    o = end - base;
    i += chunk;
  }
  if (o !== size)
    throw new PayloadError(`LZ4 stream inflates to ${o} bytes, the kernel build recorded ${size}`);
  return new Uint8Array(memory.buffer, base, size);
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
    if (magic === LZ4_LEGACY_MAGIC) {
      // Without WebAssembly the guest's own decompressor does it, as for a compression we lack.
      if (wasmApi() === undefined) return undefined;
      elf = lz4Legacy(payload.subarray(0, payload.length - 4), size);
    } else if (payload[0] === 0x1f && payload[1] === 0x8b) {
      try {
        elf = nodeZlib().gunzipSync(payload, { maxOutputLength: Math.max(1, maxBytes) });
      } catch (e) {
        throw new PayloadError(`gzip payload: ${(e as Error).message}`);
      }
    } else return undefined;
  }
  return parseKernelElf(elf);
}
