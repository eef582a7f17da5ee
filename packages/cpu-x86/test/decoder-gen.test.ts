import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
// @ts-expect-error: plain-JS generator without type declarations
import { generate, pkgDir, readData } from "../tools/gen.mjs";

type Gen = (files: { file: string; text: string }[]) => { ops: string; tables: string };
const gen = generate as Gen;

describe("table generator", () => {
  it("the committed src/generated matches a fresh run over data/*.txt", () => {
    const { ops, tables } = gen(readData());
    expect(readFileSync(join(pkgDir as string, "src/generated/ops.ts"), "utf8")).toBe(ops);
    expect(readFileSync(join(pkgDir as string, "src/generated/tables.ts"), "utf8")).toBe(tables);
  });

  const bad: [string, string, RegExp][] = [
    ["unknown operand", "ADD | 00 /r | Kb:rw Gb", /unknown operand/],
    ["unknown size", "ADD | 00 /r | Eq7 Gb", /unknown size/],
    ["bad access", "ADD | 00 /r | Eb:x Gb", /access must be/],
    ["ModRM operand without /r", "ADD | 00 | Eb Gb", /no \/r or \/digit/],
    ["/digit with a reg operand", "ADD | 00 /3 | Eb Gb", /\/digit and an operand/],
    ["bad opcode byte", "ADD | 0G /r | Eb Gb", /bad opcode byte/],
    ["+r on an unaligned opcode", "PUSH | 51+r | Zv", /low bits 000/],
    ["+r without Z", "PUSH | 50+r | Ev", /no \/r|exactly one Z/],
    ["unknown attribute", "ADD | 00 /r | Eb Gb | | 8086 | lokc", /unknown attribute/],
    ["unknown feature", "ADD | 00 /r | Eb Gb | | 9086", /unknown cpuid feature/],
    ["bad flags", "ADD | 00 /r | Eb Gb | x:c", /bad flags/],
    ["bad flag letter", "ADD | 00 /r | Eb Gb | w:q", /bad flag letter/],
    ["i64 with o64", "AAA | 37 | | | 8086 | i64 o64", /i64 and o64/],
    ["mem and reg", "LEA | 8D /r | Gv M | | 8086 | reg", /both memory and register/],
    ["too many columns", "A | 37 | | | | | x", /2 to 6 columns/],
    ["VEX operand in a legacy encoding", "ANDN | 0F 38 F2 /r | Gy By Ey", /need a VEX encoding/],
    ["ModRM byte with mod != 11", "VMCALL | 0F 01 01", /must have mod=11/],
  ];
  for (const [name, line, err] of bad)
    it(`rejects a bad record: ${name}`, () => {
      expect(() => gen([{ file: "t.txt", text: line }])).toThrow(err);
    });

  it("rejects two records for the same encoding", () => {
    expect(() => gen([{ file: "t.txt", text: "ADD | 00 /r | Eb:rw Gb\nSUB | 00 /r | Eb:rw Gb" }])).toThrow(
      /ambiguous/,
    );
  });
  it("rejects records that disagree on ModRM presence", () => {
    expect(() => gen([{ file: "t.txt", text: "AAA | 37\nADD | 37 /r | Eb:rw Gb" }])).toThrow(
      /disagree on whether a ModRM/,
    );
  });
  it("rejects operand-size variants that disagree on d64", () => {
    expect(() =>
      gen([{ file: "t.txt", text: "PUSHF | 9C | | | 8086 | d64 os16\nPUSHFD | 9C | | | 8086 | os32" }]),
    ).toThrow(/d64\/f64/);
  });
  it("names the file and line of a bad record", () => {
    expect(() => gen([{ file: "x.txt", text: "# c\n\nADD | 00 /r | Kb Gb" }])).toThrow(/^x\.txt:3:/);
  });
});
