import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { build } from "esbuild";
import { beforeAll, describe, expect, it } from "vitest";
import { disassembleBinary, disassembleLines, parseHexLine, parseMode } from "../src/index.js";

describe("disassembler front ends", () => {
  it("--lines: length and text of the first instruction, 0 (bad) otherwise", () => {
    expect(disassembleLines("48 01 d8 90\n0f 0b\n\nff ff\n0f\n", 64)).toEqual([
      "3 add rax,rbx",
      "2 ud2",
      "0 (bad)",
      "0 (bad)",
      "0 (bad)",
    ]);
    expect(disassembleLines("40\n", 32)).toEqual(["1 inc eax"]);
    expect(disassembleLines("40\n", 64)).toEqual(["0 (bad)"]);
  });
  it("--lines: bad hex names the line", () => {
    expect(disassembleLines("90\nzz\n", 64)).toEqual({ kind: "BadHex", line: 2, text: "zz" });
    expect(disassembleLines("909\n", 64)).toEqual({ kind: "BadHex", line: 1, text: "909" });
  });
  it("hex lines may use 0x, \\x, commas and spaces", () => {
    expect(parseHexLine("0x48,0x01 \\xd8")).toEqual(Uint8Array.of(0x48, 0x01, 0xd8));
  });
  it("modes other than 16, 32, 64 are refused", () => {
    expect(parseMode("64")).toBe(64);
    expect(parseMode("8")).toEqual({ kind: "BadMode", mode: "8" });
  });
  it("--bin walks a flat binary at an origin, one byte per (bad)", () => {
    const out = disassembleBinary(Uint8Array.of(0x55, 0x89, 0xe5, 0x0f, 0x0f, 0xeb, 0xfe), 32, 0x7c00);
    expect(out.map((l) => l.replace(/\s+/g, " "))).toEqual([
      "00007c00: 55 push ebp",
      "00007c01: 89 e5 mov ebp,esp",
      "00007c03: 0f (bad)",
      "00007c04: 0f eb fe por mm7,mm6",
    ]);
  });
});

describe("x86-disasm bin", () => {
  const dir = mkdtempSync(join(tmpdir(), "x86-disasm-"));
  const bin = join(dir, "x86-disasm.mjs");
  beforeAll(async () => {
    await build({
      entryPoints: [join(import.meta.dirname, "../src/bin/x86-disasm.ts")],
      bundle: true,
      platform: "node",
      format: "esm",
      outfile: bin,
      logLevel: "silent",
    });
  });
  const run = (...args: string[]) => spawnSync(process.execPath, [bin, ...args], { encoding: "utf8" });

  it("prints one line per input line", () => {
    const f = join(dir, "in.txt");
    writeFileSync(f, "48 01 d8\nc5 fc 58 c1\n");
    const r = run("--mode", "64", "--lines", f);
    expect(r.status).toBe(0);
    expect(r.stdout).toBe("3 add rax,rbx\n4 vaddps ymm0,ymm0,ymm1\n");
  });
  it("disassembles a binary file", () => {
    const f = join(dir, "boot.bin");
    writeFileSync(f, Uint8Array.of(0xfa, 0x31, 0xc0, 0xcd, 0x10));
    const r = run("--mode", "16", "--bin", f, "--org", "0x7c00");
    expect(r.status).toBe(0);
    expect(r.stdout.split("\n").map((l) => l.replace(/\s+/g, " "))).toEqual([
      "00007c00: fa cli",
      "00007c01: 31 c0 xor ax,ax",
      "00007c03: cd 10 int 10h",
      "",
    ]);
  });
  it("fails clearly on a missing file, bad hex and a bad mode", () => {
    const missing = run("--mode", "64", "--lines", join(dir, "nope.txt"));
    expect(missing.status).not.toBe(0);
    expect(missing.stderr).toMatch(/cannot read .*no such file/);
    const f = join(dir, "bad.txt");
    writeFileSync(f, "90\nxyz\n");
    const badHex = run("--mode", "64", "--lines", f);
    expect(badHex.status).not.toBe(0);
    expect(badHex.stderr).toMatch(/line 2: not hex bytes/);
    const badMode = run("--mode", "65", "--lines", f);
    expect(badMode.status).not.toBe(0);
    expect(badMode.stderr).toMatch(/bad mode "65"/);
    expect(run("--lines", f).stderr).toMatch(/--mode is required/);
    expect(run("--mode", "64", "--bin", f, "--org", "zz").stderr).toMatch(/bad --org/);
  });
});
