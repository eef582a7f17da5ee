/**
 * Shared pieces of the KVM_RUN tests: assembling the guest programs of guests/programs with nasm,
 * a VM with RAM at 0, and an exit log in one line per exit ("io out 0x10 1 48", "mmio read
 * 0xd0000004 4", "hlt", ...) that the real-KVM reference runner (tools/kvmref) prints too.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { drainCoalesced, Kvm, type KvmExit, type KvmOptions, type Vcpu, type Vm } from "../src/index.js";
import { attachVmxBackend, type VmxBackend, type VmxBackendOptions } from "../src/run/index.js";

export const REPO = resolve(__dirname, "../../..");
export const PROGRAMS = join(REPO, "guests/programs");

let tmp: string | undefined;
export function tempDir(): string {
  tmp ??= mkdtempSync(join(tmpdir(), "tskvm-run-"));
  return tmp;
}

export function hasTool(cmd: string): boolean {
  try {
    execFileSync("sh", ["-c", `command -v ${cmd}`], { stdio: "pipe" });
    return true;
  } catch {
    return false;
  }
}

/** Assembles guests/programs/<name>.asm with `nasm -f bin`; throws with nasm's message on error. */
export function assemble(name: string): Uint8Array {
  const out = join(tempDir(), `${name}.bin`);
  execFileSync("nasm", ["-f", "bin", "-o", out, join(PROGRAMS, `${name}.asm`)], { stdio: "pipe" });
  return new Uint8Array(readFileSync(out));
}

export interface Machine {
  kvm: Kvm;
  vm: Vm;
  vcpu: Vcpu;
  ram: Uint8Array;
  backend: VmxBackend;
}

export interface MachineOptions {
  memSize?: number;
  irqchip?: boolean;
  pit?: boolean;
  backend?: VmxBackendOptions;
  kvm?: KvmOptions;
}

/** A deterministic-clock VM with RAM at GPA 0 and one vCPU with the VMX backend. */
export function machine(opts: MachineOptions = {}): Machine {
  const kvm = new Kvm(opts.kvm);
  const vm = kvm.createVm({ clock: "deterministic" });
  const size = opts.memSize ?? 4 << 20;
  const buf = new ArrayBuffer(size);
  vm.setUserMemoryRegion({ slot: 0, flags: 0, guestPhysAddr: 0, memorySize: size, memory: buf });
  if (opts.irqchip) vm.createIrqchip();
  if (opts.pit) vm.createPit2(0);
  const vcpu = vm.createVcpu(0);
  const backend = attachVmxBackend(vcpu, opts.backend);
  return { kvm, vm, vcpu, ram: new Uint8Array(buf), backend };
}

/**
 * Counts the VM entries from now on (VMLAUNCH and VMRESUME through the VMX unit, the full path's
 * entries; the exit-less paths make none): the returned function reads the count.
 */
export function countEntries(m: Machine): () => number {
  const unit = m.backend.unit;
  let entries = 0;
  const launch = unit.vmlaunch.bind(unit);
  const resume = unit.vmresume.bind(unit);
  unit.vmlaunch = () => {
    entries++;
    return launch();
  };
  unit.vmresume = () => {
    entries++;
    return resume();
  };
  return () => entries;
}

/** Real mode at CS:IP = 0:ip with all segments based at 0. */
export function realMode(m: Machine, ip: number): void {
  const s = m.vcpu.getSregs();
  for (const n of ["cs", "ds", "es", "ss", "fs", "gs"] as const) s[n] = { ...s[n], selector: 0, base: 0n };
  m.vcpu.setSregs(s);
  m.vcpu.setRegs({ ...m.vcpu.getRegs(), rip: BigInt(ip), rsp: 0x8000n, rflags: 2n });
}

/** Flat 32-bit protected mode, CPL 0, paging off (a boot loader's hand-off). */
export function flat32(m: Machine, eip: number): void {
  const s = m.vcpu.getSregs();
  const seg = (sel: number, type: number) => ({
    base: 0n,
    limit: 0xffffffff,
    selector: sel,
    type,
    present: 1,
    dpl: 0,
    db: 1,
    s: 1,
    l: 0,
    g: 1,
    avl: 0,
    unusable: 0,
  });
  s.cs = seg(0x08, 0xb);
  for (const n of ["ds", "es", "ss", "fs", "gs"] as const) s[n] = seg(0x10, 3);
  s.cr0 = 0x11n;
  m.vcpu.setSregs(s);
  m.vcpu.setRegs({ ...m.vcpu.getRegs(), rip: BigInt(eip), rsp: 0x8000n, rflags: 2n });
}

/**
 * 64-bit mode at `rip` from the flat 32-bit state, the first 2 MiB identity-mapped by one 2 MiB page
 * (PML4 0x80000 -> PDPT 0x81000 -> PD 0x82000): CR0.PG|PE, CR4.PAE, EFER.LME|LMA, CS.L.
 */
export function longMode(m: Machine, rip: number): void {
  flat32(m, rip);
  const dv = new DataView(m.ram.buffer);
  dv.setUint32(0x80000, 0x81003, true);
  dv.setUint32(0x81000, 0x82003, true);
  dv.setUint32(0x82000, 0x83, true);
  const s = m.vcpu.getSregs();
  m.vcpu.setSregs({
    ...s,
    cr0: 0x80000011n,
    cr3: 0x80000n,
    cr4: 0x20n,
    efer: 0x500n,
    cs: { ...s.cs, l: 1, db: 0 },
  });
}

const hex = (d: Uint8Array, n: number) =>
  Array.from(d.subarray(0, n), (b) => b.toString(16).padStart(2, "0")).join("");

/** One exit as a log line. */
export function describe(e: KvmExit): string {
  switch (e.kind) {
    case "io":
      return e.direction === 1
        ? `io out 0x${e.port.toString(16)} ${e.size} ${hex(e.data, e.size * e.count)}`
        : `io in 0x${e.port.toString(16)} ${e.size}`;
    case "mmio":
      return e.isWrite
        ? `mmio write 0x${e.physAddr.toString(16)} ${e.len} ${hex(e.data, e.len)}`
        : `mmio read 0x${e.physAddr.toString(16)} ${e.len}`;
    case "fail-entry":
      return `fail-entry 0x${e.hardwareEntryFailureReason.toString(16)}`;
    case "internal-error":
      return `internal-error ${e.suberror} ${e.data.map((x) => x.toString(16)).join(",")}`;
    default:
      return e.kind;
  }
}

/** Answers for reads: port or address -> bytes (little-endian value). */
export type Answers = Record<string, number>;

/**
 * Runs until an exit in `stopOn` (default hlt, shutdown, fail-entry, internal-error) or `max` exits,
 * answering IN/MMIO reads from `answers` (key "io 0x11" / "mmio 0xd0000004"). KVM_EXIT_INTR is not
 * logged: a VMM just calls KVM_RUN again. With `ring` (a coalesced-MMIO ring page), the writes it
 * holds after each KVM_RUN are logged first, "coalesced pio|mmio 0xADDR LEN HEX" (tools/kvmref).
 */
export function runLog(
  m: Machine,
  answers: Answers = {},
  max = 100,
  stopOn = ["hlt", "shutdown", "fail-entry", "internal-error"],
  ring?: Uint8Array,
): string[] {
  const log: string[] = [];
  for (let i = 0; i < max; i++) {
    const e = m.vcpu.run();
    // `ring`: the coalesced writes queued during this KVM_RUN, drained first as a VMM does.
    if (ring)
      drainCoalesced(ring, (w) =>
        log.push(
          `coalesced ${w.pio ? "pio" : "mmio"} 0x${w.addr.toString(16)} ${w.len} ${hex(w.data, w.len)}`,
        ),
      );
    if (e.kind === "intr") continue;
    const line = describe(e);
    log.push(line);
    if (e.kind === "io" && e.direction === 0)
      fill(e.data, answers[`io 0x${e.port.toString(16)}`] ?? 0, e.size);
    if (e.kind === "mmio" && !e.isWrite)
      fill(e.data, answers[`mmio 0x${e.physAddr.toString(16)}`] ?? 0, e.len);
    if (stopOn.includes(e.kind) || stopOn.includes(line)) break;
  }
  return log;
}

function fill(d: Uint8Array, v: number, n: number): void {
  for (let i = 0; i < n; i++) d[i] = Math.floor(v / 2 ** (8 * i)) & 0xff;
}
