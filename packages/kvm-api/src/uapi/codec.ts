/**
 * Conversions between the typed state of this package and the uapi structs' bytes, so a C VMM
 * ported line by line can keep its buffers while the object API does the work.
 */
import type { CpuidEntry2 } from "../cpuid.js";
import type { ClockData } from "../devices/kvmclock.js";
import type { PitChannelState, PitState } from "../devices/pit.js";
import type { MsrEntry } from "../vcpu.js";
import * as S from "../vcpu-state.js";
import { StructView } from "./layout.js";
import * as T from "./structs.js";

export function encodeRegs(r: S.KvmRegs, out = new StructView(T.kvm_regs)): StructView {
  for (const n of S.REG_NAMES) out.set(n, r[n]);
  return out;
}
export function decodeRegs(v: StructView): S.KvmRegs {
  return Object.fromEntries(S.REG_NAMES.map((n) => [n, v.big(n)])) as unknown as S.KvmRegs;
}

const SEG_BYTES = ["type", "present", "dpl", "db", "s", "l", "g", "avl", "unusable"] as const;

export function encodeSregs(s: S.KvmSregs, out = new StructView(T.kvm_sregs)): StructView {
  for (const n of S.SEGMENT_NAMES) {
    const g = s[n];
    out.set(`${n}.base`, g.base);
    out.set(`${n}.limit`, g.limit);
    out.set(`${n}.selector`, g.selector);
    for (const b of SEG_BYTES) out.set(`${n}.${b}`, g[b]);
  }
  for (const d of ["gdt", "idt"] as const) {
    out.set(`${d}.base`, s[d].base);
    out.set(`${d}.limit`, s[d].limit);
  }
  for (const c of ["cr0", "cr2", "cr3", "cr4", "cr8", "efer"] as const) out.set(c, s[c]);
  out.set("apic_base", s.apicBase);
  s.interruptBitmap.forEach((w, i) => {
    out.set("interrupt_bitmap", w, i);
  });
  return out;
}
export function decodeSregs(v: StructView): S.KvmSregs {
  const seg = (n: string): S.KvmSegment => {
    const g = {
      base: v.big(`${n}.base`),
      limit: v.num(`${n}.limit`),
      selector: v.num(`${n}.selector`),
    } as S.KvmSegment;
    for (const b of SEG_BYTES) g[b] = v.num(`${n}.${b}`);
    return g;
  };
  const s = Object.fromEntries(S.SEGMENT_NAMES.map((n) => [n, seg(n)])) as unknown as S.KvmSregs;
  s.gdt = { base: v.big("gdt.base"), limit: v.num("gdt.limit") };
  s.idt = { base: v.big("idt.base"), limit: v.num("idt.limit") };
  for (const c of ["cr0", "cr2", "cr3", "cr4", "cr8", "efer"] as const) s[c] = v.big(c);
  s.apicBase = v.big("apic_base");
  s.interruptBitmap = [0, 1, 2, 3].map((i) => v.big("interrupt_bitmap", i)) as S.KvmSregs["interruptBitmap"];
  return s;
}

export function encodeFpu(f: S.KvmFpu, out = new StructView(T.kvm_fpu)): StructView {
  out.array("fpr").set(f.fpr);
  out.array("xmm").set(f.xmm);
  out.set("fcw", f.fcw);
  out.set("fsw", f.fsw);
  out.set("ftwx", f.ftwx);
  out.set("last_opcode", f.lastOpcode);
  out.set("last_ip", f.lastIp);
  out.set("last_dp", f.lastDp);
  out.set("mxcsr", f.mxcsr);
  return out;
}
export function decodeFpu(v: StructView): S.KvmFpu {
  return {
    fpr: v.array("fpr").slice(),
    xmm: v.array("xmm").slice(),
    fcw: v.num("fcw"),
    fsw: v.num("fsw"),
    ftwx: v.num("ftwx"),
    lastOpcode: v.num("last_opcode"),
    lastIp: v.big("last_ip"),
    lastDp: v.big("last_dp"),
    mxcsr: v.num("mxcsr"),
  };
}

const EVENT_FIELDS: [string, (e: S.KvmVcpuEvents) => number, (e: S.KvmVcpuEvents, x: number) => void][] = [
  ["exception.injected", (e) => e.exception.injected, (e, x) => (e.exception.injected = x)],
  ["exception.nr", (e) => e.exception.nr, (e, x) => (e.exception.nr = x)],
  ["exception.has_error_code", (e) => e.exception.hasErrorCode, (e, x) => (e.exception.hasErrorCode = x)],
  ["exception.pending", (e) => e.exception.pending, (e, x) => (e.exception.pending = x)],
  ["exception.error_code", (e) => e.exception.errorCode, (e, x) => (e.exception.errorCode = x)],
  ["interrupt.injected", (e) => e.interrupt.injected, (e, x) => (e.interrupt.injected = x)],
  ["interrupt.nr", (e) => e.interrupt.nr, (e, x) => (e.interrupt.nr = x)],
  ["interrupt.soft", (e) => e.interrupt.soft, (e, x) => (e.interrupt.soft = x)],
  ["interrupt.shadow", (e) => e.interrupt.shadow, (e, x) => (e.interrupt.shadow = x)],
  ["nmi.injected", (e) => e.nmi.injected, (e, x) => (e.nmi.injected = x)],
  ["nmi.pending", (e) => e.nmi.pending, (e, x) => (e.nmi.pending = x)],
  ["nmi.masked", (e) => e.nmi.masked, (e, x) => (e.nmi.masked = x)],
  ["sipi_vector", (e) => e.sipiVector, (e, x) => (e.sipiVector = x)],
  ["flags", (e) => e.flags, (e, x) => (e.flags = x)],
  ["smi.smm", (e) => e.smi.smm, (e, x) => (e.smi.smm = x)],
  ["smi.pending", (e) => e.smi.pending, (e, x) => (e.smi.pending = x)],
  ["smi.smm_inside_nmi", (e) => e.smi.smmInsideNmi, (e, x) => (e.smi.smmInsideNmi = x)],
  ["smi.latched_init", (e) => e.smi.latchedInit, (e, x) => (e.smi.latchedInit = x)],
  ["triple_fault.pending", (e) => e.tripleFault.pending, (e, x) => (e.tripleFault.pending = x)],
  ["exception_has_payload", (e) => e.exceptionHasPayload, (e, x) => (e.exceptionHasPayload = x)],
];
export function encodeEvents(e: S.KvmVcpuEvents, out = new StructView(T.kvm_vcpu_events)): StructView {
  for (const [p, get] of EVENT_FIELDS) out.set(p, get(e));
  out.set("exception_payload", e.exceptionPayload);
  return out;
}
export function decodeEvents(v: StructView): S.KvmVcpuEvents {
  const e = S.emptyEvents();
  for (const [p, , set] of EVENT_FIELDS) set(e, v.num(p));
  e.exceptionPayload = v.big("exception_payload");
  return e;
}

export function encodeDebugRegs(d: S.KvmDebugRegs, out = new StructView(T.kvm_debugregs)): StructView {
  d.db.forEach((x, i) => {
    out.set("db", x, i);
  });
  out.set("dr6", d.dr6);
  out.set("dr7", d.dr7);
  out.set("flags", d.flags);
  return out;
}
export function decodeDebugRegs(v: StructView): S.KvmDebugRegs {
  return {
    db: [0, 1, 2, 3].map((i) => v.big("db", i)) as S.KvmDebugRegs["db"],
    dr6: v.big("dr6"),
    dr7: v.big("dr7"),
    flags: Number(v.big("flags")),
  };
}

const PIT_KEYS: [keyof PitChannelState, string][] = [
  ["count", "count"],
  ["latchedCount", "latched_count"],
  ["countLatched", "count_latched"],
  ["statusLatched", "status_latched"],
  ["status", "status"],
  ["readState", "read_state"],
  ["writeState", "write_state"],
  ["writeLatch", "write_latch"],
  ["rwMode", "rw_mode"],
  ["mode", "mode"],
  ["bcd", "bcd"],
  ["gate", "gate"],
];
/**
 * kvm_pit_state2. The uapi struct has no room for what the datasheet model keeps beyond KVM's
 * (null count, armed, paused ticks, IRQ tick); encoding drops them and decoding derives them.
 */
export function encodePit(p: PitState, out = new StructView(T.kvm_pit_state2)): StructView {
  p.channels.forEach((c, i) => {
    for (const [k, f] of PIT_KEYS) out.set(`channels[${i}].${f}`, c[k] as number);
    out.set(`channels[${i}].count_load_time`, BigInt(Math.round(c.countLoadTime)));
  });
  out.set("flags", p.flags);
  return out;
}
export function decodePit(v: StructView): PitState {
  const channels = [0, 1, 2].map((i) => {
    const c = {} as PitChannelState;
    for (const [k, f] of PIT_KEYS) (c as unknown as Record<string, number>)[k] = v.num(`channels[${i}].${f}`);
    c.countLoadTime = Number(v.big(`channels[${i}].count_load_time`));
    c.nullCount = 0;
    c.armed = c.mode === 1 || c.mode === 5 ? 0 : 1;
    c.pausedTicks = -1;
    c.irqTick = 0;
    return c;
  });
  return { channels, flags: v.num("flags") };
}

export function encodeClock(d: ClockData, out = new StructView(T.kvm_clock_data)): StructView {
  out.set("clock", BigInt(Math.round(d.clock)));
  out.set("flags", d.flags);
  out.set("realtime", BigInt(Math.round(d.realtime)));
  out.set("host_tsc", BigInt(Math.round(d.hostTsc)));
  return out;
}
export function decodeClock(v: StructView): ClockData {
  return {
    clock: Number(v.big("clock")),
    flags: v.num("flags"),
    realtime: Number(v.big("realtime")),
    hostTsc: Number(v.big("host_tsc")),
  };
}

/** kvm_cpuid2 with its entries following the 8-byte header. */
export function encodeCpuid2(entries: readonly CpuidEntry2[], bytes?: Uint8Array): Uint8Array {
  const b = bytes ?? new Uint8Array(T.kvm_cpuid2.size + entries.length * T.kvm_cpuid_entry2.size);
  new StructView(T.kvm_cpuid2, b).set("nent", entries.length);
  entries.forEach((e, i) => {
    const v = new StructView(T.kvm_cpuid_entry2, b.subarray(8 + i * T.kvm_cpuid_entry2.size));
    for (const k of ["function", "index", "flags", "eax", "ebx", "ecx", "edx"] as const) v.set(k, e[k]);
  });
  return b;
}
export function decodeCpuid2(b: Uint8Array): CpuidEntry2[] {
  const n = new StructView(T.kvm_cpuid2, b).num("nent");
  const out: CpuidEntry2[] = [];
  for (let i = 0; i < n; i++) {
    const v = new StructView(T.kvm_cpuid_entry2, b.subarray(8 + i * T.kvm_cpuid_entry2.size));
    out.push({
      function: v.num("function"),
      index: v.num("index"),
      flags: v.num("flags"),
      eax: v.num("eax"),
      ebx: v.num("ebx"),
      ecx: v.num("ecx"),
      edx: v.num("edx"),
    });
  }
  return out;
}

/** kvm_msrs with its entries following the 8-byte header. */
export function decodeMsrs(b: Uint8Array): MsrEntry[] {
  const n = new StructView(T.kvm_msrs, b).num("nmsrs");
  const out: MsrEntry[] = [];
  for (let i = 0; i < n; i++) {
    const v = new StructView(T.kvm_msr_entry, b.subarray(8 + i * 16));
    out.push({ index: v.num("index"), data: v.big("data") });
  }
  return out;
}
export function encodeMsrs(entries: readonly MsrEntry[], bytes?: Uint8Array): Uint8Array {
  const b = bytes ?? new Uint8Array(8 + entries.length * 16);
  new StructView(T.kvm_msrs, b).set("nmsrs", entries.length);
  entries.forEach((e, i) => {
    const v = new StructView(T.kvm_msr_entry, b.subarray(8 + i * 16));
    v.set("index", e.index);
    v.set("data", e.data);
  });
  return b;
}
