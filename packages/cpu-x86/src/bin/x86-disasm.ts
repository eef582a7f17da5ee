#!/usr/bin/env node
// x86-disasm: Intel-syntax disassembler over @tskvm/cpu-x86's decoder.
//   x86-disasm --mode 64 --lines FILE            first instruction of each hex line: "<length> <text>" or "0 (bad)"
//   x86-disasm --mode 16|32|64 --bin FILE [--org ADDR]   a flat binary, one instruction per line
import { readFileSync } from "node:fs";
import { describeDisasmError, disassembleBinary, disassembleLines, parseMode } from "../format/disasm.js";

const USAGE = `usage: x86-disasm --mode 16|32|64 (--lines FILE | --bin FILE [--org ADDR])
  --lines FILE  each line of FILE is hex bytes; prints "<length> <text>" of its first
                instruction, or "0 (bad)" when the bytes do not start a valid instruction
  --bin FILE    disassembles a flat binary, one instruction per line
  --org ADDR    load address of --bin (hex with 0x, or decimal); default 0
  FILE may be "-" for standard input.`;

function die(msg: string, code = 2): never {
  process.stderr.write(`x86-disasm: ${msg}\n`);
  process.exit(code);
}

function main(argv: string[]): void {
  let mode: string | undefined;
  let lines: string | undefined;
  let bin: string | undefined;
  let org = "0";
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const val = (): string => {
      const v = argv[++i];
      if (v === undefined) die(`${a} needs a value\n${USAGE}`);
      return v;
    };
    if (a === "--mode") mode = val();
    else if (a === "--lines") lines = val();
    else if (a === "--bin") bin = val();
    else if (a === "--org") org = val();
    else if (a === "-h" || a === "--help") {
      process.stdout.write(`${USAGE}\n`);
      return;
    } else die(`unknown argument "${a}"\n${USAGE}`);
  }
  const m = parseMode(mode);
  if (typeof m !== "number")
    die(mode === undefined ? `--mode is required\n${USAGE}` : describeDisasmError(m));
  if ((lines === undefined) === (bin === undefined)) die(`give exactly one of --lines and --bin\n${USAGE}`);
  const file = (lines ?? bin)!;
  let data: Buffer;
  try {
    data = readFileSync(file === "-" ? 0 : file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    die(`cannot read ${file}: ${code === "ENOENT" ? "no such file" : ((e as Error).message ?? code)}`);
  }
  if (lines !== undefined) {
    const out = disassembleLines(data.toString("utf8"), m);
    if (!Array.isArray(out)) die(`${file}: ${describeDisasmError(out)}`);
    process.stdout.write(out.length ? `${out.join("\n")}\n` : "");
    return;
  }
  const o = /^0x[0-9a-f]+$/i.test(org)
    ? Number.parseInt(org, 16)
    : /^\d+$/.test(org)
      ? Number(org)
      : Number.NaN;
  if (!Number.isSafeInteger(o) || o < 0) die(`bad --org "${org}": want a hex (0x...) or decimal address`);
  const out = disassembleBinary(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), m, o);
  process.stdout.write(out.length ? `${out.join("\n")}\n` : "");
}

// A closed pipe (`x86-disasm ... | head`) ends the output quietly, as other Unix tools do.
process.stdout.on("error", (e: NodeJS.ErrnoException) => process.exit(e.code === "EPIPE" ? 0 : 1));
main(process.argv.slice(2));
