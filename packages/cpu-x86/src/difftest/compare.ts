/**
 * Compares the host's and cpu-x86's end states. Masked, and only these: the flags the ISA records mark
 * undefined for the op (`OP_FLAGS_UNDEFINED`, SDM "Flags Affected"), and RF (the kernel's signal frame
 * shows RF set after faults; it is not architectural state of the snippet). Everything else must match:
 * GPRs, RIP, RFLAGS, XMM, MXCSR, the memory window, writes outside it, and the exception vector, error
 * code and (for #PF) the fault address.
 */

import { hex64 } from "../cpu/state.js";
import { OP_FLAGS_UNDEFINED, OP_NAMES, Op } from "../generated/ops.js";
import { CODE_BASE, DATA_BASE, type SnippetIn, type SnippetOut, WIN_BASE, WIN_OFF } from "./records.js";
import { dotProductLanesAgree, type HostVendor } from "./vendor.js";

const REG = [
  "rax",
  "rcx",
  "rdx",
  "rbx",
  "rsp",
  "rbp",
  "rsi",
  "rdi",
  "r8",
  "r9",
  "r10",
  "r11",
  "r12",
  "r13",
  "r14",
  "r15",
];

/**
 * Returns a list of differences (empty when the states match). `vendor` is the host's: the model
 * follows the AMD hosts this project was first checked on where Intel and AMD differ, and on an
 * Intel host those few places (named below) are compared only as far as the vendors agree.
 */
export function compare(
  s: SnippetIn,
  host: SnippetOut,
  emu: SnippetOut,
  vendor: HostVendor = "amd",
): string[] {
  const d: string[] = [];
  if (host.trapno === -2) return ["the native harness crashed or hung on this snippet"];
  // LDMXCSR of a value with bit 17 (MM, AMD's misaligned-SSE mode) and no other reserved bit: the AMD
  // host accepts it (MXCSR_MASK 0x2FFFF), the Intel model raises #GP(0). A vendor difference.
  if (s.op === Op.LDMXCSR && host.trapno === -1 && host.mxcsr & 0x20000) return [];
  if (host.trapno !== emu.trapno) d.push(`exception: host ${host.trapno} emu ${emu.trapno}`);
  else if (host.trapno >= 0) {
    if (host.trapno === 14 || host.trapno === 13 || host.trapno === 12) {
      // A #PF outside the snippet's two pages may hit one of the harness process's own mappings
      // (libc, stack, vsyscall): the host then reports P=1 where the emulated address space has no
      // page. That bit is environmental, so it is not compared there.
      let mask = 0xffff;
      const page = host.addrHi === 0 ? host.addrLo & ~0xfff : -1;
      if (host.trapno === 14 && page !== CODE_BASE && page !== DATA_BASE) mask &= ~1;
      if ((host.err & mask) !== (emu.err & mask)) d.push(`error code: host ${host.err} emu ${emu.err}`);
    }
    if (host.trapno === 14 && (host.addrLo !== emu.addrLo || host.addrHi !== emu.addrHi)) {
      d.push(`cr2: host ${hex64(host.addrLo, host.addrHi)} emu ${hex64(emu.addrLo, emu.addrHi)}`);
    }
  }
  // Compatibility mode (32- and 16-bit code): only the low 32 bits of RIP and the GPRs are
  // architectural (the upper halves are undefined after a return to 64-bit mode).
  const m32 = s.mode !== 64;
  if (host.ripLo !== emu.ripLo || (!m32 && host.ripHi !== emu.ripHi)) {
    d.push(`rip: host ${hex64(host.ripLo, host.ripHi)} emu ${hex64(emu.ripLo, emu.ripHi)}`);
  }
  for (let i = 0; i < 16; i++) {
    if (host.regs[2 * i] !== emu.regs[2 * i] || (!m32 && host.regs[2 * i + 1] !== emu.regs[2 * i + 1])) {
      d.push(
        `${REG[i]}: host ${hex64(host.regs[2 * i]!, host.regs[2 * i + 1]!)} emu ${hex64(emu.regs[2 * i]!, emu.regs[2 * i + 1]!)} (in ${hex64(s.regs[2 * i]!, s.regs[2 * i + 1]!)})`,
      );
    }
  }
  // Flags: undefined ones masked only when the instruction completed (a fault leaves them unchanged).
  let mask = 0x3f7fd5 & ~0x10000;
  if (host.trapno === -1) mask &= ~(OP_FLAGS_UNDEFINED[s.op] ?? 0);
  if (((host.rflags ^ emu.rflags) & mask) !== 0) {
    d.push(
      `rflags: host ${(host.rflags >>> 0).toString(16)} emu ${(emu.rflags >>> 0).toString(16)} (in ${s.rflags.toString(16)}, mask ${mask.toString(16)})`,
    );
  }
  // DPPS/DPPD with NaNs among their products: on an Intel host a lane where both give a NaN counts
  // as matching (vendor.ts).
  const dp = vendor === "intel" && (s.op === Op.DPPS || s.op === Op.DPPD);
  for (let i = 0; i < 64; i++) {
    if (host.xmm[i] === emu.xmm[i]) continue;
    const reg = i & ~3;
    if (dp && dotProductLanesAgree(s.op === Op.DPPS, host.xmm, emu.xmm, reg)) {
      i = reg + 3;
      continue;
    }
    d.push(`xmm${i >> 2}: differs`);
    break;
  }
  // x87: FCW, FSW, the abridged tag byte and ST0..ST7 (10 bytes each). Not FOP/FIP/FDP: they hold the
  // host's own addresses, and this AMD host saves them only while an exception is pending.
  const x87Diff = (from: number, to: number, what: string) => {
    for (let k = from; k < to; k++) {
      if (host.fx[k] !== emu.fx[k]) {
        const h = Array.from(host.fx.subarray(from, to), (b) => b.toString(16).padStart(2, "0")).join("");
        const e = Array.from(emu.fx.subarray(from, to), (b) => b.toString(16).padStart(2, "0")).join("");
        d.push(`${what}: host ${h} emu ${e}`);
        return;
      }
    }
  };
  x87Diff(0, 2, "fcw");
  // FCOMI/FCOMIP/FUCOMI/FUCOMIP: the SDM sets C1 to 0; this AMD host leaves it (vendor difference).
  const fcomi = s.op === Op.FCOMI || s.op === Op.FCOMIP || s.op === Op.FUCOMI || s.op === Op.FUCOMIP;
  const swMask = fcomi && host.trapno === -1 ? ~0x200 : ~0;
  const hsw = host.fx[2]! | (host.fx[3]! << 8);
  const esw = emu.fx[2]! | (emu.fx[3]! << 8);
  if ((hsw ^ esw) & swMask) d.push(`fsw: host ${hsw.toString(16)} emu ${esw.toString(16)}`);
  x87Diff(4, 5, "ftw");
  for (let p = 0; p < 8; p++) x87Diff(32 + 16 * p, 42 + 16 * p, `st-phys${p}`);
  if (host.mxcsr !== emu.mxcsr)
    d.push(`mxcsr: host ${host.mxcsr.toString(16)} emu ${emu.mxcsr.toString(16)}`);
  // A near CALL whose target faults with #GP (non-canonical in 64-bit mode, beyond the CS limit in
  // 16- and 32-bit code): an Intel host has already stored the return address below RSP when it
  // raises #GP (RSP itself unchanged); AMD, and the model, store nothing. On an Intel host the
  // 8 bytes below RSP are not compared for such a CALL.
  let skipFrom = -1;
  if (vendor === "intel" && s.op === Op.CALL && host.trapno === 13 && emu.trapno === 13)
    skipFrom = s.regs[8]! - (s.mode === 16 ? WIN_OFF : WIN_BASE) - 8;
  for (let i = 0; i < host.mem.length; i++) {
    if (i >= skipFrom && i < skipFrom + 8) continue;
    if (host.mem[i] !== emu.mem[i]) {
      d.push(`memory +${i.toString(16)}: host ${host.mem[i]} emu ${emu.mem[i]} (in ${s.mem[i]})`);
      break;
    }
  }
  if (host.outsideOff !== emu.outsideOff)
    d.push(`write outside the window: host ${host.outsideOff} emu ${emu.outsideOff}`);
  return d;
}

export function describe(s: SnippetIn): string {
  const bytes = Array.from(s.code, (b) => b.toString(16).padStart(2, "0")).join(" ");
  return `${OP_NAMES[s.op] ?? s.op}${s.mode === 64 ? "" : `/${s.mode}`} [${bytes}]`;
}
