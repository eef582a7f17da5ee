#!/usr/bin/env node
// Table generator: turns the ISA records in data/*.txt into the decoder tables under
// src/generated/. Run `npm run gen -w @tskvm/cpu-x86` after editing a record; test/decoder-gen.test.ts
// re-runs it and fails on any difference with the committed output.
//
// Decoding walks, per (map, opcode) slot, a decision tree whose selectors follow the SDM's
// order of disambiguation: mode (i64/o64), mandatory prefix, VEX.L, ModRM.reg, ModRM.mod,
// ModRM.rm, REX.W/VEX.W, operand size, address size. Leaves are forms (one per record).

import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { ACCESS, ATTRS, FEATURES, KINDS, MAP_COUNT, parseRecords, SIZES } from "./isa.mjs";

export const SEL = {
  MODE: 1,
  MP: 2,
  REXB: 3,
  L: 4,
  REG: 5,
  MOD: 6,
  RM: 7,
  W: 8,
  OS: 9,
  OS_D64: 10,
  OS_F64: 11,
  AS: 12,
};
export const IMM = { none: 0, Ib: 1, Ibs: 2, Iw: 3, Iz: 4, Iv: 5, Id: 6, Jb: 7, Jz: 8, O: 9, Ap: 10 };
export const FA = {
  LOCK: 1 << 0,
  REP: 1 << 1,
  REPE: 1 << 2,
  D64: 1 << 3,
  F64: 1 << 4,
  MP66: 1 << 5, // 66 is a mandatory prefix of this form, not an operand-size override
  MPREP: 1 << 6, // F3/F2 is a mandatory prefix of this form
  MEM: 1 << 7,
  PLUSR: 1 << 8,
  MODREG: 1 << 9,
  VEX: 1 << 10,
  HLE: 1 << 12,
  BND: 1 << 13,
  I64: 1 << 14,
  O64: 1 << 15,
  VEXL0: 1 << 16, // VEX.L must be 0 (LZ/128-only)
  VVVV: 1 << 17, // an operand is VEX.vvvv; otherwise vvvv must be 1111b (SDM Vol. 2 2.3.6)
  SREG: 1 << 18, // ModRM.reg names a segment register: 6 and 7 are #UD
  SREG_DST: 1 << 19, // ... that is written: CS is #UD too (SDM Vol. 2 MOV)
  CREG: 1 << 20, // ModRM.reg names a control register: only CR0, CR2, CR3, CR4, CR8 exist
  DREG: 1 << 21, // ModRM.reg names a debug register: REX.R is #UD
  VSIB: 1 << 22, // VSIB memory operand: SIB required
};

function entryOf(rec, form, opcodeOffset, rmExact) {
  const e = rec.enc;
  let mode = "any";
  if (rec.attrs.has("i64")) mode = "non64";
  if (rec.attrs.has("o64")) mode = "64";
  let mod = "any";
  if (rec.memOnly) mod = "mem";
  if (rec.regOnly) mod = "reg";
  let reg = e.modrm === "digit" ? e.reg : -1;
  let rm = -1;
  if (e.modrm === "exact") {
    const b = e.modrmByte + rmExact;
    reg = (b >> 3) & 7;
    rm = b & 7;
  }
  return {
    rec,
    form,
    mode,
    mp: e.mp,
    rexb0: rec.attrs.has("rexb0"),
    L: e.vexL,
    reg,
    mod,
    rm,
    w: e.w,
    os: rec.os,
    as: rec.as,
    opcodeOffset,
  };
}

function specificity(x) {
  let s = 0;
  if (x.mode !== "any") s++;
  if (x.mp !== "none") s += 8; // an explicit mandatory prefix beats a form that ignores F2/F3/66
  if (x.rexb0) s++;
  if (x.L >= 0) s++;
  if (x.reg >= 0) s++;
  if (x.mod !== "any") s++;
  if (x.rm >= 0) s += 2;
  if (x.w >= 0) s++;
  if (x.os) s++;
  if (x.as) s++;
  return s;
}

const ORDER = ["MODE", "MP", "REXB", "L", "REG", "MOD", "RM", "W", "OS", "AS"];

const SPLITS = {
  MODE: {
    n: 2,
    used: (x) => x.mode !== "any",
    match: (x, b) => x.mode === "any" || x.mode === (b ? "64" : "non64"),
  },
  MP: {
    n: 4, // none, 66, F3, F2
    used: (x) => x.mp !== "none",
    match: (x, b) => x.mp === "none" || x.mp === ["NP", "66", "F3", "F2"][b] || (x.mp === "NF" && b < 2),
  },
  REXB: { n: 2, used: (x) => x.rexb0, match: (x, b) => !x.rexb0 || b === 0 },
  L: { n: 2, used: (x) => x.L >= 0, match: (x, b) => x.L < 0 || x.L === b },
  REG: { n: 8, used: (x) => x.reg >= 0, match: (x, b) => x.reg < 0 || x.reg === b },
  MOD: {
    n: 2,
    used: (x) => x.mod !== "any",
    match: (x, b) => x.mod === "any" || x.mod === (b ? "reg" : "mem"),
  },
  RM: { n: 8, used: (x) => x.rm >= 0, match: (x, b) => x.rm < 0 || x.rm === b },
  W: { n: 2, used: (x) => x.w >= 0, match: (x, b) => x.w < 0 || x.w === b },
  OS: {
    n: 3,
    used: (x) => x.os !== "",
    match: (x, b) => x.os === "" || x.os === ["os16", "os32", "os64"][b],
  },
  AS: {
    n: 3,
    used: (x) => x.as !== "",
    match: (x, b) => x.as === "" || x.as === ["as16", "as32", "as64"][b],
  },
};

/** Builds the decision tree for one slot; returns a node value (>= 0 form, < 0 ~index into tree). */
function buildNode(entries, depth, tree, slotName, path) {
  if (entries.length === 0) return 0;
  for (let d = depth; d < ORDER.length; d++) {
    const name = ORDER[d];
    const split = SPLITS[name];
    if (!entries.some(split.used)) continue;
    if (name === "RM" && entries.some((x) => x.rm >= 0 && x.mod !== "reg"))
      throw new Error(`${slotName}: exact ModRM without mod=11`);
    let sel = SEL[name];
    if (name === "OS") {
      const f64 = entries.filter((x) => x.rec.attrs.has("f64")).length;
      const d64 = entries.filter((x) => x.rec.attrs.has("d64")).length;
      if ((f64 && f64 !== entries.length) || (d64 && d64 !== entries.length))
        throw new Error(
          `${slotName}: operand-size variants disagree on d64/f64 (${entries.map((x) => x.rec.where).join(", ")})`,
        );
      if (f64) sel = SEL.OS_F64;
      else if (d64) sel = SEL.OS_D64;
    }
    const at = tree.length;
    tree.push(sel);
    for (let b = 0; b < split.n; b++) tree.push(0);
    for (let b = 0; b < split.n; b++) {
      const sub = entries.filter((x) => split.match(x, b));
      tree[at + 1 + b] = buildNode(sub, d + 1, tree, slotName, `${path} ${name}=${b}`);
    }
    return ~at;
  }
  // Leaf: the most specific entry wins; two equally specific entries are a bad record set.
  let best = -1;
  let winners = [];
  for (const x of entries) {
    const s = specificity(x);
    if (s > best) {
      best = s;
      winners = [x];
    } else if (s === best) winners.push(x);
  }
  const forms = new Set(winners.map((x) => x.form));
  if (forms.size > 1)
    throw new Error(
      `${slotName}${path}: ambiguous records ${winners.map((x) => `${x.rec.mn} (${x.rec.where})`).join(" and ")}`,
    );
  return winners[0].form;
}

/** The tables are read on every decode: 16-bit entries halve their cache footprint when they fit. */
function fits16(a) {
  return Array.from(a).every((v) => v >= -32768 && v <= 32767) ? "Int16Array" : "Int32Array";
}

function immKind(o) {
  if (o.kind === "I") return { b: "Ib", bs: "Ibs", w: "Iw", z: "Iz", v: "Iv", d: "Id" }[o.size];
  if (o.kind === "J") return o.size === "b" ? "Jb" : "Jz";
  if (o.kind === "O") return "O";
  return "Ap";
}

/**
 * Generates the tables from record texts.
 * @param {{file: string, text: string}[]} files
 * @returns {{ ops: string, tables: string }} the contents of src/generated/ops.ts and tables.ts
 */
export function generate(files) {
  const recs = files.flatMap((f) => parseRecords(f.text, f.file));
  const names = [...new Set(recs.map((r) => r.mn))].sort();
  const opId = new Map(names.map((n, i) => [n, i + 1]));
  const forms = [null];
  const slots = Array.from({ length: MAP_COUNT * 256 }, () => []);
  for (const rec of recs) {
    const form = forms.length;
    forms.push(rec);
    const e = rec.enc;
    const opcodes = e.plusR ? 8 : 1;
    for (let k = 0; k < opcodes; k++) {
      const slot = e.map * 256 + e.opcode + k;
      if (e.plusI) for (let i = 0; i < 8; i++) slots[slot].push(entryOf(rec, form, k, i));
      else slots[slot].push(entryOf(rec, form, k, 0));
    }
  }
  const tree = [0]; // index 0 unused so that ~0 is never a node
  const root = new Int32Array(MAP_COUNT * 256);
  const modrm = new Uint8Array(MAP_COUNT * 256);
  for (let s = 0; s < slots.length; s++) {
    const entries = slots[s];
    if (!entries.length) continue;
    const slotName = `map ${s >> 8} opcode ${(s & 255).toString(16).toUpperCase().padStart(2, "0")}`;
    const hasModrm = entries.map((x) => x.rec.enc.modrm !== "none");
    if (hasModrm.some((h) => h !== hasModrm[0]))
      throw new Error(
        `${slotName}: records disagree on whether a ModRM byte follows (${entries.map((x) => x.rec.where).join(", ")})`,
      );
    modrm[s] = hasModrm[0] ? 1 : 0;
    root[s] = buildNode(entries, 0, tree, slotName, "");
  }

  const nForms = forms.length;
  const formOp = new Uint16Array(nForms);
  const formAttr = new Uint32Array(nForms);
  const formOperands = new Uint32Array(nForms * 4);
  const formImm = new Uint8Array(nForms);
  const formFeature = new Uint8Array(nForms);
  const formFlagsR = new Uint16Array(nForms);
  const formFlagsW = new Uint16Array(nForms);
  const formFlagsU = new Uint16Array(nForms);
  const opUndef = new Uint16Array(names.length + 1);
  const opWritten = new Uint16Array(names.length + 1);
  const opRead = new Uint16Array(names.length + 1);
  for (let f = 1; f < nForms; f++) {
    const r = forms[f];
    const op = opId.get(r.mn);
    formOp[f] = op;
    let a = 0;
    const has = (x) => r.attrs.has(x);
    if (has("lock")) a |= FA.LOCK;
    if (has("rep")) a |= FA.REP;
    if (has("repe")) a |= FA.REPE;
    if (has("d64")) a |= FA.D64;
    if (has("f64")) a |= FA.F64;
    if (r.enc.mp === "66") a |= FA.MP66;
    if (r.enc.mp === "F3" || r.enc.mp === "F2") a |= FA.MPREP;
    if (r.memOnly) a |= FA.MEM;
    if (r.enc.plusR) a |= FA.PLUSR;
    if (has("modreg")) a |= FA.MODREG;
    if (r.enc.vex) a |= FA.VEX;
    if (has("hle")) a |= FA.HLE;
    if (has("bnd")) a |= FA.BND;
    if (has("i64")) a |= FA.I64;
    if (has("o64")) a |= FA.O64;
    if (has("vsib")) a |= FA.VSIB;
    if (r.enc.vex && r.enc.vexL === 0) a |= FA.VEXL0;
    if (r.operands.some((o) => o.kind === "B" || o.kind === "H")) a |= FA.VVVV;
    if (r.operands.some((o) => o.kind === "S")) a |= FA.SREG;
    if (r.operands.some((o) => o.kind === "S" && o.access.includes("w"))) a |= FA.SREG_DST;
    if (r.operands.some((o) => o.kind === "C")) a |= FA.CREG;
    if (r.operands.some((o) => o.kind === "D")) a |= FA.DREG;
    formAttr[f] = a;
    const imms = [];
    r.operands.forEach((o, i) => {
      formOperands[f * 4 + i] =
        KINDS.indexOf(o.kind) | (SIZES.indexOf(o.size) << 8) | (ACCESS[o.access] << 16) | (o.reg << 20);
      if (["I", "J", "O", "A"].includes(o.kind)) imms.push(IMM[immKind(o)]);
    });
    if (imms[1] !== undefined && imms[1] !== IMM.Ib)
      throw new Error(`${r.where}: a second immediate must be Ib`);
    formImm[f] = (imms[0] ?? 0) | ((imms[1] ?? 0) << 4);
    formFeature[f] = FEATURES.indexOf(r.feature);
    formFlagsR[f] = r.flags.r;
    formFlagsW[f] = r.flags.w;
    formFlagsU[f] = r.flags.u;
    opUndef[op] |= r.flags.u;
    opWritten[op] |= r.flags.w;
    opRead[op] |= r.flags.r;
  }

  const header =
    "// DO NOT EDIT: generated by tools/gen.mjs from data/*.txt (`npm run gen`). test/decoder-gen.test.ts checks it.\n";
  const arr = (name, type, a, doc) =>
    `/** ${doc} */\nexport const ${name} = new ${type}([${Array.from(a).join(",")}]);\n`;
  const ops =
    `${header}\n/** Operation ids, one per mnemonic (SDM names; conditional families by condition: JB, SETNE, CMOVGE...). 0 = invalid. */\n` +
    `export const Op = {\n  INVALID: 0,\n${names.map((n) => `  ${n}: ${opId.get(n)},`).join("\n")}\n} as const;\n` +
    "export type Op = (typeof Op)[keyof typeof Op];\n\n" +
    `/** Lower-case mnemonic per Op id (Intel syntax). */\nexport const OP_NAMES: readonly string[] = ${JSON.stringify(["(bad)", ...names.map((n) => n.toLowerCase())])};\n\n` +
    `/** Number of Op ids, INVALID included. */\nexport const OP_COUNT = ${names.length + 1};\n\n` +
    arr(
      "OP_FLAGS_UNDEFINED",
      "Uint16Array",
      opUndef,
      'RFLAGS bits any form of the op leaves undefined (SDM: "undefined"); difftests mask these.',
    ) +
    arr("OP_FLAGS_WRITTEN", "Uint16Array", opWritten, "RFLAGS bits any form of the op writes.") +
    arr("OP_FLAGS_READ", "Uint16Array", opRead, "RFLAGS bits any form of the op reads.") +
    `\n/** CPUID features named by records. */\nexport const Feature = {\n${FEATURES.map((f, i) => `  ${/^\d/.test(f) ? `F${f}` : f}: ${i},`).join("\n")}\n} as const;\nexport type Feature = (typeof Feature)[keyof typeof Feature];\n` +
    `\n/** Operand kinds (SDM Vol. 2 App. A.2.1 addressing methods, plus fixed operands). */\nexport const OpKind = {\n${KINDS.map((k, i) => `  ${k}: ${i},`).join("\n")}\n} as const;\nexport type OpKind = (typeof OpKind)[keyof typeof OpKind];\n` +
    `\n/** Operand size codes (SDM Vol. 2 App. A.2.2). */\nexport const OpSize = {\n${SIZES.map((k, i) => `  ${k}: ${i},`).join("\n")}\n} as const;\nexport type OpSize = (typeof OpSize)[keyof typeof OpSize];\n` +
    `\n/** Record attributes as documented in tools/isa.mjs. */\nexport const ATTR_DOC: Readonly<Record<string, string>> = ${JSON.stringify(ATTRS, null, 2)};\n`;
  const tables =
    `${header}\n` +
    `export const FORM_COUNT = ${nForms};\n` +
    arr("FORM_OP", "Uint16Array", formOp, "Op id per form.") +
    arr("FORM_ATTR", "Uint32Array", formAttr, "FA_* attribute bits per form.") +
    arr(
      "FORM_OPERANDS",
      "Uint32Array",
      formOperands,
      "Four operand specs per form: kind | size << 8 | access << 16 | fixed register << 20.",
    ) +
    arr("FORM_IMM", "Uint8Array", formImm, "First immediate kind | second << 4 (IMM_* codes).") +
    arr("FORM_FEATURE", "Uint8Array", formFeature, "CPUID Feature per form.") +
    arr("FORM_FLAGS_READ", "Uint16Array", formFlagsR, "RFLAGS read per form.") +
    arr(
      "FORM_FLAGS_WRITTEN",
      "Uint16Array",
      formFlagsW,
      "RFLAGS written per form (undefined, cleared and set included).",
    ) +
    arr("FORM_FLAGS_UNDEFINED", "Uint16Array", formFlagsU, "RFLAGS left undefined per form.") +
    `/** Record location per form (for messages and tests). */\nexport const FORM_WHERE: readonly string[] = ${JSON.stringify(["", ...forms.slice(1).map((r) => r.where)])};\n` +
    arr(
      "SLOT_MODRM",
      "Uint8Array",
      modrm,
      "1 when a ModRM byte follows the opcode; index map * 256 + opcode.",
    ) +
    arr(
      "SLOT_ROOT",
      fits16(root),
      root,
      "Decision-tree root per slot: >= 0 a form, < 0 ~node index in TREE.",
    ) +
    arr("TREE", fits16(tree), tree, "Decision-tree nodes: selector, then one child per branch.") +
    `export const SEL = ${JSON.stringify(SEL)} as const;\n` +
    `export const IMM = ${JSON.stringify(IMM)} as const;\n` +
    `export const FA = ${JSON.stringify(FA)} as const;\n`;
  return { ops, tables };
}

export const pkgDir = join(dirname(fileURLToPath(import.meta.url)), "..");

/** Reads data/*.txt in name order. */
export function readData(dir = join(pkgDir, "data")) {
  return readdirSync(dir)
    .filter((f) => f.endsWith(".txt"))
    .sort()
    .map((f) => ({ file: `data/${f}`, text: readFileSync(join(dir, f), "utf8") }));
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const { ops, tables } = generate(readData());
  writeFileSync(join(pkgDir, "src/generated/ops.ts"), ops);
  writeFileSync(join(pkgDir, "src/generated/tables.ts"), tables);
  console.log("wrote src/generated/ops.ts, src/generated/tables.ts");
}
