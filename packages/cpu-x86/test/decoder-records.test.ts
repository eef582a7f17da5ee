// Every record decodes: for each form, an encoding is built from its record (prefixes, map,
// opcode, ModRM, a zeroed tail for immediates), decoded, and must give back that form. Where
// iced-x86 knows the instruction, its length and mnemonic must agree too.
import { CpuidFeature, Decoder, DecoderOptions, Mnemonic } from "iced-x86";
import { describe, expect, it } from "vitest";
import { DecodeStatus, decode, FORM_COUNT, FORM_WHERE, Insn, OP_NAMES } from "../src/index.js";
// @ts-expect-error: plain-JS generator without type declarations
import { readData } from "../tools/gen.mjs";
// @ts-expect-error: plain-JS record parser without type declarations
import { parseRecords } from "../tools/isa.mjs";
import { ALIASES, IN_SCOPE } from "./decoder-iced.js";

interface Rec {
  mn: string;
  where: string;
  attrs: Set<string>;
  os: string;
  as: string;
  memOnly: boolean;
  regOnly: boolean;
  enc: {
    map: number;
    mp: string;
    opcode: number;
    plusR: boolean;
    modrm: string;
    reg: number;
    modrmByte: number;
    w: number;
    vex: boolean;
    vexL: number;
  };
}

const recs: Rec[] = (readData() as { file: string; text: string }[]).flatMap((f) =>
  parseRecords(f.text, f.file),
);

/** An encoding of `r` with ModRM.reg = `regPick` for /r forms, and the mode to decode it in. */
function encode(r: Rec, regPick: number): { mode: 32 | 64; bytes: number[] } {
  const e = r.enc;
  let mode: 32 | 64 = r.attrs.has("i64") ? 32 : 64;
  if (r.os === "os32" && (r.attrs.has("d64") || r.attrs.has("f64"))) mode = 32;
  if (r.as === "as16") mode = 32;
  const b: number[] = [];
  if (r.as === "as16" || (r.as === "as32" && mode === 64)) b.push(0x67);
  if (r.os === "os16") b.push(0x66);
  const pp = { none: 0, NP: 0, NF: 0, "66": 1, F3: 2, F2: 3 }[e.mp] ?? 0;
  if (!e.vex) {
    if (e.mp === "66") b.push(0x66);
    if (e.mp === "F3") b.push(0xf3);
    if (e.mp === "F2") b.push(0xf2);
    let rex = 0;
    if (e.w === 1 || r.os === "os64") rex |= 0x48;
    if (rex) b.push(rex);
    if (e.map >= 1) b.push(0x0f);
    if (e.map === 2) b.push(0x38);
    if (e.map === 3) b.push(0x3a);
  } else {
    const w = e.w === 1 ? 1 : 0;
    const vexL = e.vexL === 1 ? 1 : 0;
    b.push(0xc4, 0xe0 | (e.map - 3), (w << 7) | (0xf << 3) | (vexL << 2) | pp);
  }
  // +r: register 1, so that 90+r is XCHG and not NOP.
  b.push(e.plusR ? e.opcode + 1 : e.opcode);
  if (e.modrm === "exact") b.push(e.modrmByte);
  else if (e.modrm !== "none") {
    const reg = e.modrm === "digit" ? e.reg : regPick;
    if (r.regOnly) b.push(0xc0 | (reg << 3));
    else if (r.attrs.has("vsib")) b.push(0x04 | (reg << 3), 0x00);
    else b.push(reg << 3);
  }
  b.push(0, 0, 0, 0, 0, 0, 0, 0);
  return { mode, bytes: b };
}

describe("every record decodes to its own form", () => {
  it(`covers all ${FORM_COUNT - 1} forms`, () => expect(recs.length).toBe(FORM_COUNT - 1));
  const insn = new Insn();
  recs.forEach((r, i) => {
    const form = i + 1;
    it(`${FORM_WHERE[form]} ${r.mn}`, () => {
      // /r forms: ModRM.reg 2 first (a valid CR, DR and writable segment register), then the
      // others, for records that share a slot with /digit forms (0F 18 /r vs PREFETCHh /0-/3).
      let enc = encode(r, 2);
      for (const pick of [2, 5, 6, 7, 0, 3, 4]) {
        enc = encode(r, pick);
        if (decode(Uint8Array.from(enc.bytes), 0, enc.mode, insn) === DecodeStatus.Ok && insn.form === form)
          break;
      }
      const { mode, bytes } = enc;
      const buf = Uint8Array.from(bytes);
      expect(decode(buf, 0, mode, insn)).toBe(DecodeStatus.Ok);
      expect(insn.form).toBe(form);
      expect(OP_NAMES[insn.op]).toBe(r.mn.toLowerCase());
      const d = new Decoder(mode, buf, DecoderOptions.None);
      const ins = d.decode();
      if (
        !ins.isInvalid &&
        Array.from(ins.cpuidFeatures()).every((f) => IN_SCOPE.has(CpuidFeature[f] as string))
      ) {
        const mn = (Mnemonic[ins.mnemonic] as string).toLowerCase();
        expect(ALIASES[mn] ?? mn).toBe(OP_NAMES[insn.op]);
        expect(insn.length).toBe(ins.length);
      }
      ins.free();
      d.free();
    });
  });
});
