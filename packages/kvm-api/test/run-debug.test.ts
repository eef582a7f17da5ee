// KVM_SET_GUEST_DEBUG and KVM_TRANSLATE on a real guest (guests/programs/guest-debug.asm).
import { describe, expect, it } from "vitest";
import { Errno } from "../src/errors.js";
import {
  KVM_GUESTDBG_BLOCKIRQ,
  KVM_GUESTDBG_ENABLE,
  KVM_GUESTDBG_INJECT_BP,
  KVM_GUESTDBG_SINGLESTEP,
  KVM_GUESTDBG_USE_HW_BP,
  KVM_GUESTDBG_USE_SW_BP,
  KvmError,
  type KvmExit,
  type Vcpu,
} from "../src/index.js";
import { attachVmxBackend } from "../src/run/index.js";
import * as I from "../src/uapi/ioctl.js";
import { KvmFds } from "../src/uapi/kvm-fd.js";
import { StructView } from "../src/uapi/layout.js";
import * as T from "../src/uapi/structs.js";
import {
  assemble,
  flat32,
  hasTool,
  describe as line,
  type Machine,
  machine,
  realMode,
} from "./run-helpers.js";

const haveNasm = hasTool("nasm");
const prog = haveNasm ? assemble("guest-debug") : new Uint8Array();

function boot(rip = 0x1000): Machine {
  const m = machine();
  m.ram.set(prog, 0x1000);
  flat32(m, rip);
  return m;
}

/** The next exit that is not KVM_EXIT_INTR. */
function next(m: Machine): KvmExit {
  for (;;) {
    const e = m.vcpu.run();
    if (e.kind !== "intr") return e;
  }
}

function debugExit(e: KvmExit) {
  if (e.kind !== "debug") throw new Error(`expected a debug exit, got ${line(e)}`);
  return e;
}

function setDebug(m: Machine, control: number, dr: bigint[] = []): void {
  const debugreg = [0n, 0n, 0n, 0n, 0n, 0n, 0n, 0n];
  dr.forEach((v, i) => {
    debugreg[i] = v;
  });
  m.vcpu.setGuestDebug({ control, debugreg });
}

const rip = (m: Machine) => m.vcpu.getRegs().rip;

describe.skipIf(!haveNasm)("KVM_SET_GUEST_DEBUG", () => {
  it("SINGLESTEP: KVM_EXIT_DEBUG after every instruction, exception 1, DR6.BS, guest TF untouched", () => {
    const m = boot();
    setDebug(m, KVM_GUESTDBG_ENABLE | KVM_GUESTDBG_SINGLESTEP);
    const pcs: bigint[] = [];
    for (let i = 0; i < 3; i++) {
      const e = debugExit(next(m));
      expect(e.exception).toBe(1);
      expect(e.dr6).toBe(0xffff4ff0n);
      expect(e.dr7).toBe(0x400n);
      pcs.push(e.pc);
    }
    expect(pcs).toEqual([0x1005n, 0x100an, 0x100cn]);
    expect(m.vcpu.getRegs().rax).toBe(3n);
    expect(m.vcpu.getRegs().rflags & 0x100n).toBe(0n);
    // OUT goes to userspace first; its completion on the next KVM_RUN is the step.
    expect(line(next(m))).toBe("io out 0x10 1 03");
    expect(debugExit(next(m)).pc).toBe(0x100en);
    expect(rip(m)).toBe(0x100en);
  });

  it("SINGLESTEP off again: the guest runs freely", () => {
    const m = boot();
    setDebug(m, KVM_GUESTDBG_ENABLE | KVM_GUESTDBG_SINGLESTEP);
    expect(debugExit(next(m)).pc).toBe(0x1005n);
    setDebug(m, 0);
    expect(line(next(m))).toBe("io out 0x10 1 03");
  });

  it("USE_SW_BP: INT3 exits with exception 3 at the INT3; without it #BP reaches the guest", () => {
    const m = boot();
    setDebug(m, KVM_GUESTDBG_ENABLE | KVM_GUESTDBG_USE_SW_BP);
    expect(line(next(m))).toBe("io out 0x10 1 03");
    const e = debugExit(next(m));
    expect(e.exception).toBe(3);
    expect(e.pc).toBe(0x100en);
    expect(rip(m)).toBe(0x100en);
    // A debugger that removed its breakpoint moves on past it.
    m.vcpu.setRegs({ ...m.vcpu.getRegs(), rip: 0x100fn });
    expect(line(next(m))).toBe("io out 0x11 4 11111111");

    // No guest debugging: the #BP is the guest's, and with no IDT it ends in a triple fault.
    const g = boot();
    expect(line(next(g))).toBe("io out 0x10 1 03");
    expect(line(next(g))).toBe("shutdown");
  });

  it("INJECT_BP re-delivers the #BP to the guest (a software exception past the INT3)", () => {
    const m = boot();
    setDebug(m, KVM_GUESTDBG_ENABLE | KVM_GUESTDBG_USE_SW_BP);
    next(m);
    expect(debugExit(next(m)).exception).toBe(3);
    setDebug(m, KVM_GUESTDBG_INJECT_BP);
    // Only one inject may be queued (EBUSY, as KVM with an exception pending).
    expect(() => setDebug(m, KVM_GUESTDBG_INJECT_BP)).toThrow(/EBUSY/);
    // The guest has no IDT: the delivered #BP ends in a triple fault.
    expect(line(next(m))).toBe("shutdown");
  });

  it("USE_HW_BP: an execute breakpoint exits with B0 in DR6; the guest keeps its own DR0/DR7", () => {
    const m = boot(0x1100);
    setDebug(m, KVM_GUESTDBG_ENABLE | KVM_GUESTDBG_USE_HW_BP, [0x1200n, 0n, 0n, 0n, 0n, 0n, 0n, 0x1n]);
    expect(line(next(m))).toBe("io out 0x11 4 11111111");
    expect(line(next(m))).toBe("io out 0x12 4 00040000");
    const e = debugExit(next(m));
    expect(e.exception).toBe(1);
    expect(e.pc).toBe(0x1200n);
    expect(e.dr6 & 0xfn).toBe(1n);
    expect(e.dr7).toBe(0x401n);
    expect(rip(m)).toBe(0x1200n);
    // The breakpoint fires again on resume until RF is set (SDM 18.3.1.1), then the guest runs on.
    expect(debugExit(next(m)).pc).toBe(0x1200n);
    m.vcpu.setRegs({ ...m.vcpu.getRegs(), rflags: m.vcpu.getRegs().rflags | 0x10000n });
    expect(line(next(m))).toBe("io out 0x13 1 00");
    // Switched off, the guest's own DR0 is back in the CPU.
    setDebug(m, 0);
    next(m);
    expect(m.backend.cpu.dr[0]).toBe(0x11111111);
    expect(m.backend.cpu.dr7 & 0xff).toBe(0);
  });

  it("USE_HW_BP with SINGLESTEP: steps stop at the breakpoint", () => {
    const m = boot(0x1200);
    setDebug(m, KVM_GUESTDBG_ENABLE | KVM_GUESTDBG_USE_HW_BP | KVM_GUESTDBG_SINGLESTEP, [
      0x1205n,
      0n,
      0n,
      0n,
      0n,
      0n,
      0n,
      0x2n,
    ]);
    const e = debugExit(next(m));
    expect([e.pc, e.dr6 & 0x400fn]).toEqual([0x1205n, 0x4000n]);
    const b = debugExit(next(m));
    expect([b.pc, b.dr6 & 0x400fn]).toEqual([0x1205n, 1n]);
  });

  it("USE_HW_BP: a data watchpoint (R/W = 01, LEN = 4) exits after the write with B1 in DR6", () => {
    const m = boot(0x1300);
    // DR1 = 0x20004; DR7: L1 (bit 2), R/W1 = 01 (bits 21:20, writes), LEN1 = 11 (bits 23:22, 4 bytes).
    const dr7 = (1n << 2n) | (1n << 20n) | (3n << 22n);
    setDebug(m, KVM_GUESTDBG_ENABLE | KVM_GUESTDBG_USE_HW_BP, [0n, 0x20004n, 0n, 0n, 0n, 0n, 0n, dr7]);
    // REP STOSD zeroes 0x20000..0x22fff: the trap follows the second iteration (SDM 18.3.1.2), RIP
    // still on the REP STOSD with two of the 3072 dwords stored.
    const e = debugExit(next(m));
    expect(e.exception).toBe(1);
    expect(e.dr6 & 0xfn).toBe(2n);
    expect(e.dr7).toBe(dr7 | 0x400n);
    const regs = m.vcpu.getRegs();
    expect([regs.rcx, regs.rdi]).toEqual([3n * 1024n - 2n, 0x20008n]);
    expect(e.pc).toBe(regs.rip);
    // A data breakpoint is a trap: nothing re-fires on resume. The next write to 0x20004 is the PDE
    // store `mov dword [0x20004], 0x22007`; the exit comes with the value already in memory.
    const f = debugExit(next(m));
    expect(f.dr6 & 0xfn).toBe(2n);
    expect(new DataView(m.ram.buffer).getUint32(0x20004, true)).toBe(0x22007);
    expect(m.vcpu.getRegs().rcx).toBe(0n);
    // A read of the watched dword does not trap (R/W = 01): the guest runs to its OUT 0x14.
    expect(line(next(m))).toBe("io out 0x14 1 11");
  });

  it("hostile structs: unknown control bits, wrong debugreg count, DR7 above 32 bits -> EINVAL", () => {
    const m = boot();
    const bad = (control: number, debugreg: bigint[]) => {
      try {
        m.vcpu.setGuestDebug({ control, debugreg });
      } catch (e) {
        return e instanceof KvmError ? e.code : "other";
      }
      return "ok";
    };
    const z = [0n, 0n, 0n, 0n, 0n, 0n, 0n, 0n];
    expect(bad(KVM_GUESTDBG_ENABLE | 0x4, z)).toBe("EINVAL");
    expect(bad(0x80000000, z)).toBe("EINVAL");
    expect(bad(-1, z)).toBe("EINVAL");
    expect(bad(KVM_GUESTDBG_ENABLE, [0n])).toBe("EINVAL");
    expect(bad(KVM_GUESTDBG_ENABLE, [...z.slice(0, 7), -1n])).toBe("EINVAL");
    expect(bad(KVM_GUESTDBG_ENABLE | KVM_GUESTDBG_USE_HW_BP, [...z.slice(0, 7), 1n << 32n])).toBe("EINVAL");
    expect(bad(KVM_GUESTDBG_ENABLE | KVM_GUESTDBG_BLOCKIRQ, z)).toBe("ok");
    // Without ENABLE the setting reads back as off.
    expect(bad(KVM_GUESTDBG_SINGLESTEP, z)).toBe("ok");
    expect(m.vcpu.getGuestDebug().control).toBe(0);
    expect(line(next(m))).toBe("io out 0x10 1 03");
  });
});

describe.skipIf(!haveNasm)("KVM_TRANSLATE", () => {
  it("through the guest's 32-bit paging: address, valid, writeable (CR0.WP), usermode; no A/D writes", () => {
    const m = boot(0x1300);
    // Paging off: linear = physical.
    expect(m.vcpu.translate(0x123456n)).toMatchObject({ physicalAddress: 0x123456n, valid: true });
    expect(line(next(m))).toBe("io out 0x14 1 11");
    const dv = new DataView(m.ram.buffer);
    const pteBefore = dv.getUint32(0x22000, true);
    const t = (a: bigint) => {
      const r = m.vcpu.translate(a);
      return [r.physicalAddress, r.valid, r.writeable, r.usermode];
    };
    expect(t(0x400123n)).toEqual([0x5123n, true, false, true]);
    expect(t(0x401ffcn)).toEqual([0x6ffcn, true, true, true]);
    expect(t(0x1000n)).toEqual([0x1000n, true, true, false]);
    expect(t(0x402000n)).toEqual([0xffffffffffffffffn, false, false, false]);
    expect(t(0x800000n)).toEqual([0xffffffffffffffffn, false, false, false]);
    expect(dv.getUint32(0x22000, true)).toBe(pteBefore);
    expect(pteBefore & 0x60).toBe(0);
    expect(() => m.vcpu.translate(-1n)).toThrow(/EINVAL/);
  });
});

describe.skipIf(!haveNasm)("uapi: KVM_SET_GUEST_DEBUG and KVM_TRANSLATE bytes", () => {
  it("struct kvm_guest_debug (72 bytes) and kvm_translation (24 bytes) at Linux's offsets", () => {
    expect(T.kvm_guest_debug.size).toBe(72);
    expect(T.kvm_translation.size).toBe(24);
    // Linux: _IOW(KVMIO, 0x9b, struct kvm_guest_debug), _IOWR(KVMIO, 0x85, struct kvm_translation).
    expect(I.KVM_SET_GUEST_DEBUG >>> 0).toBe(0x4048ae9b);
    expect(I.KVM_TRANSLATE >>> 0).toBe(0xc018ae85);
  });

  it("ioctls drive the vCPU: single-step exit in kvm_run, translation written back, EINVAL", () => {
    const k = new KvmFds();
    const vmFd = k.ioctl(k.openKvm(), I.KVM_CREATE_VM, 0);
    const ram = new ArrayBuffer(4 << 20);
    const mem = new StructView(T.kvm_userspace_memory_region);
    mem.set("memory_size", 4 << 20);
    mem.set("userspace_addr", k.map(ram));
    expect(k.ioctl(vmFd, I.KVM_SET_USER_MEMORY_REGION, mem.bytes)).toBe(0);
    const fd = k.ioctl(vmFd, I.KVM_CREATE_VCPU, 0);
    const vcpu = (k as unknown as { fds: Map<number, { vcpu?: Vcpu }> }).fds.get(fd)!.vcpu!;
    const m: Machine = {
      kvm: k.kvm,
      vm: vcpu.vm,
      vcpu,
      ram: new Uint8Array(ram),
      backend: attachVmxBackend(vcpu),
    };
    m.ram.set(prog, 0x1000);
    flat32(m, 0x1000);

    const gd = new StructView(T.kvm_guest_debug);
    gd.set("control", KVM_GUESTDBG_ENABLE | KVM_GUESTDBG_SINGLESTEP);
    expect(k.ioctl(fd, I.KVM_SET_GUEST_DEBUG, gd.bytes)).toBe(0);
    expect(k.ioctl(fd, I.KVM_RUN, 0)).toBe(0);
    const rv = new StructView(T.kvm_run, k.mmapRun(fd));
    expect(rv.num("exit_reason")).toBe(4);
    expect([rv.num("debug.arch.exception"), rv.big("debug.arch.pc"), rv.big("debug.arch.dr6")]).toEqual([
      1,
      0x1005n,
      0xffff4ff0n,
    ]);
    gd.set("control", 0x4);
    expect(k.ioctl(fd, I.KVM_SET_GUEST_DEBUG, gd.bytes)).toBe(-Errno.EINVAL);
    gd.set("control", 0);
    expect(k.ioctl(fd, I.KVM_SET_GUEST_DEBUG, gd.bytes)).toBe(0);

    m.vcpu.setRegs({ ...m.vcpu.getRegs(), rip: 0x1300n });
    expect(line(next(m))).toBe("io out 0x14 1 11");
    const tr = new StructView(T.kvm_translation);
    tr.set("linear_address", 0x401010n);
    expect(k.ioctl(fd, I.KVM_TRANSLATE, tr.bytes)).toBe(0);
    expect([...tr.bytes]).toEqual([
      0x10, 0x10, 0x40, 0, 0, 0, 0, 0, 0x10, 0x60, 0, 0, 0, 0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0,
    ]);
  });
});

describe("a guest single-stepping itself with RFLAGS.TF", () => {
  // Real mode at 0x1000: TF on (pushf; pop ax; or ax, 0x100; push ax; popf), cpuid (emulated by the
  // kernel), out 0x10, al (completed after a userspace exit), TF off (pushf; pop ax; and ax, 0xfeff;
  // push ax; popf), hlt. The #DB handler at 0x2000 counts in BX: inc bx; iret. IVT[1] = 0000:2000.
  const TF_ON = [0x9c, 0x58, 0x0d, 0x00, 0x01, 0x50, 0x9d];
  const TF_OFF = [0x9c, 0x58, 0x25, 0xff, 0xfe, 0x50, 0x9d];

  it("instructions the kernel completes (CPUID, OUT) trap like the others: #DB in the guest, DR6.BS", () => {
    const m = machine();
    m.ram.set([...TF_ON, 0x0f, 0xa2, 0xe6, 0x10, ...TF_OFF, 0xf4], 0x1000);
    m.ram.set([0x43, 0xcf], 0x2000);
    new DataView(m.ram.buffer).setUint32(4, 0x2000, true);
    realMode(m, 0x1000);
    const kinds: string[] = [];
    for (let n = 0; n < 20; n++) {
      const e = m.vcpu.run();
      if (e.kind === "intr") continue;
      kinds.push(e.kind);
      if (e.kind === "hlt") break;
    }
    expect(kinds).toEqual(["io", "hlt"]);
    // One trap each after CPUID and OUT (kvm_vcpu_do_singlestep), five after TF_OFF's instructions.
    expect(Number(m.vcpu.getRegs().rbx & 0xffffn)).toBe(7);
    expect(m.vcpu.getDebugRegs().dr6 & 0x4000n).toBe(0x4000n);
  });
});

describe("KVM_GET/SET_DEBUGREGS on a running guest", () => {
  it("reads the DRs the guest wrote and hands the guest the ones userspace set", () => {
    const m = machine();
    // mov eax, 0x1234; mov dr0, eax; mov eax, dr1; out 0x10, al; hlt
    m.ram.set([0x66, 0xb8, 0x34, 0x12, 0, 0, 0x0f, 0x23, 0xc0, 0x0f, 0x21, 0xc8, 0xe6, 0x10, 0xf4], 0x1000);
    realMode(m, 0x1000);
    m.vcpu.setDebugRegs({ ...m.vcpu.getDebugRegs(), db: [0n, 0x77n, 0n, 0n], dr6: 0xffff0ff1n });
    let e = m.vcpu.run();
    while (e.kind === "intr") e = m.vcpu.run();
    expect(e.kind).toBe("io");
    expect(Number(m.vcpu.getRegs().rax & 0xffn)).toBe(0x77);
    const d = m.vcpu.getDebugRegs();
    expect(d.db).toEqual([0x1234n, 0x77n, 0n, 0n]);
    expect(d.dr6).toBe(0xffff0ff1n);
    expect(d.dr7).toBe(0x400n);
  });
});

describe("DR7.GD, general detect (SDM Vol. 3 18.2.4)", () => {
  // mov eax, 0x1234; mov dr0, eax; out 0x10, al; hlt  (real mode)
  const code = [0x66, 0xb8, 0x34, 0x12, 0, 0, 0x0f, 0x23, 0xc0, 0xe6, 0x10, 0xf4];

  it("USE_HW_BP with GD: the MOV DR exits to userspace with DR6.BD before it moves anything", () => {
    const m = machine();
    m.ram.set(code, 0x1000);
    realMode(m, 0x1000);
    setDebug(m, KVM_GUESTDBG_ENABLE | KVM_GUESTDBG_USE_HW_BP, [0n, 0n, 0n, 0n, 0n, 0n, 0n, 0x2000n]);
    const e = debugExit(next(m));
    expect([e.exception, e.pc, e.dr6 & 0xe00fn, e.dr7]).toEqual([1, 0x1006n, 0x2000n, 0x2400n]);
    setDebug(m, 0);
    expect(line(next(m))).toBe("io out 0x10 1 34");
    expect(m.vcpu.getDebugRegs().db[0]).toBe(0x1234n);
  });

  it("the guest's own GD: a #DB in the guest with DR6.BD, entered with GD clear", () => {
    const m = machine();
    m.ram.set(code, 0x1000);
    // IVT[1] = 0000:2000: mov eax, dr6; out 0x11, al; hlt  (DR6 low byte: B0-B3 and bits 4-7)
    m.ram.set([0x0f, 0x21, 0xf0, 0xe6, 0x11, 0xf4], 0x2000);
    new DataView(m.ram.buffer).setUint32(4, 0x2000, true);
    realMode(m, 0x1000);
    m.vcpu.setDebugRegs({ ...m.vcpu.getDebugRegs(), dr6: 0xffff0ff0n, dr7: 0x2400n });
    expect(line(next(m))).toBe("io out 0x11 1 f0");
    const d = m.vcpu.getDebugRegs();
    expect([d.dr6 & 0xe00fn, d.dr7, d.db[0]]).toEqual([0x2000n, 0x400n, 0n]);
  });
});
