// Differential harness: our decoder against iced-x86 (Intel rules, DecoderOptions.None) on seeded
// random byte sequences. Used by test/decoder-iced.test.ts (a small sample in CI, 1,000,000 per
// mode with TSKVM_LONG=1) and by bench/decode-iced.mjs for BENCHMARKS.md.
import {
  CpuidFeature,
  Decoder,
  DecoderOptions,
  Formatter,
  FormatterSyntax,
  OpKind as IcedOpKind,
  Register as IcedRegister,
  Mnemonic,
} from "iced-x86";
import { DecodeStatus, decode, formatIntel, formOperands, Insn, OP_NAMES, OpKind } from "../src/index.js";

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
  "PKU",
  "SERIALIZE",
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

const GPR_NUM: Record<string, number> = {};
[
  ["rax", "eax", "ax", "al"],
  ["rcx", "ecx", "cx", "cl"],
  ["rdx", "edx", "dx", "dl"],
  ["rbx", "ebx", "bx", "bl"],
  ["rsp", "esp", "sp", "spl"],
  ["rbp", "ebp", "bp", "bpl"],
  ["rsi", "esi", "si", "sil"],
  ["rdi", "edi", "di", "dil"],
].forEach((names, n) => {
  for (const x of names) GPR_NUM[x] = n;
});
for (let n = 8; n < 16; n++) for (const s of ["", "d", "w", "l"]) GPR_NUM[`r${n}${s}`] = n;
const SEG_NUM: Record<string, number> = { es: 0, cs: 1, ss: 2, ds: 3, fs: 4, gs: 5 };

/**
 * Operand-level differential: for instructions both decoders accept (in scope), compares what
 * the executor reads from `Insn` with iced's operands: memory base, index, scale, displacement
 * (RIP-relative as the target address), segment override, immediates and near-branch targets.
 * Returns category -> count and an example, empty when all agree.
 */
export function runOperandDiff(mode: 16 | 32 | 64, count: number, seed: number, biased: boolean) {
  const buf = randomSequences(count, seed, biased);
  const dec = new Decoder(mode, buf, DecoderOptions.None);
  const fmt = new Formatter(FormatterSyntax.Intel);
  const insn = new Insn();
  const diffs = new Map<string, { n: number; example: string }>();
  let compared = 0;
  const ip = 0x1000;
  for (let i = 0; i < count; i++) {
    const off = i * 16;
    dec.position = off;
    dec.ip = BigInt(ip);
    const ins = dec.decode();
    const st = decode(buf, off, mode, insn);
    if (st !== DecodeStatus.Ok || ins.isInvalid) {
      ins.free();
      continue;
    }
    if (!Array.from(ins.cpuidFeatures()).every((f) => IN_SCOPE.has(CpuidFeature[f] as string))) {
      ins.free();
      continue;
    }
    compared++;
    const bad = (what: string) => {
      const k = `${what} (${(Mnemonic[ins.mnemonic] as string).toLowerCase()})`;
      const ex = `${mode} | ${Buffer.from(buf.subarray(off, off + insn.length)).toString("hex")} | iced ${fmt.format(ins)} | ours ${formatIntel(insn, ip)}`;
      const c = diffs.get(k);
      if (c) c.n++;
      else diffs.set(k, { n: 1, example: ex });
    };
    const asMask = insn.addrSize === 8 ? (1n << 64n) - 1n : insn.addrSize === 4 ? 0xffffffffn : 0xffffn;
    // Our immediate-like operands in order: the constant 1 of shifts, then I operands (imm, imm2).
    const ours = formOperands(insn.form);
    const imm64 = BigInt.asUintN(64, (BigInt(insn.immHi) << 32n) | BigInt(insn.imm >>> 0));
    const ourImms: bigint[] = [];
    for (const o of ours) {
      if (o.kind === OpKind.One) ourImms.push(1n);
      else if (o.kind === OpKind.I)
        ourImms.push(ourImms.some((_, j) => ours[j]?.kind === OpKind.I) ? BigInt(insn.imm2) : imm64);
    }
    const moffs = ours.some((o) => o.kind === OpKind.O);
    let immIndex = 0;
    for (let k = 0; k < ins.opCount; k++) {
      const kind = IcedOpKind[ins.opKind(k)] as string;
      if (kind === "Memory" && moffs) {
        // moffs (A0-A3): the offset is the immediate, address-size wide.
        if ((ins.memoryDisplacement & asMask) !== (imm64 & asMask)) bad("moffs");
      } else if (kind === "Memory" && ins.mnemonic === Mnemonic.Xlatb) {
        // XLAT's [rBX+AL] is implicit in the opcode; nothing in Insn to compare.
      } else if (kind === "Memory") {
        if (!insn.isMem) {
          bad("memory operand");
          continue;
        }
        const base = (IcedRegister[ins.memoryBase] as string).toLowerCase();
        const index = (IcedRegister[ins.memoryIndex] as string).toLowerCase();
        if (base === "rip" || base === "eip") {
          if (!insn.ripRel) bad("rip-relative");
          const target = BigInt.asUintN(64, BigInt(ip + insn.length) + BigInt(insn.disp)) & asMask;
          if ((ins.memoryDisplacement & asMask) !== target) bad("rip target");
        } else {
          if ((base === "none" ? -1 : (GPR_NUM[base] ?? -2)) !== insn.base) bad("base");
          if (!index.startsWith("xmm") && !index.startsWith("ymm")) {
            if ((index === "none" ? -1 : (GPR_NUM[index] ?? -2)) !== insn.index) bad("index");
            if (index !== "none" && ins.memoryIndexScale !== 1 << insn.scale) bad("scale");
          }
          if ((ins.memoryDisplacement & asMask) !== (BigInt.asUintN(64, BigInt(insn.disp)) & asMask))
            bad("displacement");
        }
        const seg = (IcedRegister[ins.segmentPrefix] as string).toLowerCase();
        const ignored = mode === 64 && SEG_NUM[seg] !== undefined && SEG_NUM[seg]! < 4;
        if ((seg === "none" || ignored ? -1 : SEG_NUM[seg]) !== insn.seg) bad("segment");
      } else if (kind.startsWith("Immediate")) {
        const v = ins.immediate(k);
        const mine = ourImms[immIndex++] ?? -1n;
        const bits =
          kind.endsWith("to64") || kind === "Immediate64"
            ? 64
            : kind.endsWith("to32") || kind === "Immediate32"
              ? 32
              : kind.endsWith("to16") || kind === "Immediate16"
                ? 16
                : 8;
        if (BigInt.asUintN(bits, v) !== BigInt.asUintN(bits, mine)) bad(`immediate ${kind}`);
      } else if (kind.startsWith("NearBranch")) {
        const bits = kind === "NearBranch64" ? 64 : kind === "NearBranch32" ? 32 : 16;
        const t = BigInt.asUintN(bits, BigInt(ip + insn.length) + BigInt(insn.imm));
        if (BigInt.asUintN(bits, ins.nearBranchTarget) !== t) bad("branch target");
      }
    }
    ins.free();
  }
  return { compared, diffs };
}
