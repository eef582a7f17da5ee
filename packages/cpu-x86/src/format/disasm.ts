// Text front ends over decode + formatIntel, shared by the x86-disasm bin and its tests.
import { decode } from "../decoder/decode.js";
import { DecodeStatus, Insn } from "../decoder/insn.js";
import { formatIntel } from "./intel.js";

/** Why a disassembly input was rejected. */
export type DisasmError = { kind: "BadHex"; line: number; text: string } | { kind: "BadMode"; mode: string };

export type DisasmMode = 16 | 32 | 64;

/** Parses "16", "32" or "64". */
export function parseMode(s: string | undefined): DisasmMode | DisasmError {
  if (s === "16" || s === "32" || s === "64") return Number(s) as DisasmMode;
  return { kind: "BadMode", mode: String(s) };
}

/**
 * Parses one line of hex bytes; spaces, commas and `0x`/`\x` byte prefixes are allowed.
 * Returns undefined when the line is not hex.
 */
export function parseHexLine(line: string): Uint8Array | undefined {
  const clean = line.replace(/0x|\\x/gi, "").replace(/[\s,]+/g, "");
  if (clean.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(clean)) return undefined;
  const out = new Uint8Array(clean.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = Number.parseInt(clean.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/**
 * `--lines`: one output line per input line, `<length> <text>` of the first instruction of its
 * bytes, or `0 (bad)` when they do not start a valid instruction in `mode` (invalid, too long or
 * cut short). Branch targets are printed as if the bytes sat at address 0.
 */
export function disassembleLines(text: string, mode: DisasmMode): string[] | DisasmError {
  const lines = text.split(/\r?\n/);
  if (lines.length && lines[lines.length - 1] === "") lines.pop();
  const insn = new Insn();
  const out: string[] = [];
  for (let n = 0; n < lines.length; n++) {
    const bytes = parseHexLine(lines[n]!);
    if (!bytes) return { kind: "BadHex", line: n + 1, text: lines[n]! };
    if (decode(bytes, 0, mode, insn) !== DecodeStatus.Ok) out.push("0 (bad)");
    else out.push(`${insn.length} ${formatIntel(insn, 0)}`);
  }
  return out;
}

/**
 * `--bin`: disassembles a flat binary loaded at `org`, one instruction per line, as
 * `address: bytes  text`. Undecodable bytes print as `(bad)` and advance by one byte.
 */
export function disassembleBinary(bytes: Uint8Array, mode: DisasmMode, org = 0): string[] {
  const insn = new Insn();
  const out: string[] = [];
  const width = mode === 64 ? 16 : 8;
  let off = 0;
  while (off < bytes.length) {
    const ip = org + off;
    const ok = decode(bytes, off, mode, insn) === DecodeStatus.Ok;
    const len = ok ? insn.length : 1;
    const raw = Array.from(bytes.subarray(off, off + len), (b) => b.toString(16).padStart(2, "0")).join(" ");
    const addr = ip.toString(16).padStart(width, "0");
    out.push(`${addr}: ${raw.padEnd(45)} ${ok ? formatIntel(insn, ip) : "(bad)"}`);
    off += len;
  }
  return out;
}

/** A one-line message for a DisasmError. */
export function describeDisasmError(e: DisasmError): string {
  if (e.kind === "BadMode") return `bad mode "${e.mode}": want 16, 32 or 64`;
  return `line ${e.line}: not hex bytes: "${e.text.length > 60 ? `${e.text.slice(0, 60)}...` : e.text}"`;
}
