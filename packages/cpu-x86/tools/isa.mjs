// Parser and validator for the ISA records in data/*.txt: one line per encoding, readable like
// the SDM's instruction summary tables (Vol. 2, ch. 3.1 and Appendix A.2 for the operand codes).
//
//   MNEMONIC | encoding            | operands        | flags             | cpuid | attrs
//   ADD      | 00 /r               | Eb:rw Gb        | w:oszapc          | 8086  | lock
//   CMPXCHG16B | W1 0F C7 /1       | Mdq:rw          | w:z               | CX16  | lock
//   ANDN     | VEX.LZ.NP.0F38.W0 F2 /r | Gy:w By Ey  | w:szoc u:ap       | BMI1  |
//
// A bad record is an error naming its file and line; nothing is guessed.

/** Operand addressing methods (SDM Vol. 2 App. A.2.1) and fixed operands; the numbers are the generated OpKind. */
export const KINDS = [
  "None",
  "E", // ModRM.rm: general register or memory
  "G", // ModRM.reg: general register
  "M", // ModRM.rm: memory only
  "R", // ModRM.rm: general register only
  "I", // immediate
  "J", // relative branch offset
  "O", // moffs: absolute offset, address-size wide, no ModRM
  "A", // far pointer ptr16:16/32
  "S", // ModRM.reg: segment register
  "C", // ModRM.reg: control register
  "D", // ModRM.reg: debug register
  "V", // ModRM.reg: XMM register
  "W", // ModRM.rm: XMM register or memory
  "U", // ModRM.rm: XMM register only
  "P", // ModRM.reg: MMX register
  "Q", // ModRM.rm: MMX register or memory
  "N", // ModRM.rm: MMX register only
  "B", // VEX.vvvv: general register
  "H", // VEX.vvvv: XMM/YMM register
  "X", // string source DS:rSI
  "Y", // string destination ES:rDI
  "Z", // low three opcode bits (+r): general register
  "STi", // ModRM.rm: x87 ST(i)
  "ST", // x87 ST(0)
  "Reg", // a fixed general register (size and number in the operand)
  "Seg", // a fixed segment register
  "One", // the constant 1 (shift by one)
  "Xmm0", // implicit XMM0 (SSE4.1 BLENDV*)
];

/** Operand size codes (SDM Vol. 2 App. A.2.2); bytes, or 0 when it depends on the instruction. */
export const SIZES = [
  "none",
  "b", // byte
  "w", // word
  "d", // dword
  "q", // qword
  "dq", // 16 bytes
  "qq", // 32 bytes
  "v", // word, dword or qword by operand size
  "z", // word for 16-bit operand size, else dword
  "y", // dword, or qword with 64-bit operand size
  "x", // dq or qq by VEX.L
  "p", // far pointer: 16:16, 16:32 or 16:64 by operand size
  "s", // descriptor-table pseudo-descriptor: 6 bytes, 10 in 64-bit mode
  "a", // BOUND: two words or two dwords
  "t", // 80-bit (x87 extended real, packed BCD)
  "bs", // byte immediate sign-extended to the operand size
  "f64", // 64 bits in 64-bit mode, else 32 (CR/DR moves, VMX register operands)
];
const SIZE_ALIAS = { ps: "dq", pd: "dq", ss: "d", sd: "q", pi: "q", sx: "x" };

export const ACCESS = { r: 1, w: 2, rw: 3, n: 0 };

/** Fixed-register operands: name -> [kind, size, register number]. */
const FIXED = {
  AL: ["Reg", "b", 0],
  CL: ["Reg", "b", 1],
  AX: ["Reg", "w", 0],
  DX: ["Reg", "w", 2],
  EAX: ["Reg", "d", 0],
  ECX: ["Reg", "d", 1],
  EDX: ["Reg", "d", 2],
  RAX: ["Reg", "q", 0],
  eAX: ["Reg", "z", 0],
  rAX: ["Reg", "v", 0],
  rCX: ["Reg", "v", 1],
  rDX: ["Reg", "v", 2],
  rBX: ["Reg", "v", 3],
  ES: ["Seg", "w", 0],
  CS: ["Seg", "w", 1],
  SS: ["Seg", "w", 2],
  DS: ["Seg", "w", 3],
  FS: ["Seg", "w", 4],
  GS: ["Seg", "w", 5],
  ST: ["ST", "t", 0],
  1: ["One", "b", 0],
  XMM0: ["Xmm0", "dq", 0],
};

/** RFLAGS bits (SDM Vol. 1 3.4.3). */
export const FLAG_BITS = {
  c: 1 << 0,
  p: 1 << 2,
  a: 1 << 4,
  z: 1 << 6,
  s: 1 << 7,
  t: 1 << 8,
  i: 1 << 9,
  d: 1 << 10,
  o: 1 << 11,
};

/** CPUID features a record may name; the index is the generated Feature id. */
export const FEATURES = [
  "8086",
  "186",
  "286",
  "386",
  "486",
  "586",
  "686",
  "LM",
  "CMOV",
  "CX8",
  "CX16",
  "X87",
  "FXSR",
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
  "MONITOR",
  "VMX",
  "INVPCID",
  "SMAP",
  "FSGSBASE",
  "RDPID",
  "CLFSH",
  "CLFLUSHOPT",
  "CLWB",
  "PREFETCHW",
  "RTM",
  "SMX",
  "PKU",
  "SERIALIZE",
  "AVX",
  "AVX2",
  "FMA",
  "F16C",
  "AES",
  "PCLMULQDQ",
  "MSR",
  "TSC",
  "CPUID",
  "PAUSE",
];

/** Attributes (SDM superscripts and lock/rep legality). */
export const ATTRS = {
  lock: "LOCK allowed with a memory destination (SDM Vol. 3A 9.1.2.2)",
  rep: "F3 is REP (string instructions)",
  repe: "F3/F2 are REPE/REPNE (CMPS, SCAS)",
  i64: "invalid in 64-bit mode",
  o64: "valid only in 64-bit mode",
  d64: "operand size defaults to 64 bits in 64-bit mode",
  f64: "operand size is 64 bits in 64-bit mode whatever the prefixes (Intel: near branches ignore 66)",
  os16: "only with 16-bit operand size",
  os32: "only with 32-bit operand size",
  os64: "only with 64-bit operand size",
  as16: "only with 16-bit address size",
  as32: "only with 32-bit address size",
  as64: "only with 64-bit address size",
  mem: "ModRM.mod must not be 11",
  reg: "ModRM.mod must be 11",
  modreg: "ModRM.mod is ignored and treated as 11 (MOV to/from CR/DR, SDM Vol. 2 MOV-CR)",
  hle: "XACQUIRE/XRELEASE allowed",
  bnd: "F2 is a BND prefix on branches",
  vsib: "VSIB memory operand: a SIB byte is required (SDM Vol. 2 2.3.12)",
  rexb0: "only without REX.B (90 is NOP/PAUSE; with REX.B it is XCHG r8, rAX)",
};

const MAPS = { "": 0, "0F": 1, "0F38": 2, "0F3A": 3 };
export const MAP_COUNT = 7; // 0..3 legacy maps, 4..6 VEX maps 0F, 0F38, 0F3A
// NP: no 66/F2/F3; NF: no F2/F3 (66 stays the operand-size prefix, SDM Vol. 2 3.1.1.1 "NFx").
const MP = { none: 0, NP: 1, NF: 5, 66: 2, F3: 3, F2: 4 };

function fail(where, msg) {
  throw new Error(`${where}: ${msg}`);
}

function parseHex(tok) {
  return /^[0-9A-F]{2}$/.test(tok) ? Number.parseInt(tok, 16) : -1;
}

/**
 * Parses one operand token ("Ev:rw", "AL", "Ibs", "STi:w").
 * @returns {{kind: string, size: string, reg: number, access: string, text: string}}
 */
export function parseOperand(tok, where) {
  const [spec, acc = "r", ...rest] = tok.split(":");
  if (rest.length) fail(where, `operand "${tok}": too many ':'`);
  if (!(acc in ACCESS)) fail(where, `operand "${tok}": access must be r, w, rw or n`);
  const fixed = FIXED[spec];
  if (fixed) return { kind: fixed[0], size: fixed[1], reg: fixed[2], access: acc, text: spec };
  if (spec === "STi") return { kind: "STi", size: "t", reg: 0, access: acc, text: spec };
  const m = /^([EGMRIJOASCDVWUPQNBHXYZ])([a-z0-9]*)$/.exec(spec ?? "");
  if (!m) fail(where, `operand "${tok}": unknown operand`);
  const kind = m[1];
  let size = m[2] || "none";
  size = SIZE_ALIAS[size] ?? size;
  if (!SIZES.includes(size)) fail(where, `operand "${tok}": unknown size "${m[2]}"`);
  if (size === "none" && kind !== "M") fail(where, `operand "${tok}": only M may have no size`);
  if (size === "bs" && kind !== "I") fail(where, `operand "${tok}": "bs" is for sign-extended Ib only`);
  if (kind === "I" && !["b", "bs", "w", "z", "v", "d"].includes(size))
    fail(where, `operand "${tok}": bad immediate size`);
  if (kind === "J" && !["b", "z"].includes(size)) fail(where, `operand "${tok}": J is Jb or Jz`);
  if (kind === "A" && size !== "p") fail(where, `operand "${tok}": far pointer is Ap`);
  return { kind, size, reg: 0, access: acc, text: spec };
}

/**
 * Parses the encoding column: [W0|W1] [NP|NF|66|F2|F3] [0F [38|3A]] opcode [ /r | /0../7 | +r | modrm byte | +i ]
 * or VEX.{128,256,L0,L1,LZ,LIG}.{NP,66,F3,F2}.{0F,0F38,0F3A}.{W0,W1,WIG} opcode /r...
 */
export function parseEncoding(text, where) {
  const toks = text.trim().split(/\s+/);
  const e = {
    map: 0,
    mp: "none",
    opcode: -1,
    modrm: "none",
    reg: -1,
    modrmByte: -1,
    plusR: false,
    plusI: false,
    w: -1,
    vex: false,
    vexL: -1,
  };
  let i = 0;
  const t0 = toks[0] ?? "";
  if (t0.startsWith("VEX.")) {
    e.vex = true;
    const parts = t0.split(".").slice(1);
    for (const p of parts) {
      if (p === "128" || p === "L0" || p === "LZ") e.vexL = 0;
      else if (p === "256" || p === "L1") e.vexL = 1;
      else if (p === "LIG") e.vexL = -1;
      else if (p === "NP" || p === "66" || p === "F3" || p === "F2") e.mp = p;
      else if (p === "0F" || p === "0F38" || p === "0F3A") e.map = MAPS[p] + 3;
      else if (p === "W0") e.w = 0;
      else if (p === "W1") e.w = 1;
      else if (p === "WIG") e.w = -1;
      else fail(where, `bad VEX field "${p}"`);
    }
    if (e.map < 4) fail(where, "VEX encoding without a map (0F, 0F38, 0F3A)");
    if (e.mp === "none") e.mp = "NP";
    i = 1;
  } else {
    if (toks[i] === "W0" || toks[i] === "W1") e.w = toks[i++] === "W1" ? 1 : 0;
    if (["NP", "NF", "66", "F3", "F2"].includes(toks[i] ?? "")) e.mp = toks[i++];
    if (toks[i] === "0F") {
      i++;
      if (toks[i] === "38" || toks[i] === "3A") {
        e.map = toks[i] === "38" ? 2 : 3;
        i++;
      } else e.map = 1;
    }
  }
  const op = toks[i++] ?? "";
  const mr = /^([0-9A-F]{2})\+r$/.exec(op);
  if (mr) {
    e.opcode = Number.parseInt(mr[1], 16);
    e.plusR = true;
    if (e.opcode & 7) fail(where, `"${op}": +r needs an opcode with low bits 000`);
  } else {
    e.opcode = parseHex(op);
    if (e.opcode < 0) fail(where, `bad opcode byte "${op}"`);
  }
  const m = toks[i++];
  if (m !== undefined) {
    if (m === "/r") e.modrm = "r";
    else if (/^\/[0-7]$/.test(m)) {
      e.modrm = "digit";
      e.reg = Number(m[1]);
    } else if (/^[0-9A-F]{2}\+i$/.test(m)) {
      e.modrm = "exact";
      e.modrmByte = Number.parseInt(m.slice(0, 2), 16);
      e.plusI = true;
      if ((e.modrmByte & 0xc7) !== 0xc0) fail(where, `"${m}": +i needs a ModRM byte 11 reg 000`);
    } else if (parseHex(m) >= 0) {
      e.modrm = "exact";
      e.modrmByte = parseHex(m);
      if (e.modrmByte < 0xc0) fail(where, `ModRM byte "${m}" must have mod=11`);
    } else fail(where, `bad ModRM spec "${m}"`);
  }
  if (i < toks.length) fail(where, `trailing encoding tokens "${toks.slice(i).join(" ")}"`);
  if (e.plusR && e.modrm !== "none") fail(where, "+r with a ModRM byte");
  return e;
}

function parseFlags(text, where) {
  const f = { r: 0, w: 0, u: 0, c0: 0, c1: 0 };
  for (const tok of text.trim().split(/\s+/).filter(Boolean)) {
    const m = /^(r|w|u|0|1):([a-z]+)$/.exec(tok);
    if (!m) fail(where, `bad flags "${tok}" (want r:, w:, u:, 0: or 1: then letters from oszapcdit)`);
    let bits = 0;
    for (const ch of m[2]) {
      if (!(ch in FLAG_BITS)) fail(where, `bad flag letter "${ch}" in "${tok}"`);
      bits |= FLAG_BITS[ch];
    }
    if (m[1] === "r") f.r |= bits;
    else if (m[1] === "w") f.w |= bits;
    else if (m[1] === "u") f.u |= bits;
    else if (m[1] === "0") f.c0 |= bits;
    else f.c1 |= bits;
  }
  // Cleared, set and undefined flags are all written.
  f.w |= f.u | f.c0 | f.c1;
  return f;
}

const MODRM_KINDS = new Set(["E", "G", "M", "R", "S", "C", "D", "V", "W", "U", "P", "Q", "N", "STi"]);

/**
 * Parses every record of one data file.
 * @param {string} text file contents
 * @param {string} file name for messages
 */
export function parseRecords(text, file) {
  const out = [];
  const lines = text.split("\n");
  for (let n = 0; n < lines.length; n++) {
    const raw = lines[n] ?? "";
    const line = raw.replace(/#.*/, "").trimEnd();
    if (!line.trim()) continue;
    const where = `${file}:${n + 1}`;
    const cols = line.split("|").map((c) => c.trim());
    if (cols.length < 2 || cols.length > 6)
      fail(where, "want 2 to 6 columns: mnemonic | encoding | operands | flags | cpuid | attrs");
    const [mn = "", enc = "", ops = "", flags = "", cpuid = "", attrs = ""] = cols;
    if (!/^[A-Z][A-Z0-9_]*$/.test(mn)) fail(where, `bad mnemonic "${mn}"`);
    const e = parseEncoding(enc, where);
    const operands = ops ? ops.split(/\s+/).map((t) => parseOperand(t, where)) : [];
    if (operands.length > 4) fail(where, "at most 4 operands");
    const attrSet = new Set(attrs ? attrs.split(/\s+/) : []);
    for (const a of attrSet) if (!(a in ATTRS)) fail(where, `unknown attribute "${a}"`);
    const feature = cpuid || "8086";
    if (!FEATURES.includes(feature)) fail(where, `unknown cpuid feature "${feature}"`);
    const needsModrm = operands.some((o) => MODRM_KINDS.has(o.kind));
    if (needsModrm && e.modrm === "none")
      fail(where, "operands use ModRM but the encoding has no /r or /digit");
    if (e.modrm === "digit" && operands.some((o) => ["G", "S", "C", "D", "V", "P"].includes(o.kind)))
      fail(where, "/digit and an operand in ModRM.reg");
    if (operands.some((o) => o.kind === "Z") !== e.plusR)
      fail(where, "+r opcodes take exactly one Z operand");
    if (operands.some((o) => o.kind === "B" || o.kind === "H") && !e.vex)
      fail(where, "B/H operands need a VEX encoding");
    const imms = operands.filter((o) => ["I", "J", "O", "A"].includes(o.kind));
    if (imms.length > 2) fail(where, "at most two immediates");
    if (imms.length === 2 && !(imms[0].kind === "I" && imms[1].kind === "I"))
      fail(where, "two immediates must both be I");
    const memOnly = operands.some((o) => o.kind === "M") || attrSet.has("mem");
    const regOnly =
      !attrSet.has("modreg") &&
      (operands.some((o) => ["R", "U", "N"].includes(o.kind)) || attrSet.has("reg") || e.modrm === "exact");
    if (memOnly && regOnly) fail(where, "operands/attributes require both memory and register ModRM");
    if (attrSet.has("i64") && attrSet.has("o64")) fail(where, "i64 and o64 together");
    const os = ["os16", "os32", "os64"].filter((a) => attrSet.has(a));
    const as = ["as16", "as32", "as64"].filter((a) => attrSet.has(a));
    if (os.length > 1 || as.length > 1) fail(where, "at most one osNN and one asNN");
    out.push({
      mn,
      enc: e,
      operands,
      flags: parseFlags(flags, where),
      feature,
      attrs: attrSet,
      memOnly,
      regOnly,
      where,
      os: os[0] ?? "",
      as: as[0] ?? "",
    });
  }
  return out;
}

export { MAPS, MP };
