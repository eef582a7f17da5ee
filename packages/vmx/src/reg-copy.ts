/** Copies between VMCS fields and `VmxCpuState` registers, in 32-bit halves (internal). */
import type { VmxCpuState, VmxReg } from "./iface";
import type { Vmcs } from "./vmcs";

/** A VMCS field into a register of the CPU state. */
export function loadReg(cpu: VmxCpuState, v: Vmcs, r: VmxReg, field: number): void {
  cpu.set(r, v.get32(field), v.getHi(field));
}

/** A register of the CPU state into a VMCS field. */
export function storeReg(v: Vmcs, field: number, cpu: VmxCpuState, r: VmxReg): void {
  v.setHalves(field, cpu.lo(r), cpu.hi(r));
}
