// A second, independent reference: GNU objdump (binutils, installed by .ci/run). On real code --
// the bundled Linux kernel's .text (6.3 MB), or /bin/ls's when the image is absent -- every
// instruction boundary of the linear sweep must match objdump's, except after instructions
// outside this decoder's scope, which we decode as #UD and objdump knows.
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { realisticCode } from "../bench/decode-input.js";
import { DecodeStatus, decode, Insn } from "../src/index.js";

const hasObjdump = spawnSync("objdump", ["--version"]).status === 0;

/** objdump mnemonics of instructions outside the scope (feature in parentheses). */
const OUT_OF_SCOPE = new Set([
  "stgi", // AMD SVM
  "clgi", // AMD SVM
  "xstore-rng", // VIA PadLock
  "tpause", // WAITPKG
  "umwait", // WAITPKG
  "monitorx", // AMD MONITORX
  "mwaitx", // AMD MONITORX
  "tilerelease", // AMX
]);

describe("instruction boundaries vs objdump", () => {
  it.runIf(hasObjdump)(
    "64-bit kernel code: boundaries match but for out-of-scope instructions",
    () => {
      const code = realisticCode().bytes;
      const dir = mkdtempSync(join(tmpdir(), "objdump-"));
      const file = join(dir, "text.bin");
      writeFileSync(file, code);
      const out = execFileSync("objdump", ["-D", "-b", "binary", "-m", "i386:x86-64", "-M", "intel", file], {
        encoding: "utf8",
        maxBuffer: 1 << 30,
      });
      // Lines "   addr:\tbytes\tmnemonic ..."; continuation lines of long instructions have no mnemonic.
      const addrs: number[] = [];
      const mns: string[] = [];
      for (const line of out.split("\n")) {
        const m = /^\s*([0-9a-f]+):\t[0-9a-f ]+\t(\S+)/.exec(line);
        if (m) {
          addrs.push(Number.parseInt(m[1]!, 16));
          mns.push(m[2]!);
        }
      }
      expect(addrs.length).toBeGreaterThan(10_000);
      const insn = new Insn();
      const unexpected: string[] = [];
      let off = 0;
      let i = 0;
      let compared = 0;
      while (off < code.length && i < addrs.length - 1) {
        const t = addrs[i]!;
        if (t !== off) {
          // Record what objdump decoded just before the split, then resynchronise.
          const prev = mns[i - 1] ?? "?";
          if (!OUT_OF_SCOPE.has(prev)) unexpected.push(`${off.toString(16)} after objdump "${prev}"`);
          if (t > off) off = t;
          else while (i < addrs.length && addrs[i]! < off) i++;
          continue;
        }
        off += decode(code, off, 64, insn) === DecodeStatus.Ok ? insn.length : 1;
        i++;
        compared++;
      }
      expect(compared).toBeGreaterThan(10_000);
      expect(unexpected.slice(0, 10)).toEqual([]);
    },
    300_000,
  );
});
