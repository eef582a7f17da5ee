// The cost of one VM exit / VM entry round trip through KVM_RUN, on the built dist (run
// `npx turbo run build` from the repository root first):
//
//   node bench/exit-roundtrip.mjs user [exits]   OUT to port 0x10: exit to the caller, run() again
//   node bench/exit-roundtrip.mjs kern [loops]   IN from the PIT, handled in kvm-api (3 instructions
//                                                per loop: in al, 0x40; dec cx; jnz)
//
// Prints wall time and process CPU time per exit: the CPU time is the figure to compare on a
// shared machine. Real KVM takes about 1-2 us for either.
import { attachVmxBackend, Kvm } from "../dist/index.js";

const mode = process.argv[2] ?? "user";
if (mode !== "user" && mode !== "kern") throw new Error("usage: exit-roundtrip.mjs user|kern [count]");
const count = Number(process.argv[3] ?? (mode === "user" ? 200_000 : 500_000));
if (!Number.isInteger(count) || count < 1 || count > 0xffff_ffff) throw new Error("count: 1 to 2^32-1");

const vm = new Kvm().createVm({ clock: "deterministic" });
const ram = new ArrayBuffer(4 << 20);
vm.setUserMemoryRegion({ slot: 0, flags: 0, guestPhysAddr: 0, memorySize: ram.byteLength, memory: ram });
vm.createIrqchip();
vm.createPit2(0);
const vcpu = vm.createVcpu(0);
attachVmxBackend(vcpu);
const code =
  mode === "user"
    ? [0xe6, 0x10, 0xeb, 0xfc] // 1000: out 0x10, al; jmp 1000
    : [
        ...[0x66, 0xb9, count & 0xff, (count >>> 8) & 0xff, (count >>> 16) & 0xff, count >>> 24], // mov ecx, count
        ...[0xe4, 0x40, 0x66, 0x49, 0x75, 0xfa], // 1006: in al, 0x40; dec ecx; jnz 1006
        ...[0xe6, 0x10, 0xf4], // out 0x10, al; hlt
      ];
new Uint8Array(ram).set(code, 0x1000);
// Real mode with every segment base 0.
const s = vcpu.getSregs();
for (const n of ["cs", "ds", "es", "ss", "fs", "gs"]) s[n] = { ...s[n], selector: 0, base: 0n };
vcpu.setSregs(s);
vcpu.setRegs({ ...vcpu.getRegs(), rip: 0x1000n, rsp: 0x8000n, rflags: 2n });

const wall0 = performance.now();
const cpu0 = process.cpuUsage();
if (mode === "user") {
  for (let i = 0; i < count; i++) vcpu.run();
} else {
  // Returns to the caller only for the run budget ("intr") and for the final OUT.
  while (vcpu.run().kind === "intr");
}
const cpu = process.cpuUsage(cpu0);
const wallUs = (performance.now() - wall0) * 1000;
const cpuUs = cpu.user + cpu.system;
console.log(
  `${mode}: ${count} exits, ${(wallUs / count).toFixed(2)} us wall, ${(cpuUs / count).toFixed(2)} us CPU per exit`,
);
