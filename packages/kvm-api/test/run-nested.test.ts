import { CPUID_D1_EAX_XSAVES, CpuidModel } from "@tskvm/cpu-x86";
import { ExitReason, F, l1WantsExit, VMCS_FIELDS, Vmcs, VmxStateError } from "@tskvm/vmx";
import { beforeAll, describe, expect, it } from "vitest";
import { cpuX86Features } from "../src/cpu-features.js";
import { PENDING_INIT } from "../src/devices/lapic.js";
import { Kvm } from "../src/index.js";
import { attachVmxBackend, nestedCaps } from "../src/run/index.js";
import { fromJsonable, restoreVm, saveVm, toJsonable, type VmSnapshot } from "../src/snapshot.js";
import { assemble, flat32, hasTool, type Machine, machine, realMode, runLog } from "./run-helpers.js";

const NASM = hasTool("nasm");
if (!NASM) console.warn("run-nested: nasm is not installed (Debian: apt-get install nasm); skipped");

/** Where nested-vmx.asm keeps its case byte, VMCS A and the L2 CPUID results. */
const CASE = 0x0ff0;
const VMCS_A = 0x21000;
const RESULT = 0x9000;

describe.skipIf(!NASM)("KVM_RUN: nested VMX (a guest hypervisor runs its own guest)", () => {
  let bin: Uint8Array;
  let bin32: Uint8Array;
  beforeAll(() => {
    bin = assemble("nested-vmx");
    bin32 = assemble("nested-vmx32");
  });

  /** A VM with nested VMX on (Kvm `nested`) and the supported CPUID table (it has VMX) set. */
  function nestedMachine(testCase: number, nested = true, irq = false): Machine {
    const m = machine({
      kvm: { nested },
      irqchip: irq,
      pit: irq,
      backend: { maxRunInstructions: 200_000 },
    });
    m.vcpu.setCpuid2(m.kvm.getSupportedCpuid());
    m.ram.set(bin, 0x1000);
    m.ram[CASE] = testCase;
    realMode(m, 0x1000);
    return m;
  }

  /** vmcs12 as L1's VMCLEAR left it in its memory (our VMCS layout, vmx/src/vmcs.ts). */
  function vmcs12(m: Machine): Vmcs {
    const v = new Vmcs();
    v.bytes.set(m.ram.subarray(VMCS_A, VMCS_A + 4096));
    return v;
  }

  it("KVM_GET_SUPPORTED_CPUID reports CPUID.1:ECX.VMX only with the nested option", () => {
    const leaf1 = (nested: boolean) =>
      nestedMachine(0, nested)
        .kvm.getSupportedCpuid()
        .find((e) => e.function === 1)!;
    expect(leaf1(true).ecx & 0x20).toBe(0x20);
    expect(leaf1(false).ecx & 0x20).toBe(0);
  });

  it("L1 VMLAUNCHes L2; CPUID and OUT 0x80 exit to L1, OUT 0x19 goes to userspace, HLT ends it", () => {
    const m = nestedMachine(0);
    expect(runLog(m)).toEqual([
      "io out 0x11 4 0a000000", // CPUID (10): L1 emulates it with its own CPUID
      "io out 0x19 1 77", // not in L1's I/O bitmap: L0 handles L2's OUT itself
      "io out 0x11 4 1e000000", // I/O instruction (30) for port 0x80
      "io out 0x12 4 40008000", // qualification: port 0x80, 1 byte, OUT, immediate (SDM Table 28-5)
      "io out 0x13 1 42", // L2's AL, read by L1 from the shared registers
      // REP OUTSB to port 0x81: one exit per iteration (qualification: string, REP, port 0x81);
      // L1 emulates each iteration and leaves RIP on the instruction until RCX is 0.
      "io out 0x11 4 1e000000",
      "io out 0x12 4 30008100",
      "io out 0x13 1 61",
      "io out 0x11 4 1e000000",
      "io out 0x12 4 30008100",
      "io out 0x13 1 62",
      // REP OUTSB to port 0x19: not L1's, L0 emulates it for L2 (one userspace exit per byte).
      "io out 0x19 1 61",
      "io out 0x19 1 62",
      "io out 0x11 4 0c000000", // HLT (12)
      "io out 0x18 1 dd", // L1: VMCLEAR, VMXOFF succeeded
      "hlt",
    ]);
    // L2's CPUID(0) vendor came through L1's CPUID (L0's table).
    const vendor = new TextDecoder().decode(m.ram.subarray(RESULT, RESULT + 12));
    const t = new Uint32Array(4);
    m.vcpu.cpuid(0, 0, t);
    const expected = new TextDecoder().decode(new Uint8Array(new Uint32Array([t[1]!, t[3]!, t[2]!]).buffer));
    expect(vendor).toBe(expected);
    const dv = new DataView(m.ram.buffer);
    expect(dv.getUint32(RESULT + 12, true)).toBe(0); // RCX after REP OUTSB
    expect(dv.getBigUint64(RESULT + 16, true)).toBe(2n); // VMREAD to memory: CPUID's length
    expect(dv.getBigUint64(RESULT + 24, true)).toBe(BigInt(VMCS_A)); // VMPTRST
    // vmcs12 in L1's memory holds the last exit: HLT at L2's HLT instruction, 1 byte long.
    const v = vmcs12(m);
    expect(v.get32(F.VM_EXIT_REASON)).toBe(ExitReason.HLT);
    expect(v.get32(F.VM_EXIT_INSTRUCTION_LEN)).toBe(1);
    expect(m.ram[Number(v.get64(F.GUEST_RIP))]).toBe(0xf4);
    expect(v.launched).toBe(false); // VMCLEAR
    expect(v.get64(F.GUEST_RSP)).toBe(0x24000n);
    // Back in L1: no longer in L2, the final HLT is L1's (long mode, CPL 0).
    expect(m.backend.nested.l2Active).toBe(false);
    expect(m.vcpu.getSregs().cs.selector).toBe(0x18);
    expect(m.backend.nested.unit.inVmxOperation).toBe(false);
  });

  it("SDM 31.3 VMXON: #UD when CR4.VMXE = 0", () => {
    expect(runLog(nestedMachine(1))).toEqual(["io out 0x15 1 06", "hlt"]);
  });

  it("SDM 31.3: a VMX instruction's memory operand faults in L1 (#PF with CR2, #GP non-canonical)", () => {
    const pf = nestedMachine(11);
    expect(runLog(pf)).toEqual(["io out 0x15 1 0e", "hlt"]);
    expect(pf.vcpu.getSregs().cr2).toBe(0x800000n);
    expect(runLog(nestedMachine(12))).toEqual(["io out 0x15 1 0d", "hlt"]);
  });

  it("SDM 31.3: VMX instructions are #UD in compatibility mode", () => {
    expect(runLog(nestedMachine(13))).toEqual(["io out 0x15 1 06", "hlt"]);
  });

  it("SDM 31.3 VMPTRLD: a region with a foreign revision id is VMfailValid(11)", () => {
    expect(runLog(nestedMachine(2))).toEqual(["io out 0x16 4 40000000", "io out 0x17 4 0b000000", "hlt"]);
  });

  it("SDM 31.3: VMLAUNCH of a launched VMCS is VMfailValid(4), VMRESUME of a clear one VMfailValid(5)", () => {
    const log = runLog(nestedMachine(3));
    expect(log.slice(-7)).toEqual([
      "io out 0x11 4 0c000000",
      "io out 0x16 4 40000000",
      "io out 0x17 4 04000000",
      "io out 0x16 4 40000000",
      "io out 0x17 4 05000000",
      "io out 0x18 1 dd",
      "hlt",
    ]);
  });

  it("SDM 27.2.1: reserved pin-based control bits in vmcs12 are VMfailValid(7)", () => {
    expect(runLog(nestedMachine(4))).toEqual(["io out 0x16 4 40000000", "io out 0x17 4 07000000", "hlt"]);
  });

  it("SDM 27.2.2: a 64-bit host without CR4.PAE in vmcs12 is VMfailValid(8)", () => {
    expect(runLog(nestedMachine(5))).toEqual(["io out 0x16 4 40000000", "io out 0x17 4 08000000", "hlt"]);
  });

  it("SDM 27.3.1/27.8: guest RFLAGS bit 1 clear is a VM-entry failure exit (0x80000021) to L1's host RIP", () => {
    const m = nestedMachine(6);
    expect(runLog(m)).toEqual(["io out 0x11 4 21000080", "io out 0x18 1 dd", "hlt"]);
    expect(m.backend.nested.l2Active).toBe(false);
  });

  it("SDM 26.2/28.2.2: an interrupt for L1 with external-interrupt exiting exits L2 with its vector", () => {
    const m = nestedMachine(8, true, true);
    expect(runLog(m, {}, 100, ["io out 0x18 1 dd"])).toEqual([
      "io out 0x11 4 01000000",
      "io out 0x12 4 20000080", // valid, external interrupt, vector 0x20 (acknowledged on exit)
      "io out 0x18 1 dd",
    ]);
    expect(m.backend.nested.l2Active).toBe(false);
  });

  it("guest input is hostile: random VMWRITEs before VMLAUNCH end in architected outcomes, never a host error", () => {
    // mulberry32: reproducible.
    let seed = 0x6e657374;
    const rnd = () => {
      seed = (seed + 0x6d2b79f5) | 0;
      let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
    // Mostly fields L1's VMCS has (the others just VMfailValid(12)), a few it does not.
    const caps = nestedCaps(40);
    const encs = VMCS_FIELDS.filter((d) => caps.fieldSupported(d.enc) || d.enc % 7 === 0).map((d) => d.enc);
    const values = (): bigint => {
      switch (Math.floor(rnd() * 5)) {
        case 0:
          return 0n;
        case 1:
          return 0xffffffffffffffffn;
        case 2:
          return 1n << BigInt(Math.floor(rnd() * 64));
        case 3:
          return BigInt(Math.floor(rnd() * 0x400000)); // inside or just past RAM
        default:
          return (BigInt(Math.floor(rnd() * 2 ** 32)) << 32n) | BigInt(Math.floor(rnd() * 2 ** 32));
      }
    };
    const outcomes = new Map<string, number>();
    for (let iter = 0; iter < (process.env.TSKVM_LONG ? 2000 : 120); iter++) {
      const m = nestedMachine(7);
      const vmcs01 = m.backend.unit.currentPointer;
      const dv = new DataView(m.ram.buffer);
      const n = 1 + Math.floor(rnd() * (process.env.TSKVM_LONG ? 24 : 4));
      dv.setUint32(0x7000, n, true);
      for (let k = 0; k < n; k++) {
        dv.setBigUint64(0x7008 + 16 * k, BigInt(encs[Math.floor(rnd() * encs.length)]!), true);
        dv.setBigUint64(0x7010 + 16 * k, values(), true);
      }
      const log = runLog(m, {}, 40, ["hlt", "shutdown", "fail-entry", "internal-error", "io out 0x18 1 dd"]);
      const last = log.at(-1) ?? "none";
      const key = log.slice(-3).join("|");
      outcomes.set(key, (outcomes.get(key) ?? 0) + 1);
      // "shutdown" is architected too: a VMX abort (an MSR area L1 made unusable at exit, SDM 28.7)
      // or L1 faulting on a host state it chose (HOST_CR3 = 2).
      // L0's own VMCS bookkeeping stays consistent: vmcs01 is current whenever L1 runs.
      if (!m.backend.nested.l2Active) expect(m.backend.unit.currentPointer).toBe(vmcs01);
      expect(last).not.toMatch(/^internal-error 4/); // never an exit L0 does not know
    }
    // The mix includes VMfailValid for controls and host state and successful runs of L2.
    const keys = [...outcomes.keys()].join("\n");
    expect(keys).toMatch(/io out 0x17 4 07000000/);
    expect(keys).toMatch(/io out 0x17 4 08000000/);
    expect(keys).toMatch(/io out 0x11 4 21000080\|io out 0x18 1 dd/); // entry failure, bad guest state
    expect(keys).toMatch(/io out 0x11 4 0c000000\|io out 0x18 1 dd/); // L2 ran to its HLT
  });

  it("EPT on EPT: L2's guest-physical addresses go through L1's EPT; its violations exit to L1", () => {
    const m = nestedMachine(9);
    const log = runLog(m);
    expect(log).toEqual([
      "io out 0x11 4 30000000", // EPT violation (48)
      log[1], // qualification, checked below
      "io out 0x14 4 10002000", // guest-physical address 0x200010
      "io out 0x18 1 dd",
      "hlt",
    ]);
    // SDM Table 28-7: a data read (bit 0), not present (bits 5:3 = 0), linear address valid (7) and
    // the access was to the translated address, not a paging structure (8).
    const qual = Number.parseInt(log[1]!.split(" ")[4]!.match(/../g)!.reverse().join(""), 16);
    expect(qual & 0x1bf).toBe(0x181);
    // L2's store to its GPA 6 MiB landed at L1's 2 MiB (L1's EPT maps one to the other).
    expect(new DataView(m.ram.buffer).getUint32(0x200000, true)).toBe(0x600dcafe);
    // vmcs12 is still current (cached by L1's VMX unit; no VMCLEAR in this case).
    const v = m.backend.nested.unit.vmcs;
    expect(v.get64(F.GUEST_PHYSICAL_ADDRESS)).toBe(0x200010n);
    expect(v.get64(F.GUEST_LINEAR_ADDRESS)).toBe(0x200010n);
  });

  it("SDM 26.2/28.2.1: a #PF L1 intercepts exits with the linear address, CR2 untouched", () => {
    const m = nestedMachine(16);
    const cr2 = m.vcpu.getSregs().cr2;
    expect(runLog(m)).toEqual([
      "io out 0x11 4 00000000", // exception or NMI (0)
      "io out 0x12 4 45238100", // qualification: the linear address 0x812345
      "io out 0x14 4 0e0b0080", // valid, hardware exception, error code delivered, vector 14
      "io out 0x18 1 dd",
      "hlt",
    ]);
    expect(m.backend.nested.unit.vmcs.get32(F.VM_EXIT_INTR_ERROR_CODE)).toBe(0); // not present, read, CPL 0
    expect(m.vcpu.getSregs().cr2).toBe(cr2);
  });

  it("SDM 24.8: L2 clearing CR4.VMXE (a VMX fixed-1 bit L1 does not intercept) is #GP in L2", () => {
    expect(runLog(nestedMachine(10))).toEqual([
      "io out 0x15 1 0d", // L2's #GP handler (it shares L1's IDT); port 0x15 is not L1's
      "io out 0x11 4 0c000000", // the handler's HLT exits to L1
      "io out 0x18 1 dd",
      "hlt",
    ]);
  });

  it("SDM 24.8/26.2: INIT exits from L2 to L1 and stays blocked in VMX root operation", () => {
    const m = nestedMachine(0, true, true);
    const stop = ["hlt", "shutdown", "internal-error", "io out 0x19 1 77"];
    expect(runLog(m, {}, 40, stop).at(-1)).toBe("io out 0x19 1 77"); // L2 is running
    m.vcpu.lapic!.pendingEvents |= PENDING_INIT;
    expect(runLog(m, {}, 40, [...stop, "io out 0x1f 1 ee"])).toEqual([
      "io out 0x11 4 03000000", // INIT signal (3), reflected to L1
      "io out 0x1f 1 ee", // the test's L1 does not handle it
    ]);
    expect(m.backend.nested.l2Active).toBe(false);
    // L1 runs on in VMX root operation: the INIT is latched, not a reset.
    expect(m.vcpu.lapic!.pendingEvents & PENDING_INIT).toBe(PENDING_INIT);
    expect(m.vcpu.getSregs().cs.selector).toBe(0x18);
  });

  it("a 32-bit guest hypervisor: 32-bit operands, a 32-bit host and L2", () => {
    const m = machine({ kvm: { nested: true } });
    m.vcpu.setCpuid2(m.kvm.getSupportedCpuid());
    m.ram.set(bin32, 0x1000);
    flat32(m, 0x1000);
    expect(runLog(m)).toEqual([
      "io out 0x11 4 0a000000",
      "io out 0x11 4 1e000000",
      "io out 0x12 4 40008000", // VMREAD to a 32-bit memory operand
      "io out 0x11 4 0c000000",
      "io out 0x18 1 dd",
      "hlt",
    ]);
    const t = new Uint32Array(4);
    m.vcpu.cpuid(0, 0, t);
    expect(new DataView(m.ram.buffer).getUint32(0x9000, true)).toBe(t[1]);
    expect(m.backend.nested.unit.inVmxOperation).toBe(false);
  });

  it("SDM 31.3: outside 64-bit mode a memory operand past its segment's limit is #GP(0)", () => {
    const m = machine({ kvm: { nested: true } });
    m.vcpu.setCpuid2(m.kvm.getSupportedCpuid());
    m.ram.set(bin32, 0x1000);
    m.ram[CASE] = 1;
    flat32(m, 0x1000);
    expect(runLog(m)).toEqual(["io out 0x15 1 0d", "hlt"]);
  });

  it("guest input is hostile: random L2 code under L1 (every exception intercepted) never breaks L0", () => {
    let seed = 0x6c32;
    const rnd = () => {
      seed = (Math.imul(seed, 1103515245) + 12345) | 0;
      return (seed >>> 16) & 0xff;
    };
    const reasons = new Map<string, number>();
    for (let iter = 0; iter < (process.env.TSKVM_LONG ? 1000 : 60); iter++) {
      const m = nestedMachine(14);
      const vmcs01 = m.backend.unit.currentPointer;
      for (let i = 0; i < 64; i++) m.ram[0x50000 + i] = rnd();
      const log = runLog(m, {}, 40, ["hlt", "shutdown", "fail-entry", "internal-error", "io out 0x1f 1 ee"]);
      const first = log.find((l) => l.startsWith("io out 0x11")) ?? log.at(-1) ?? "none";
      reasons.set(first, (reasons.get(first) ?? 0) + 1);
      if (!m.backend.nested.l2Active) expect(m.backend.unit.currentPointer).toBe(vmcs01);
      expect(log.at(-1) ?? "").not.toMatch(/^internal-error 4/);
    }
    // Exceptions (0) and other exits of L2 were reflected to L1's handler.
    expect([...reasons.keys()].join("\n")).toMatch(/io out 0x11 4 00000000/);
  });

  it("SDM 26.3: XSAVES in L2 without enable XSAVES/XRSTORS is #UD (reflected to L1)", () => {
    // A CPU and guest CPUID with XSAVES, so the instruction reaches the VMX intercept.
    const model = new CpuidModel();
    model.xsaveExtensions |= CPUID_D1_EAX_XSAVES;
    const m = machine({
      kvm: { nested: true, cpu: cpuX86Features(model) },
      backend: { maxRunInstructions: 200_000 },
    });
    m.vcpu.setCpuid2(m.kvm.getSupportedCpuid());
    m.ram.set(bin, 0x1000);
    m.ram[CASE] = 14;
    realMode(m, 0x1000);
    // L2: CR4.OSXSAVE = 1, XSAVES [0x60000] of x87 | SSE, HLT (nasm of mov rax, cr4 / bts rax, 18 /
    // mov cr4, rax / xor edx, edx / mov eax, 3 / mov ebx, 0x60000 / xsaves [rbx] / hlt).
    const l2 = "0f20e0480fbae8120f22e031d2b803000000bb000006000fc72bf4";
    m.ram.set(
      Uint8Array.from(l2.match(/../g)!, (h) => Number.parseInt(h, 16)),
      0x50000,
    );
    // L1's vmcs12 leaves "enable XSAVES/XRSTORS" 0: #UD in L2, which L1 intercepts (every exception).
    expect(runLog(m, {}, 40, ["hlt", "shutdown", "internal-error", "io out 0x18 1 dd"])).toEqual([
      "io out 0x11 4 00000000",
      "io out 0x12 4 00000000",
      "io out 0x14 4 06030080", // valid, hardware exception, vector 6
      "io out 0x18 1 dd",
    ]);
    // The XSAVES never ran: the area is untouched.
    expect(m.ram.subarray(0x60000, 0x60240).every((b) => b === 0)).toBe(true);
  });

  it("an XSAVES exit from L2 (reason 63) is L1's: l1WantsExit reflects it", () => {
    const v12 = new Vmcs();
    const e = { reason: ExitReason.XSAVES, qualification: 0n, intrInfo: 0, intrErrorCode: 0, gpr: () => 0n };
    expect(l1WantsExit(v12, { read: () => {}, write: () => {} }, e)).toBe(true);
    expect(l1WantsExit(v12, { read: () => {}, write: () => {} }, { ...e, reason: ExitReason.XRSTORS })).toBe(
      true,
    );
  });

  it("KVM_GET/SET_SREGS while L2 runs show L2's own CR0, not the read shadow L1 gave it", () => {
    const m = nestedMachine(15);
    const stop = ["hlt", "shutdown", "internal-error", "io out 0x19 1 77"];
    expect(runLog(m, {}, 40, stop).at(-1)).toBe("io out 0x19 1 77"); // L2 is running
    expect(m.backend.nested.l2Active).toBe(true);
    const s = m.vcpu.getSregs();
    expect(s.cr0 & 8n).toBe(0n); // L2's TS; L1's shadow says 1
    expect(s.cr4 & 0x2000n).toBe(0x2000n); // L2's CR4.VMXE (from vmcs12)
    // Userspace writes the registers back (as a VMM does after an exit): L2 keeps its CR0 and
    // L1's shadow stays in force.
    m.vcpu.setSregs(s);
    m.vcpu.setRegs({ ...m.vcpu.getRegs(), rbx: 0x1234n });
    m.backend.requestExit();
    expect(m.vcpu.run().kind).toBe("intr"); // the registers are loaded, L2 has not run
    const v02 = m.backend.unit.vmcs;
    expect(v02.get64(F.GUEST_CR0) & 8n).toBe(0n);
    expect(v02.get64(F.CR0_READ_SHADOW) & 8n).toBe(8n);
    expect(runLog(m).slice(-3)).toEqual(["io out 0x11 4 0c000000", "io out 0x18 1 dd", "hlt"]);
  });

  /**
   * Runs case 0 to `at`, completes that exit (as a VMM does before saving: KVM_RUN with
   * immediate_exit), snapshots through JSON, restores into a fresh VM and backend, and returns the
   * rest of the run.
   */
  function snapshotAt(at: string): { before: string[]; after: string[]; restored: Machine } {
    const m = nestedMachine(0);
    const before = runLog(m, {}, 40, ["hlt", "shutdown", "internal-error", at]);
    m.backend.requestExit();
    expect(m.vcpu.run().kind).toBe("intr");
    const json = JSON.stringify(toJsonable(saveVm(m.vm)));
    const kvm = new Kvm({ nested: true });
    const ram = m.ram.slice().buffer;
    const vm = restoreVm(kvm, fromJsonable<VmSnapshot>(JSON.parse(json)), () => ram, {
      clock: "deterministic",
    });
    const vcpu = vm.vcpus[0]!;
    const backend = attachVmxBackend(vcpu, { maxRunInstructions: 200_000 });
    const restored: Machine = { kvm, vm, vcpu, ram: new Uint8Array(ram), backend };
    return { before, after: runLog(restored), restored };
  }

  const FULL_RUN = [
    "io out 0x11 4 0a000000",
    "io out 0x19 1 77",
    "io out 0x11 4 1e000000",
    "io out 0x12 4 40008000",
    "io out 0x13 1 42",
  ];

  it("KVM_GET/SET_NESTED_STATE: a snapshot while L2 runs resumes L2 under L1 in a new VM", () => {
    const { before, after, restored } = snapshotAt("io out 0x19 1 77");
    expect(before).toEqual(FULL_RUN.slice(0, 2));
    expect(after.slice(0, 3)).toEqual(FULL_RUN.slice(2));
    expect(after.slice(-3)).toEqual(["io out 0x11 4 0c000000", "io out 0x18 1 dd", "hlt"]);
    expect(restored.backend.nested.l2Active).toBe(false);
  });

  it("KVM_GET/SET_NESTED_STATE: a snapshot while L1 is in VMX root operation keeps its VMX state", () => {
    const { before, after } = snapshotAt("io out 0x11 4 0a000000");
    expect(before).toEqual(FULL_RUN.slice(0, 1));
    expect(after.slice(0, 4)).toEqual(FULL_RUN.slice(1));
    expect(after.slice(-3)).toEqual(["io out 0x11 4 0c000000", "io out 0x18 1 dd", "hlt"]);
  });

  it("KVM_SET_NESTED_STATE validates: bad unit state or vmcs12 controls are refused, nothing changes", () => {
    const m = nestedMachine(0);
    runLog(m, {}, 40, ["io out 0x19 1 77"]);
    m.backend.requestExit();
    m.vcpu.run();
    const good = m.vcpu.getNestedState()!;
    expect(good.unit.nonRoot).toBe(true);
    const fresh = nestedMachine(0);
    expect(() => fresh.vcpu.setNestedState({ ...good, unit: { ...good.unit, vmcs: "zz" } })).toThrow(
      VmxStateError,
    );
    // vmcs12 with reserved pin-based control bits: VM entry would refuse it, so does the restore.
    const bad = new Vmcs();
    bad.bytes.set(Uint8Array.from(good.unit.vmcs.match(/../g)!, (h) => Number.parseInt(h, 16)));
    bad.set32(F.PIN_BASED_VM_EXEC_CONTROL, 0xffffffff);
    const hex = Array.from(bad.bytes, (b) => b.toString(16).padStart(2, "0")).join("");
    expect(() => fresh.vcpu.setNestedState({ ...good, unit: { ...good.unit, vmcs: hex } })).toThrow(/27.2.1/);
    expect(fresh.backend.nested.l2Active).toBe(false);
    expect(fresh.vcpu.getNestedState()).toBeNull();
    // Without nested VMX for the vCPU there is nothing to restore into.
    expect(() => nestedMachine(0, false).vcpu.setNestedState(good)).toThrow(VmxStateError);
  });

  it("without nested VMX: IA32_FEATURE_CONTROL's VMX bit is #GP and the VMX MSRs do not exist", () => {
    const m = nestedMachine(0, false);
    expect(runLog(m)).toEqual(["io out 0x15 1 0d", "hlt"]);
  });
});
