/**
 * Whole-VM state for snapshots: everything KVM's GET ioctls return (slots without their bytes,
 * irqchip, GSI routing, PIT, kvmclock, and per vCPU: registers, FPU/XSAVE/XCRs, MSRs, CPUID, LAPIC,
 * MP state, events, debug registers, TSC), as plain JSON: 64-bit values are `{ big: "0x..." }`,
 * byte arrays `{ bytes: "<base64>" }`. Guest RAM is the caller's (it owns the buffers).
 */
import type { DeterministicClock } from "./clock.js";
import type { CpuidEntry2 } from "./cpuid.js";
import type { IoApicState } from "./devices/ioapic.js";
import type { LapicState } from "./devices/lapic.js";
import type { PicState } from "./devices/pic.js";
import type { PitState } from "./devices/pit.js";
import { fail } from "./errors.js";
import type { IrqRoutingEntry } from "./irq-routing.js";
import type { Kvm } from "./kvm.js";
import type { NestedState } from "./run/nested.js";
import { MSR_IA32_TSC } from "./vcpu.js";
import type { Vm, VmOptions } from "./vm.js";

export const VM_SNAPSHOT_VERSION = 1;

/** JSON form of a value holding bigints and byte arrays. */
export type Jsonable = null | boolean | number | string | Jsonable[] | { [k: string]: Jsonable };

// btoa/atob exist in browsers and Node >= 16; Buffer would tie the package to Node.
function toBase64(b: Uint8Array): string {
  let s = "";
  for (let i = 0; i < b.length; i += 0x8000) s += String.fromCharCode(...b.subarray(i, i + 0x8000));
  return btoa(s);
}
function fromBase64(s: string): Uint8Array {
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

export function toJsonable(v: unknown): Jsonable {
  if (typeof v === "bigint") return { big: `0x${v.toString(16)}` };
  if (v instanceof Uint8Array) return { bytes: toBase64(v) };
  if (Array.isArray(v)) return v.map(toJsonable);
  if (v !== null && typeof v === "object") {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, toJsonable(x)]));
  }
  if (v === undefined) return null;
  return v as Jsonable;
}

export function fromJsonable<T>(v: Jsonable): T {
  const walk = (x: Jsonable): unknown => {
    if (Array.isArray(x)) return x.map(walk);
    if (x !== null && typeof x === "object") {
      const keys = Object.keys(x);
      if (keys.length === 1 && keys[0] === "big" && typeof x.big === "string") return BigInt(x.big);
      if (keys.length === 1 && keys[0] === "bytes" && typeof x.bytes === "string") {
        return fromBase64(x.bytes);
      }
      return Object.fromEntries(Object.entries(x).map(([k, y]) => [k, walk(y)]));
    }
    return x;
  };
  return walk(v) as T;
}

export interface VcpuSnapshot {
  id: number;
  regs: ReturnType<Vm["vcpus"][number]["getRegs"]>;
  sregs: ReturnType<Vm["vcpus"][number]["getSregs"]>;
  fpu: ReturnType<Vm["vcpus"][number]["getFpu"]>;
  xsave: Uint8Array;
  xcrs: { xcr: number; value: bigint }[];
  msrs: { index: number; data: bigint }[];
  cpuid: CpuidEntry2[];
  lapic: LapicState | null;
  mpState: number;
  events: ReturnType<Vm["vcpus"][number]["getVcpuEvents"]>;
  debugRegs: ReturnType<Vm["vcpus"][number]["getDebugRegs"]>;
  tscKhz: number;
  hasRun: boolean;
  /** Nested VMX (KVM_GET_NESTED_STATE); null or absent without it. */
  nested?: NestedState | null;
}

export interface VmSnapshot {
  version: number;
  /** VM clock ns when saved; relative device times are rebased on restore. */
  clockNs: number;
  kvmclockNs: number;
  slots: { slot: number; flags: number; guestPhysAddr: number; memorySize: number }[];
  tssAddr: number;
  identityMapAddr: number;
  irqchip: { pic: PicState; ioapic: IoApicState; routing: IrqRoutingEntry[] } | null;
  pit: { state: PitState; speakerDummy: boolean } | null;
  vcpus: VcpuSnapshot[];
}

/** Captures the VM's state (KVM's GET ioctls, all of them). */
export function saveVm(vm: Vm): VmSnapshot {
  const msrList = vm.kvm.getMsrIndexList();
  return {
    version: VM_SNAPSHOT_VERSION,
    clockNs: vm.clock.nowNs(),
    kvmclockNs: vm.getClock().clock,
    slots: vm.memory
      .slots()
      .map((s) => ({ slot: s.id, flags: s.flags, guestPhysAddr: s.base, memorySize: s.size })),
    tssAddr: vm.tssAddr,
    identityMapAddr: vm.identityMapAddr,
    irqchip: vm.irqchip
      ? {
          pic: vm.irqchip.pic.save(),
          ioapic: vm.irqchip.ioapic.save(),
          routing: vm.irqchip.routing.entries().map((e) => ({ ...e })),
        }
      : null,
    pit: vm.pit ? { state: vm.pit.save(), speakerDummy: vm.pit.speakerDummy } : null,
    vcpus: vm.vcpus.map((v) => {
      const msrs = msrList.map((index) => ({ index, data: 0n }));
      const n = v.getMsrs(msrs);
      return {
        id: v.id,
        regs: v.getRegs(),
        sregs: v.getSregs(),
        fpu: v.getFpu(),
        xsave: v.getXsave(),
        xcrs: v.getXcrs(),
        msrs: msrs.slice(0, n),
        cpuid: v.getCpuid2(),
        lapic: v.lapic ? v.lapic.save() : null,
        mpState: v.getMpState(),
        events: v.getVcpuEvents(),
        debugRegs: v.getDebugRegs(),
        tscKhz: v.tscKhz,
        hasRun: v.hasRun,
        nested: v.getNestedState(),
      };
    }),
  };
}

/**
 * Builds a VM from a snapshot. `memory` gives each slot's buffer (with the RAM contents the caller
 * saved). Validation errors are KvmErrors of the ioctl that would have failed.
 */
export function restoreVm(
  kvm: Kvm,
  snap: VmSnapshot,
  memory: (slot: number) => ArrayBuffer | SharedArrayBuffer,
  opts: VmOptions = {},
): Vm {
  if (snap.version !== VM_SNAPSHOT_VERSION) fail("EINVAL", "restore", "BadVersion", `${snap.version}`);
  const vm = kvm.createVm(opts);
  // A deterministic clock resumes where it was saved, so a replay continues exactly.
  if (vm.clock.mode === "deterministic") (vm.clock as DeterministicClock).advanceTo(snap.clockNs);
  const delta = vm.clock.nowNs() - snap.clockNs;
  for (const s of snap.slots) vm.setUserMemoryRegion({ ...s, memory: memory(s.slot) });
  if (snap.tssAddr >= 0) vm.setTssAddr(snap.tssAddr);
  vm.setIdentityMapAddr(snap.identityMapAddr);
  if (snap.irqchip) {
    vm.createIrqchip();
    vm.setGsiRouting(snap.irqchip.routing);
  }
  if (snap.pit) vm.createPit2(snap.pit.speakerDummy ? 1 : 0);
  for (const c of snap.vcpus) {
    const v = vm.createVcpu(c.id);
    v.setCpuid2(c.cpuid);
    v.setTscKhz(c.tscKhz);
    if (c.lapic && v.lapic && !v.lapic.restore(c.lapic)) fail("EINVAL", "KVM_SET_LAPIC", "BadLapicState");
    v.setSregs(c.sregs);
    // Without an in-kernel LAPIC the next run() loads CR8 from kvm_run.cr8: it must hold the saved one.
    v.runFields.cr8 = v.cr8;
    v.setRegs(c.regs);
    v.setFpu(c.fpu);
    v.setXsave(c.xsave);
    v.setXcrs(c.xcrs);
    // IA32_TSC last, after the rate: it sets the offset against the restored clock.
    const others = c.msrs.filter((m) => m.index !== MSR_IA32_TSC);
    if (v.setMsrs(others) !== others.length) fail("EINVAL", "KVM_SET_MSRS", "MsrRejected");
    const tsc = c.msrs.find((m) => m.index === MSR_IA32_TSC);
    if (tsc) v.writeMsr(MSR_IA32_TSC, tsc.data, true);
    v.setMpState(c.mpState);
    v.setVcpuEvents(c.events);
    v.setDebugRegs(c.debugRegs);
    v.hasRun = c.hasRun;
    if (c.nested) v.setNestedState(c.nested);
  }
  if (snap.irqchip) {
    const chip = vm.irqchip!;
    chip.pic.restore(snap.irqchip.pic);
    chip.ioapic.restore(snap.irqchip.ioapic);
  }
  if (snap.pit) {
    const st = snap.pit.state;
    vm.setPit2({
      ...st,
      channels: st.channels.map((ch) => ({ ...ch, countLoadTime: ch.countLoadTime + delta })),
    });
  }
  vm.setClock({ clock: snap.kvmclockNs, flags: 0, realtime: 0, hostTsc: 0 });
  return vm;
}
