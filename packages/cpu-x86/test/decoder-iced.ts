// Differential harness: our decoder against iced-x86 (Intel rules, DecoderOptions.None) on seeded
// random byte sequences. Used by test/decoder-iced.test.ts (a small sample in CI, 1,000,000 per
// mode with TSKVM_LONG=1) and by bench/decode-iced.mjs for BENCHMARKS.md.
import { CpuidFeature, Decoder, DecoderOptions, Formatter, FormatterSyntax, Mnemonic } from "iced-x86";
import { DecodeStatus, decode, formatIntel, Insn, OP_NAMES } from "../src/index.js";

/**
 * iced-x86 CPUID features this decoder covers (the issue's scope). A sequence that iced decodes
 * into an instruction needing any other feature (AVX-512/EVEX, XOP, 3DNow!, AMX, CET, SGX, SHA,
 * Cyrix, VIA PadLock, ...) is counted per feature and not compared.
 */
export const IN_SCOPE = new Set([
  "INTEL8086",
  "INTEL186",
  "INTEL286",
  "INTEL386",
  "INTEL486",
  "X64",
  "CPUID",
  "FPU",
  "FPU287",
  "FPU387",
  "CMOV",
  "CX8",
  "CMPXCHG16B",
  "MMX",
  "SSE",
  "SSE2",
  "SSE3",
  "SSSE3",
  "SSE4_1",
  "SSE4_2",
  "POPCNT",
  "LZCNT",
  "BMI1",
  "BMI2",
  "MOVBE",
  "ADX",
  "SYSCALL",
  "SEP",
  "RDTSCP",
  "RDRAND",
  "RDSEED",
  "XSAVE",
  "XSAVEOPT",
  "XSAVEC",
  "XSAVES",
  "FXSR",
  "MONITOR",
  "VMX",
  "INVEPT",
  "INVVPID",
  "INVPCID",
  "SMAP",
  "FSGSBASE",
  "RDPID",
  "CLFSH",
  "CLFLUSHOPT",
  "CLWB",
  "PREFETCHW",
  "AVX",
  "AVX2",
  "FMA",
  "F16C",
  "AES",
  "PCLMULQDQ",
  "MSR",
  "TSC",
  "PAUSE",
  "RTM",
  "HLE_or_RTM",
  "SMX",
  "MULTIBYTENOP",
  "RDPMC",
  "SMM",
]);

/**
 * Mnemonic aliases: iced-x86's Mnemonic enum name (lower-cased) -> ours. Same instruction, other
 * spelling; nothing else is forgiven.
 */
export const ALIASES: Readonly<Record<string, string>> = {
  wait: "fwait", // iced's enum says Wait, its formatter prints fwait; SDM: WAIT/FWAIT
  reservednop: "nop", // 0F 18-1F hint space: SDM "NOP r/m" (iced's reserved-NOP enum name)
};

export interface DiffResult {
  mode: 16 | 32 | 64;
  total: number;
  /** Both invalid, or both valid with equal length and mnemonic. */
  agree: number;
  /** Sequences not compared: iced decodes an instruction needing a feature outside IN_SCOPE. */
  skipped: number;
  /** The same, per feature (an instruction may count under several). */
  outOfScope: Map<string, number>;
  /** Anything else: category -> count and one example. */
  differences: Map<string, { n: number; example: string }>;
}

/** mulberry32: a small seeded PRNG, so that every run sees the same bytes. */
export function prng(seed: number): () => number {
  let s = seed | 0;
  return () => {
    s = (s + 0x6d2b79f5) | 0;
    let t = Math.imul(s ^ (s >>> 15), 1 | s);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return (t ^ (t >>> 14)) >>> 0;
  };
}

const PREFIXES = [0x66, 0x66, 0xf2, 0xf3, 0xf0, 0x67, 0x2e, 0x26, 0x64, 0x40, 0x48, 0x41, 0x44, 0x4f];
const ESCAPES = [[0x0f], [0x0f], [0x0f, 0x38], [0x0f, 0x3a], [0xc4], [0xc5], [0xd8], [0xdf]];

/**
 * Random 16-byte sequences. `biased` starts each one with 0-3 prefixes and an escape (0F, 0F 38,
 * 0F 3A, VEX, x87) so that the prefixed and multi-byte maps get as many samples as the one-byte map.
 */
export function randomSequences(count: number, seed: number, biased: boolean): Uint8Array {
  const rnd = prng(seed);
  const buf = new Uint8Array(count * 16 + 16);
  for (let i = 0; i < buf.length; i += 4) {
    const r = rnd();
    buf[i] = r & 255;
    buf[i + 1] = (r >>> 8) & 255;
    buf[i + 2] = (r >>> 16) & 255;
    buf[i + 3] = r >>> 24;
  }
  if (biased)
    for (let i = 0; i < count; i++) {
      let p = i * 16;
      const r = rnd();
      for (let k = r & 3; k > 0; k--) buf[p++] = PREFIXES[(rnd() >>> 3) % PREFIXES.length]!;
      for (const b of ESCAPES[(r >>> 2) & 7]!) buf[p++] = b;
    }
  return buf;
}

/** Compares the first instruction of `count` random 16-byte sequences in `mode`. */
export function runDiff(mode: 16 | 32 | 64, count: number, seed: number, biased = false): DiffResult {
  const buf = randomSequences(count, seed, biased);
  const dec = new Decoder(mode, buf, DecoderOptions.None);
  const fmt = new Formatter(FormatterSyntax.Intel);
  const insn = new Insn();
  const res: DiffResult = {
    mode,
    total: count,
    agree: 0,
    skipped: 0,
    outOfScope: new Map(),
    differences: new Map(),
  };
  const diff = (k: string, ex: string) => {
    const c = res.differences.get(k);
    if (c) c.n++;
    else res.differences.set(k, { n: 1, example: ex });
  };
  for (let i = 0; i < count; i++) {
    const off = i * 16;
    dec.position = off;
    dec.ip = 0x1000n;
    const ins = dec.decode();
    const st = decode(buf, off, mode, insn);
    const ourValid = st === DecodeStatus.Ok;
    const icedValid = !ins.isInvalid;
    if (!ourValid && !icedValid) {
      res.agree++;
      ins.free();
      continue;
    }
    const hex = Buffer.from(buf.subarray(off, off + 15)).toString("hex");
    if (icedValid) {
      const feats = Array.from(ins.cpuidFeatures()).map((f) => CpuidFeature[f] as string);
      const out = feats.filter((f) => !IN_SCOPE.has(f));
      if (out.length) {
        for (const f of out) res.outOfScope.set(f, (res.outOfScope.get(f) ?? 0) + 1);
        res.skipped++;
        ins.free();
        continue;
      }
    }
    const icedMn = icedValid ? (Mnemonic[ins.mnemonic] as string).toLowerCase() : "(bad)";
    const mn = icedValid ? (ALIASES[icedMn] ?? icedMn) : "(bad)";
    const ours = ourValid ? OP_NAMES[insn.op]! : "(bad)";
    const icedText = icedValid ? fmt.format(ins) : "(bad)";
    const ex = `${mode} | ${hex} | iced ${ins.length}: ${icedText} | ours ${insn.length}: ${formatIntel(insn, 0x1000)}`;
    if (ourValid !== icedValid) diff(`${icedValid ? "iced-only" : "ours-only"} ${mn}/${ours}`, ex);
    else if (ins.length !== insn.length) diff(`length ${mn}/${ours}`, ex);
    else if (mn !== ours) diff(`mnemonic ${mn}/${ours}`, ex);
    else res.agree++;
    ins.free();
  }
  return res;
}

/** A Markdown-ish summary for BENCHMARKS.md and test logs. */
export function summarize(r: DiffResult): string {
  const oos = r.skipped;
  const nd = [...r.differences.values()].reduce((a, b) => a + b.n, 0);
  const lines = [
    `${r.mode}-bit: ${r.total} sequences, ${r.agree} agree, ${oos} out of scope (iced decodes a feature we do not cover), ${nd} differ`,
  ];
  for (const [k, v] of [...r.differences.entries()].sort((a, b) => b[1].n - a[1].n))
    lines.push(`  ${String(v.n).padStart(7)} ${k}   e.g. ${v.example}`);
  const top = [...r.outOfScope.entries()].sort((a, b) => b[1] - a[1]).slice(0, 12);
  lines.push(`  out of scope by feature: ${top.map(([f, n]) => `${f} ${n}`).join(", ")}`);
  return lines.join("\n");
}
