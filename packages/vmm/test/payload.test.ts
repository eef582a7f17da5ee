/**
 * The bzImage payload inflated on the host (src/boot/payload.ts), checked against the `lz4` tool
 * (the reference implementation of the format the kernel build writes with `lz4 -l`) and Node's
 * zlib, and loaded the way Firecracker loads a vmlinux.
 */
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { gzipSync } from "node:zlib";
import fc from "fast-check";
import { describe, expect, it, vi } from "vitest";
import { assembleLz4Wasm, GENERATED_PATH, lz4WasmSource } from "../scripts/build-lz4-wasm.js";
import { Hdr, LinuxLoadError, loadLinux, parseBzImage } from "../src/boot/linux.js";
import { lz4Legacy, PayloadError, parseKernelElf, unpackPayload } from "../src/boot/payload.js";
import { LZ4_WASM } from "../src/generated/lz4-wasm.js";
import { MiB, ramRanges } from "../src/layout.js";
import { GuestRam } from "../src/memory.js";
import { lz4LegacyReference } from "./lz4-reference.js";

const GUESTS = resolve(__dirname, "../../../guests");
const bzImage = new Uint8Array(readFileSync(resolve(GUESTS, "bzImage")));
const initramfs = new Uint8Array(readFileSync(resolve(GUESTS, "initramfs.cpio")));

/** The lz4 command-line tool: CI installs it (.ci/run); without it these tests fail, saying so. */
function lz4(args: string[], input: Uint8Array): Uint8Array {
  const r = spawnSync("lz4", args, { input, maxBuffer: 256 * MiB });
  if (r.error)
    throw new Error(`the lz4 tool is needed as the reference (apt-get install lz4): ${r.error.message}`);
  if (r.status !== 0) throw new Error(`lz4 ${args.join(" ")}: ${r.stderr.toString()}`);
  return new Uint8Array(r.stdout);
}

/** What the kernel build writes: `lz4 -l -c1`, then the inflated size (scripts/Makefile.lib size_append). */
function kernelLz4(data: Uint8Array): Uint8Array {
  const z = lz4(["-l", "-c1", "-9"], data);
  const out = new Uint8Array(z.length + 4);
  out.set(z);
  new DataView(out.buffer).setUint32(z.length, data.length, true);
  return out;
}

function payloadOf(image: Uint8Array): Uint8Array {
  const h = parseBzImage(image);
  const start = h.kernelOffset + h.payloadOffset;
  return image.subarray(start, start + h.payloadLength);
}

/** A small x86-64 ELF executable with the given PT_LOAD segments (paddr, bytes, memsz). */
function elf(entry: number, segs: { paddr: number; data: Uint8Array; memsz?: number }[]): Uint8Array {
  const phoff = 64;
  let off = phoff + 56 * segs.length;
  const img = new Uint8Array(off + segs.reduce((n, s) => n + s.data.length, 0));
  const dv = new DataView(img.buffer);
  img.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1]);
  dv.setUint16(16, 2, true); // ET_EXEC
  dv.setUint16(18, 62, true); // EM_X86_64
  dv.setBigUint64(24, BigInt(entry), true);
  dv.setBigUint64(32, BigInt(phoff), true);
  dv.setUint16(54, 56, true);
  dv.setUint16(56, segs.length, true);
  segs.forEach((s, i) => {
    const ph = phoff + 56 * i;
    dv.setUint32(ph, 1, true); // PT_LOAD
    dv.setBigUint64(ph + 8, BigInt(off), true);
    dv.setBigUint64(ph + 16, BigInt(s.paddr) | 0xffffffff80000000n, true);
    dv.setBigUint64(ph + 24, BigInt(s.paddr), true);
    dv.setBigUint64(ph + 32, BigInt(s.data.length), true);
    dv.setBigUint64(ph + 40, BigInt(s.memsz ?? s.data.length), true);
    img.set(s.data, off);
    off += s.data.length;
  });
  return img;
}

/** The bundled bzImage with its payload replaced (the setup and decompressor kept). */
function withPayload(payload: Uint8Array): Uint8Array {
  const h = parseBzImage(bzImage);
  const start = h.kernelOffset + h.payloadOffset;
  const img = new Uint8Array(start + payload.length);
  img.set(bzImage.subarray(0, start));
  img.set(payload, start);
  const dv = new DataView(img.buffer);
  dv.setUint32(Hdr.PAYLOAD_LENGTH, payload.length, true);
  dv.setUint32(Hdr.SYSSIZE, Math.floor((img.length - h.kernelOffset) / 16), true);
  return img;
}

/** What a decoder makes of a stream: its output, or the PayloadError's message. */
function outcome(decode: (src: Uint8Array, size: number) => Uint8Array, src: Uint8Array, size: number) {
  try {
    return decode(src, size);
  } catch (e) {
    if (e instanceof PayloadError) return e.message;
    throw e;
  }
}

/** The WebAssembly decoder and the JS reference (test/lz4-reference.ts) agree on `src`. */
function expectSameAsReference(src: Uint8Array, size: number): Uint8Array | string {
  const ours = outcome(lz4Legacy, src, size);
  const ref = outcome(lz4LegacyReference, src, size);
  if (typeof ours === "string" || typeof ref === "string") expect(ours).toBe(ref);
  else expect(Buffer.compare(ours, ref)).toBe(0);
  return ours;
}

function read(r: GuestRam, gpa: number, n: number): Uint8Array {
  const b = new Uint8Array(n);
  expect(r.read(gpa, b)).toBe(true);
  return b;
}

describe("LZ4 legacy stream (the kernel's LZ4 payload format)", () => {
  it("inflates the bundled kernel's payload exactly as `lz4 -d` does", () => {
    const p = payloadOf(bzImage);
    const size = new DataView(p.buffer, p.byteOffset).getUint32(p.length - 4, true);
    const ours = expectSameAsReference(p.subarray(0, p.length - 4), size) as Uint8Array;
    const ref = lz4(["-d", "-c"], p.subarray(0, p.length - 4));
    expect(ours.length).toBe(ref.length);
    expect(Buffer.compare(ours, ref)).toBe(0);
  });

  it("matches `lz4 -l` for data with literals, long matches, overlapping runs and several 8 MiB chunks", () => {
    const rnd = (seed: number) => () => {
      seed = (seed * 1103515245 + 12345) >>> 0;
      return seed >>> 16;
    };
    const r = rnd(7);
    const cases: Uint8Array[] = [new Uint8Array([0x42]), new Uint8Array(100).fill(9)];
    const mixed = new Uint8Array(17 * MiB + 12345);
    for (let i = 0; i < mixed.length; ) {
      const kind = r() % 4;
      const n = Math.min(mixed.length - i, 1 + (r() % 3000));
      if (kind === 0)
        for (let k = 0; k < n; k++) mixed[i + k] = r() & 0xff; // incompressible
      else if (kind === 1)
        mixed.fill(r() & 0xff, i, i + n); // a run: overlapping offset-1 matches
      else if (kind === 2 && i > 70000) mixed.copyWithin(i, i - 1 - (r() % 65000), i - 1 - (r() % 65000) + n);
      else for (let k = 0; k < n; k++) mixed[i + k] = [1, 2, 3][k % 3]!; // short repeating pattern
      i += n;
    }
    cases.push(mixed);
    for (const data of cases) {
      const z = kernelLz4(data);
      const out = lz4Legacy(z.subarray(0, z.length - 4), data.length);
      expect(Buffer.compare(out, data)).toBe(0);
    }
  });

  it("fuzz: corrupted streams give the reference's PayloadError or its output, never another exception", () => {
    const data = new Uint8Array(40000);
    for (let i = 0; i < data.length; i++) data[i] = (i * 31) % 251 < 60 ? (i * 7) & 0xff : (i >> 6) & 3;
    const z = kernelLz4(data).subarray(0, -4);
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat(z.length - 1), fc.nat(255)), { minLength: 1, maxLength: 8 }),
        fc.integer({ min: 0, max: 80000 }),
        (edits, size) => {
          const bad = z.slice();
          for (const [at, v] of edits) bad[at] = v;
          const r = expectSameAsReference(bad, size);
          if (typeof r !== "string") expect(r.length).toBe(size);
        },
      ),
      { numRuns: 2000 },
    );
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.integer({ min: 0, max: 1 << 20 }), (bytes, size) => {
        const s = new Uint8Array(bytes.length + 4);
        s.set([0x02, 0x21, 0x4c, 0x18]);
        s.set(bytes, 4);
        const r = expectSameAsReference(s, size);
        if (typeof r !== "string") expect(r.length).toBe(size);
      }),
      { numRuns: 2000 },
    );
  });

  it("the WebAssembly decoder matches the JS reference and `lz4 -d` on random compressible data", () => {
    // Runs, short repeats (overlapping matches), copies from up to 64 KiB back and noise, at the
    // sizes that cross the decoder's fast-path and wide-copy thresholds.
    const piece = fc.oneof(
      fc
        .tuple(fc.nat(255), fc.integer({ min: 1, max: 300 }))
        .map(([b, n]) => ({ kind: "run" as const, b, n })),
      fc
        .tuple(fc.uint8Array({ minLength: 2, maxLength: 9 }), fc.integer({ min: 1, max: 200 }))
        .map(([p, n]) => ({ kind: "repeat" as const, p, n })),
      fc.tuple(fc.integer({ min: 1, max: 70000 }), fc.integer({ min: 4, max: 400 })).map(([back, n]) => ({
        kind: "copy" as const,
        back,
        n,
      })),
      fc.uint8Array({ minLength: 1, maxLength: 40 }).map((p) => ({ kind: "noise" as const, p })),
    );
    fc.assert(
      fc.property(fc.array(piece, { maxLength: 60 }), fc.boolean(), (pieces, fast) => {
        const parts: number[] = [];
        for (const x of pieces) {
          if (x.kind === "run") for (let k = 0; k < x.n; k++) parts.push(x.b);
          else if (x.kind === "repeat") for (let k = 0; k < x.n; k++) parts.push(x.p[k % x.p.length]!);
          else if (x.kind === "noise") parts.push(...x.p);
          else if (parts.length > 0) {
            const from = Math.max(0, parts.length - x.back);
            for (let k = 0; k < x.n; k++) parts.push(parts[from + k]!);
          }
        }
        const data = new Uint8Array(parts);
        const z = lz4(["-l", "-c", fast ? "-1" : "-9"], data);
        const ours = expectSameAsReference(z, data.length);
        const out = ours as Uint8Array;
        expect(Buffer.compare(out, data)).toBe(0);
        // Nothing written past the output (the decoder's memory is fresh, so zero there).
        expect(new Uint8Array(out.buffer, out.byteOffset + out.length).every((b) => b === 0)).toBe(true);
      }),
      { numRuns: 150 },
    );
  });

  it("each malformed block gives the reference's message, on the general and the fast path", () => {
    // A legacy stream of one chunk holding the block `parts` make up.
    const stream = (...parts: (number[] | Uint8Array)[]) => {
      const n = parts.reduce((k, p) => k + p.length, 0);
      const s = new Uint8Array(8 + n);
      s.set([0x02, 0x21, 0x4c, 0x18]);
      new DataView(s.buffer).setUint32(4, n, true);
      let at = 8;
      for (const p of parts) {
        s.set(p, at);
        at += p.length;
      }
      return s;
    };
    const a = 0x61;
    const ff = (n: number) => new Uint8Array(n).fill(255);
    // Enough bytes after the sequence for the decoder's fast path (32 in, 40 out).
    const pad = new Uint8Array(40);
    // Length bytes that add up to 2^32 + 1 (15 + 255 * 16843008 + 242): a decoder whose 32-bit
    // lengths wrapped would read a length of 1 (lz4.wat's saturate at 2^31 instead).
    const wrap = ff(16_843_008);
    const cases: [string, Uint8Array, number, string][] = [
      ["ends after a match", stream([0x10, a, 1, 0]), 100, "truncated sequence"],
      ["literal length cut", stream([0xf0]), 100, "truncated literal length"],
      ["literal length of 255s cut", stream([0xf0], ff(300)), 100, "truncated literal length"],
      ["literals past the block", stream([0x50, a]), 100, "literals run past the block"],
      ["literal length of 2^32 + 1", stream([0xf0], wrap, [242, a]), 100, "literals run past the block"],
      ["literals past the output", stream([0x30, a, a, a]), 2, "output exceeds 2 bytes"],
      ["offset cut", stream([0x10, a, 1]), 100, "truncated match offset"],
      ["offset 0", stream([0x10, a, 0, 0, 0x00]), 100, "match offset 0 is out of range"],
      ["offset past the start", stream([0x10, a, 2, 0, 0x00]), 100, "match offset 2 is out of range"],
      ["offset 0, fast path", stream([0x10, a, 0, 0], pad), 100, "match offset 0 is out of range"],
      [
        "offset past the start, fast path",
        stream([0x10, a, 2, 0], pad),
        100,
        "match offset 2 is out of range",
      ],
      ["match length cut", stream([0x1f, a, 1, 0]), 100, "truncated match length"],
      ["match past the output", stream([0x1f, a, 1, 0, 200, 0x00]), 100, "output exceeds 100 bytes"],
      [
        "match length of 2^32 + 5",
        stream([0x1f, a, 1, 0], wrap, [242, 0x00]),
        100,
        "output exceeds 100 bytes",
      ],
      ["match past the output, fast path", stream([0x16, a, 1, 0], pad), 8, "output exceeds 8 bytes"],
    ];
    for (const [name, s, size, want] of cases) {
      const r = expectSameAsReference(s, size);
      expect(typeof r === "string" ? r : "no error", name).toContain(want);
    }
  });

  it("src/generated/lz4-wasm.ts is src/boot/lz4.wat as wabt assembles it", async () => {
    const bytes = await assembleLz4Wasm();
    expect(Buffer.compare(bytes, LZ4_WASM)).toBe(0);
    expect(readFileSync(GENERATED_PATH, "utf8")).toBe(lz4WasmSource(bytes));
  });
});

describe("the kernel ELF in the payload", () => {
  it("the bundled kernel: x86-64 vmlinux entered at startup_64, 16 MiB, segments inside the ELF", () => {
    const k = unpackPayload(payloadOf(bzImage), 256 * MiB)!;
    expect(k.entry).toBe(0x1000000);
    expect(k.start).toBe(0x1000000);
    expect(k.segments.length).toBeGreaterThan(1);
    // The .bss/.brk segment: more bytes in memory than in the file.
    expect(k.segments.some((s) => s.memSize > s.data.length)).toBe(true);
    expect(k.end).toBeLessThan(parseBzImage(bzImage).prefAddress + parseBzImage(bzImage).initSize);
  });

  it("rejects what is not an x86-64 ELF executable, and segments outside the file", () => {
    const good = elf(0x100000, [{ paddr: 0x100000, data: new Uint8Array([0xf4]) }]);
    expect(parseKernelElf(good).entry).toBe(0x100000);
    const msg = (b: Uint8Array) => {
      try {
        parseKernelElf(b);
        return "none";
      } catch (e) {
        if (e instanceof PayloadError) return e.message;
        throw e;
      }
    };
    expect(msg(new Uint8Array(64))).toBe("payload is not an ELF file");
    const b32 = good.slice();
    b32[4] = 1;
    expect(msg(b32)).toContain("64-bit");
    const arm = good.slice();
    arm[18] = 183;
    expect(msg(arm)).toContain("x86-64 executable");
    const past = good.slice();
    new DataView(past.buffer).setBigUint64(64 + 32, 1000n, true);
    expect(msg(past)).toContain("segment 0");
    expect(msg(elf(0x200000, [{ paddr: 0x100000, data: new Uint8Array(4) }]))).toContain("entry 0x200000");
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.nat(good.length - 1), fc.nat(255)), { maxLength: 6 }), (edits) => {
        const b = good.slice();
        for (const [at, v] of edits) b[at] = v;
        msg(b);
      }),
      { numRuns: 3000 },
    );
  });
});

describe("loadLinux with the host inflating the kernel (the default)", () => {
  const mem = 256 * MiB;

  it("loads the bundled kernel's segments at their physical addresses and enters startup_64", () => {
    const r = new GuestRam(ramRanges(mem));
    // Garbage where .bss goes: the loader must zero it, as the kernel's decompressor would.
    const k = unpackPayload(payloadOf(bzImage), mem)!;
    const bss = k.segments.find((s) => s.memSize > s.data.length)!;
    r.write(bss.paddr + bss.data.length, new Uint8Array(bss.memSize - bss.data.length).fill(0xa5));
    const res = loadLinux(r, { kernel: bzImage, initrd: initramfs, cmdline: "console=ttyS0", memBytes: mem });
    expect(res.hostDecompressed).toBe(true);
    expect(res.entry).toBe(0x1000000);
    expect(res.cpu.regs.rip).toBe(0x1000000);
    for (const s of k.segments) {
      expect(Buffer.compare(read(r, s.paddr, s.data.length), s.data)).toBe(0);
      expect(read(r, s.paddr + s.data.length, s.memSize - s.data.length).every((b) => b === 0)).toBe(true);
    }
    // The kernel's banner sits in its .rodata, where the kernel will look for it.
    const text = Buffer.from(read(r, k.start, k.end - k.start)).toString("latin1");
    expect(text).toContain("Linux version 6.1");
    expect(res.initrd!.addr).toBeGreaterThanOrEqual(k.end);
  });

  it("needs RAM only up to the end of vmlinux (not the decompressor's init_size)", () => {
    const k = unpackPayload(payloadOf(bzImage), mem)!;
    const tooSmall = Math.floor((k.end - 1) / MiB) * MiB;
    expect(() =>
      loadLinux(new GuestRam(ramRanges(tooSmall)), { kernel: bzImage, memBytes: tooSmall }),
    ).toThrow(/kernel needs guest memory/);
    const enough = Math.ceil(k.end / MiB) * MiB;
    expect(loadLinux(new GuestRam(ramRanges(enough)), { kernel: bzImage, memBytes: enough }).entry).toBe(
      0x1000000,
    );
  });

  it("without WebAssembly (node --jitless) an LZ4 payload falls back to the guest's decompressor", () => {
    vi.stubGlobal("WebAssembly", undefined);
    try {
      expect(unpackPayload(payloadOf(bzImage), mem)).toBeUndefined();
      const res = loadLinux(new GuestRam(ramRanges(mem)), { kernel: bzImage, memBytes: mem });
      expect(res.hostDecompressed).toBe(false);
    } finally {
      vi.unstubAllGlobals();
    }
    expect(unpackPayload(payloadOf(bzImage), mem)).toBeDefined();
  });

  it("gzip and uncompressed payloads load too; xz falls back to the guest's decompressor", () => {
    const body = new Uint8Array(5000).map((_, i) => i & 0xff);
    const kernel = elf(0x1000000, [
      { paddr: 0x1000000, data: body },
      { paddr: 0x1200000, data: new Uint8Array([1, 2, 3]), memsz: 0x3000 },
    ]);
    for (const payload of [gzipSync(kernel), kernel]) {
      const r = new GuestRam(ramRanges(64 * MiB));
      const res = loadLinux(r, { kernel: withPayload(payload), memBytes: 64 * MiB });
      expect(res.hostDecompressed).toBe(true);
      expect(res.entry).toBe(0x1000000);
      expect(Buffer.compare(read(r, 0x1000000, body.length), body)).toBe(0);
      expect([...read(r, 0x1200000, 4)]).toEqual([1, 2, 3, 0]);
    }
    const xz = new Uint8Array([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00, 0, 0, 0, 0, 0, 0]);
    const res = loadLinux(new GuestRam(ramRanges(64 * MiB)), { kernel: withPayload(xz), memBytes: 64 * MiB });
    expect(res.hostDecompressed).toBe(false);
    expect(res.entry).toBe(0x100200);
  });

  it("a corrupt payload, a payload past the file, a bomb or a kernel below 1 MiB: one clear line", () => {
    const msg = (kernel: Uint8Array) => {
      try {
        loadLinux(new GuestRam(ramRanges(64 * MiB)), { kernel, memBytes: 64 * MiB });
        return "none";
      } catch (e) {
        if (e instanceof LinuxLoadError) return e.message;
        throw e;
      }
    };
    const corrupt = payloadOf(bzImage).slice();
    corrupt.fill(0xff, 4, 64);
    expect(msg(withPayload(corrupt))).toMatch(
      /^bzImage payload is malformed: LZ4 chunk at 4: size \d+ runs past/,
    );
    const bomb = kernelLz4(new Uint8Array(1000));
    new DataView(bomb.buffer).setUint32(bomb.length - 4, 0x7fffffff, true);
    expect(msg(withPayload(bomb))).toBe(
      `bzImage payload is malformed: payload inflates to ${0x7fffffff} bytes, more than guest memory (${64 * MiB})`,
    );
    expect(msg(withPayload(elf(0x1000, [{ paddr: 0x1000, data: new Uint8Array(16) }])))).toBe(
      "bzImage payload is malformed: vmlinux loads at 0x1000, below 1 MiB where the boot tables live",
    );
    const cut = withPayload(payloadOf(bzImage));
    new DataView(cut.buffer).setUint32(Hdr.PAYLOAD_LENGTH, cut.length, true);
    expect(msg(cut)).toMatch(/^bzImage truncated/);
  });
});
