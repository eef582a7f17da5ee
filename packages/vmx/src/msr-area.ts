/**
 * The VM-entry MSR-load area, the VM-exit MSR-store area and the VM-exit MSR-load area: arrays of
 * 16-byte entries (SDM Vol. 3C 25.7.2, Table 25-14): bits 31:0 MSR index, 63:32 reserved (0),
 * 127:64 MSR data.
 */
import type { VmxCpuState, VmxPhysMemory } from "./iface";
import { le64, putLe64 } from "./util";

/** IA32_VMX_MISC bits 27:25 = 0: the recommended maximum number of entries is 512. */
export const MSR_AREA_MAX = 512;

/**
 * MSRs a load area may not name (SDM 27.4 and 28.6): IA32_FS_BASE, IA32_GS_BASE, the x2APIC range
 * 800H-8FFH, and the SMM-only IA32_SMM_MONITOR_CTL (9BH) and IA32_SMBASE (9EH).
 */
function loadForbidden(index: number): boolean {
  return (
    index === 0xc0000100 || index === 0xc0000101 || index >>> 8 === 0x8 || index === 0x9b || index === 0x9e
  );
}

/** MSRs a store area may not name (SDM 28.4): IA32_SMBASE and the x2APIC range. */
function storeForbidden(index: number): boolean {
  return index === 0x9e || index >>> 8 === 0x8;
}

/**
 * Load MSRs from an area (WRMSR each entry in order). Returns 0 on success, or the 1-based number
 * of the entry that failed (the exit qualification of a reason-34 VM-entry failure, SDM 27.8).
 * More than 512 entries is undefined in the SDM; here the 513th entry fails.
 */
export function loadMsrArea(mem: VmxPhysMemory, cpu: VmxCpuState, addr: number, count: number): number {
  if (count === 0) return 0; // the usual case, on every VM entry and exit: nothing to allocate
  const e = new Uint8Array(16);
  for (let i = 0; i < count; i++) {
    if (i >= MSR_AREA_MAX) return i + 1;
    mem.read(addr + 16 * i, e);
    const index = (e[0]! | (e[1]! << 8) | (e[2]! << 16) | (e[3]! << 24)) >>> 0;
    const reserved = e[4]! | e[5]! | e[6]! | e[7]!;
    if (reserved !== 0 || loadForbidden(index)) return i + 1;
    if (!cpu.writeMsr(index, le64(e, 8))) return i + 1;
  }
  return 0;
}

/** Store MSRs into an area (RDMSR each entry). Returns 0, or the 1-based failing entry. */
export function storeMsrArea(mem: VmxPhysMemory, cpu: VmxCpuState, addr: number, count: number): number {
  if (count === 0) return 0;
  const e = new Uint8Array(16);
  const data = new Uint8Array(8);
  for (let i = 0; i < count; i++) {
    if (i >= MSR_AREA_MAX) return i + 1;
    mem.read(addr + 16 * i, e);
    const index = (e[0]! | (e[1]! << 8) | (e[2]! << 16) | (e[3]! << 24)) >>> 0;
    const reserved = e[4]! | e[5]! | e[6]! | e[7]!;
    if (reserved !== 0 || storeForbidden(index)) return i + 1;
    const v = cpu.readMsr(index);
    if (v === undefined) return i + 1;
    putLe64(data, 0, v);
    mem.write(addr + 16 * i + 8, data);
  }
  return 0;
}
