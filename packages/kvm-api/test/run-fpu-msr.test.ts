// KVM_GET/SET_FPU's x87 state and KVM_GET/SET_MSRS against the running CPU (hand-assembled code).
import { describe, expect, it } from "vitest";
import { flat32, describe as line, type Machine, machine } from "./run-helpers.js";

function boot(code: number[]): Machine {
  const m = machine();
  m.ram.set(code, 0x1000);
  flat32(m, 0x1000);
  return m;
}

function next(m: Machine): string {
  for (;;) {
    const e = m.vcpu.run();
    if (e.kind !== "intr") return line(e);
  }
}

/** 80-bit extended value as the 10 low bytes of an fpr slot. */
function ext(mantissa: bigint, se: number): number[] {
  const b: number[] = [];
  for (let i = 0; i < 8; i++) b.push(Number((mantissa >> BigInt(8 * i)) & 0xffn));
  return [...b, se & 0xff, se >> 8];
}

describe("KVM_GET/SET_FPU: the x87 unit", () => {
  it("GET_FPU after FLDPI: ST0 = pi, TOP = 7 in FSW, abridged tag 0x80, FOP", () => {
    const m = boot([0xd9, 0xeb, 0xe6, 0x10]); // fldpi; out 0x10, al
    expect(next(m)).toBe("io out 0x10 1 00");
    const f = m.vcpu.getFpu();
    expect([...f.fpr.subarray(0, 10)]).toEqual(ext(0xc90fdaa22168c235n, 0x4000));
    expect(f.fsw & 0x3800).toBe(0x3800);
    expect(f.ftwx).toBe(0x80);
    expect(f.fcw).toBe(0x37f);
    expect(f.lastOpcode).toBe(0x1eb);
  });

  it("SET_FPU reaches the guest: FSTP of a loaded 1.5 in single precision control, FCW read back", () => {
    const m = boot([0xdd, 0x1d, 0x00, 0x90, 0x00, 0x00, 0xe6, 0x10]); // fstp qword [0x9000]; out
    const f = m.vcpu.getFpu();
    f.fpr.set(ext(0xc000000000000000n, 0x3fff), 0);
    f.fsw = 7 << 11;
    f.ftwx = 0x80;
    f.fcw = 0x27f;
    m.vcpu.setFpu(f);
    expect(next(m)).toBe("io out 0x10 1 00");
    expect(new DataView(m.ram.buffer).getFloat64(0x9000, true)).toBe(1.5);
    const g = m.vcpu.getFpu();
    expect([g.fcw, g.ftwx, g.fsw & 0x3800]).toEqual([0x27f, 0, 0]);
  });
});

describe("KVM_GET/SET_MSRS: the running state", () => {
  it("a guest WRMSR is what GET_MSRS returns; SET_MSRS reaches the guest's RDMSR", () => {
    // wrmsr(0x175 SYSENTER_ESP, 0x12345678); wrmsr(0xc0000102 KERNEL_GS_BASE, ...); out; rdmsr(0x176); out eax
    const code = [
      0xb9,
      0x75,
      0x01,
      0x00,
      0x00,
      0xb8,
      0x78,
      0x56,
      0x34,
      0x12,
      0x31,
      0xd2,
      0x0f,
      0x30, // ecx, eax, edx=0, wrmsr
      0xe6,
      0x10, // out 0x10, al
      0xb9,
      0x76,
      0x01,
      0x00,
      0x00,
      0x0f,
      0x32,
      0xe7,
      0x11, // rdmsr 0x176; out 0x11, eax
      0xf4,
    ];
    const m = boot(code);
    expect(next(m)).toBe("io out 0x10 1 78");
    const e = [{ index: 0x175, data: 0n }];
    expect(m.vcpu.getMsrs(e)).toBe(1);
    expect(e[0]!.data).toBe(0x12345678n);
    expect(m.vcpu.setMsrs([{ index: 0x176, data: 0xcafef00dn }])).toBe(1);
    expect(next(m)).toBe("io out 0x11 4 0df0feca");
    const back = [{ index: 0x176, data: 0n }];
    m.vcpu.getMsrs(back);
    expect(back[0]!.data).toBe(0xcafef00dn);
    // Unknown MSR and a value above 64 bits stop the batch, as KVM's count says.
    expect(m.vcpu.setMsrs([{ index: 0x175, data: 1n << 64n }])).toBe(0);
    expect(m.vcpu.getMsrs([{ index: 0xdeadbeef, data: 0n }])).toBe(0);
  });
});
