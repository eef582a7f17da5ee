import { expect, it } from "vitest";
import { attachVmxBackend, Kvm } from "../src/index.js";

it("src/run/README.md example runs", () => {
  const vm = new Kvm().createVm();
  const ram = new ArrayBuffer(1 << 20);
  vm.setUserMemoryRegion({ slot: 0, flags: 0, guestPhysAddr: 0, memorySize: ram.byteLength, memory: ram });
  const vcpu = vm.createVcpu(0);
  attachVmxBackend(vcpu);
  new Uint8Array(ram).set([0xb0, 0x2a, 0xe6, 0x10, 0xf4], 0x1000); // mov al, 42; out 0x10, al; hlt
  const s = vcpu.getSregs();
  vcpu.setSregs({ ...s, cs: { ...s.cs, selector: 0, base: 0n } });
  vcpu.setRegs({ ...vcpu.getRegs(), rip: 0x1000n });
  const seen: string[] = [];
  for (let i = 0; i < 10; i++) {
    const exit = vcpu.run();
    if (exit.kind === "io") seen.push(`${exit.port}:${Array.from(exit.data)}`);
    seen.push(exit.kind);
    if (exit.kind === "hlt" || exit.kind === "shutdown") break;
  }
  expect(seen.filter((k) => k !== "intr")).toEqual(["16:42", "io", "hlt"]);
});
