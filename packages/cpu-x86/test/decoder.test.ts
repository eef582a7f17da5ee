import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { DecodeStatus, decode, formatIntel, Insn, Op, Prefix } from "../src/index.js";

const dir = join(import.meta.dirname, "fixtures/decoder");

export function parseHex(s: string): Uint8Array {
  const clean = s.replace(/\s+/g, "");
  return Uint8Array.from(clean.match(/../g) ?? [], (h) => Number.parseInt(h, 16));
}

describe("decoder vectors (test/fixtures/decoder/*.txt)", () => {
  for (const file of readdirSync(dir).filter((f) => f.endsWith(".txt"))) {
    const lines = readFileSync(join(dir, file), "utf8").split("\n");
    lines.forEach((raw, n) => {
      const line = raw.replace(/#.*/, "").trim();
      if (!line) return;
      const [mode, hex, len, text] = line.split("|").map((c) => c.trim());
      it(`${file}:${n + 1} ${mode}-bit ${hex} -> ${text}`, () => {
        const insn = new Insn();
        const status = decode(parseHex(hex!), 0, Number(mode) as 16 | 32 | 64, insn);
        if (text === "truncated") {
          expect(status).toBe(DecodeStatus.Truncated);
          return;
        }
        expect(formatIntel(insn, 0x1000)).toBe(text);
        if (text === "(bad)") expect(status).not.toBe(DecodeStatus.Ok);
        else {
          expect(status).toBe(DecodeStatus.Ok);
          expect(insn.length).toBe(Number(len));
        }
      });
    });
  }
});

describe("decoder rules", () => {
  const insn = new Insn();
  it("SDM 2.2.1: a REX followed by a legacy prefix is ignored", () => {
    decode(parseHex("48 66 01 c0"), 0, 64, insn);
    expect(insn.opSize).toBe(2);
    expect(insn.rex).toBe(0);
  });
  it("SDM 2.1.1: the last segment override wins", () => {
    decode(parseHex("2e 3e 64 65 8b 00"), 0, 32, insn);
    expect(insn.seg).toBe(5);
  });
  it("SDM 2.3.11: 15 bytes is the limit", () => {
    expect(decode(parseHex(`${"26".repeat(14)}90`), 0, 32, insn)).toBe(DecodeStatus.Ok);
    expect(decode(parseHex(`${"26".repeat(15)}90`), 0, 32, insn)).toBe(DecodeStatus.TooLong);
    expect(decode(parseHex("26".repeat(14)), 0, 32, insn)).toBe(DecodeStatus.Truncated);
  });
  it("decodes at an offset and reports the mode-dependent Op", () => {
    const bytes = parseHex("90 90 48 01 d8");
    expect(decode(bytes, 2, 64, insn)).toBe(DecodeStatus.Ok);
    expect(insn.op).toBe(Op.ADD);
    expect(insn.length).toBe(3);
    expect(insn.reg).toBe(3);
    expect(insn.rm).toBe(0);
  });
  it("reports immediates as sign-extended 32-bit halves", () => {
    decode(parseHex("48 83 c0 80"), 0, 64, insn);
    expect(insn.imm).toBe(-128);
    expect(insn.immHi).toBe(-1);
    decode(parseHex("48 b8 88 77 66 55 44 33 22 11"), 0, 64, insn);
    expect(insn.imm >>> 0).toBe(0x55667788);
    expect(insn.immHi >>> 0).toBe(0x11223344);
  });
  it("an offset outside the buffer is Truncated, not a throw", () => {
    expect(decode(new Uint8Array(2), 5, 64, insn)).toBe(DecodeStatus.Truncated);
    expect(decode(new Uint8Array(2), -1, 64, insn)).toBe(DecodeStatus.Truncated);
  });
});

describe("decode.ts inlined constants", () => {
  it("match the generated tables and insn.ts", async () => {
    const gen = await import("../src/generated/tables.js");
    const dec = (await import("../src/decoder/decode.js")) as unknown as Record<string, object>;
    const insnMod = await import("../src/decoder/insn.js");
    // const enums compile to objects when imported from another module, so they can be compared.
    const asObj = (e: object) =>
      Object.fromEntries(Object.entries(e).filter(([k]) => Number.isNaN(Number(k))));
    expect(asObj(dec.Sel!)).toEqual(gen.SEL);
    expect({ none: 0, ...asObj(dec.Imm!) }).toEqual(gen.IMM);
    expect(asObj(dec.Fa!)).toEqual(gen.FA);
    expect(asObj(dec.Pf!)).toEqual(insnMod.Prefix);
    expect(asObj(dec.St!)).toEqual(insnMod.DecodeStatus);
  });
});

describe("prefix bookkeeping", () => {
  const insn = new Insn();
  it("F3 consumed as a mandatory prefix is not REP; on a string instruction it is", () => {
    decode(parseHex("f3 0f 58 c1"), 0, 64, insn); // addss
    expect(insn.prefixes & Prefix.REP).toBe(0);
    expect(insn.mandatory).toBe(2);
    decode(parseHex("f3 a4"), 0, 64, insn); // rep movsb
    expect(insn.prefixes & Prefix.REP).toBe(Prefix.REP);
    expect(insn.mandatory).toBe(0);
  });
  it("66 consumed as a mandatory prefix still shows as OPSIZE but does not shrink the operand size", () => {
    decode(parseHex("66 48 0f 7e c0"), 0, 64, insn); // movq rax, xmm0
    expect(insn.prefixes & Prefix.OPSIZE).toBe(Prefix.OPSIZE);
    expect(insn.mandatory).toBe(1);
    expect(insn.opSize).toBe(8);
  });
  it("64-bit mode: DS/ES/CS/SS overrides are ignored, FS/GS are kept", () => {
    decode(parseHex("64 3e 8b 00"), 0, 64, insn);
    expect(insn.seg).toBe(4);
    decode(parseHex("3e 8b 00"), 0, 64, insn);
    expect(insn.seg).toBe(-1);
    expect(insn.prefixes & Prefix.SEG).toBe(0);
    decode(parseHex("3e 8b 00"), 0, 32, insn);
    expect(insn.seg).toBe(3);
  });
});
