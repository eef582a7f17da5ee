/**
 * VM-entry checks on the host-state area (SDM Vol. 3C 27.2.2-27.2.4), in the SDM's order. A
 * failure is VMfailValid(8, "VM entry with invalid host-state field(s)").
 */
import { EntryCtl, ExitCtl } from "./controls";
import type { EntryCheckEnv } from "./entry-checks-controls";
import { F } from "./fields";
import { canonical } from "./util";

/** IA32_EFER bits this CPU model has: SCE (0), LME (8), LMA (10), NXE (11). */
export const EFER_VALID = 0xd01n;

/** PAT entry memory types that exist: UC 0, WC 1, WT 4, WP 5, WB 6, UC- 7 (SDM 13.12.2). */
export function validPat(pat: bigint): boolean {
  for (let i = 0n; i < 64n; i += 8n) {
    const t = Number((pat >> i) & 0xffn);
    if (t === 2 || t === 3 || t > 7) return false;
  }
  return true;
}

/** Are the bits of `v` consistent with FIXED0 (must be 1) and FIXED1 (may be 1)? */
export function fixedOk(v: bigint, fixed0: number, fixed1: number): boolean {
  return fixedOkHalves(Number(BigInt.asUintN(32, v)), Number(v >> 32n), fixed0, fixed1);
}

/** `fixedOk` on the value's 32-bit halves. */
export function fixedOkHalves(lo: number, hi: number, fixed0: number, fixed1: number): boolean {
  if (hi !== 0) return false;
  return (lo & fixed0) >>> 0 === fixed0 >>> 0 && (lo & ~fixed1) === 0;
}

/** 27.2.2 Checks on host control registers, MSRs and SSP. */
export function checkHostRegisters(env: EntryCheckEnv): string | null {
  const { vmcs, caps } = env;
  const exit = vmcs.get32(F.VM_EXIT_CONTROLS);
  const hostLong = (exit & ExitCtl.HOST_ADDR_SPACE_SIZE) !== 0;
  if (!fixedOk(vmcs.get64(F.HOST_CR0), caps.cr0Fixed0, caps.cr0Fixed1)) return "27.2.2 host CR0 fixed bits";
  if (!fixedOk(vmcs.get64(F.HOST_CR4), caps.cr4Fixed0, caps.cr4Fixed1)) return "27.2.2 host CR4 fixed bits";
  if (!caps.paValid(vmcs.get64(F.HOST_CR3))) return "27.2.2 host CR3 bits beyond MAXPHYADDR";
  if (!canonical(vmcs.get64(F.HOST_IA32_SYSENTER_ESP))) return "27.2.2 host IA32_SYSENTER_ESP canonical";
  if (!canonical(vmcs.get64(F.HOST_IA32_SYSENTER_EIP))) return "27.2.2 host IA32_SYSENTER_EIP canonical";
  if (exit & ExitCtl.LOAD_PAT && !validPat(vmcs.get64(F.HOST_IA32_PAT)))
    return "27.2.2 host IA32_PAT memory types";
  if (exit & ExitCtl.LOAD_EFER) {
    const efer = vmcs.get64(F.HOST_IA32_EFER);
    if ((efer & ~EFER_VALID) !== 0n) return "27.2.2 host IA32_EFER reserved bits";
    if (((efer & 0x400n) !== 0n) !== hostLong) return "27.2.2 host IA32_EFER.LMA = host address-space size";
    if (((efer & 0x100n) !== 0n) !== hostLong) return "27.2.2 host IA32_EFER.LME = host address-space size";
  }
  return null;
}

/** The host selector fields 27.2.3 checks. */
export const HOST_SELECTORS = [
  F.HOST_ES_SELECTOR,
  F.HOST_CS_SELECTOR,
  F.HOST_SS_SELECTOR,
  F.HOST_DS_SELECTOR,
  F.HOST_FS_SELECTOR,
  F.HOST_GS_SELECTOR,
  F.HOST_TR_SELECTOR,
] as const;

/** The host base-address fields 27.2.3 requires canonical. */
export const HOST_BASES = [
  F.HOST_FS_BASE,
  F.HOST_GS_BASE,
  F.HOST_GDTR_BASE,
  F.HOST_IDTR_BASE,
  F.HOST_TR_BASE,
] as const;

/** 27.2.3 Checks on host segment and descriptor-table registers. */
export function checkHostSegments(env: EntryCheckEnv): string | null {
  const { vmcs } = env;
  const exit = vmcs.get32(F.VM_EXIT_CONTROLS);
  for (const s of HOST_SELECTORS) if (vmcs.get32(s) & 7) return "27.2.3 host selector RPL and TI are 0";
  if (vmcs.get32(F.HOST_CS_SELECTOR) === 0) return "27.2.3 host CS selector != 0";
  if (vmcs.get32(F.HOST_TR_SELECTOR) === 0) return "27.2.3 host TR selector != 0";
  if ((exit & ExitCtl.HOST_ADDR_SPACE_SIZE) === 0 && vmcs.get32(F.HOST_SS_SELECTOR) === 0)
    return "27.2.3 host SS selector != 0 outside 64-bit host";
  for (const b of HOST_BASES)
    if (!canonical(vmcs.get64(b))) return "27.2.3 host FS/GS/GDTR/IDTR/TR base canonical";
  return null;
}

/** 27.2.4 Checks related to address-space size. */
export function checkHostAddressSpace(env: EntryCheckEnv): string | null {
  const { vmcs } = env;
  const exit = vmcs.get32(F.VM_EXIT_CONTROLS);
  const entry = vmcs.get32(F.VM_ENTRY_CONTROLS);
  const hostLong = (exit & ExitCtl.HOST_ADDR_SPACE_SIZE) !== 0;
  const guestLong = (entry & EntryCtl.IA32E_MODE_GUEST) !== 0;
  if (!env.hostLma) {
    if (guestLong) return "27.2.4 IA-32e mode guest needs the processor in IA-32e mode";
    if (hostLong) return "27.2.4 host address-space size needs the processor in IA-32e mode";
  } else if (!hostLong) {
    return "27.2.4 host address-space size is 1 in IA-32e mode";
  }
  // "IA-32e mode guest needs host address-space size 1" is implied by the two rules above on a
  // 64-bit processor, so it has no separate check.
  if (!hostLong) {
    if (vmcs.get64(F.HOST_CR4) & 0x20000n) return "27.2.4 host CR4.PCIDE is 0 outside 64-bit host";
    if (vmcs.get64(F.HOST_RIP) >> 32n !== 0n) return "27.2.4 host RIP bits 63:32 are 0 outside 64-bit host";
  } else {
    if ((vmcs.get64(F.HOST_CR4) & 0x20n) === 0n) return "27.2.4 host CR4.PAE is 1 in 64-bit host";
    if (!canonical(vmcs.get64(F.HOST_RIP))) return "27.2.4 host RIP canonical";
  }
  return null;
}

/** All of 27.2.2-27.2.4 in order. */
export function checkHostState(env: EntryCheckEnv): string | null {
  return checkHostRegisters(env) ?? checkHostSegments(env) ?? checkHostAddressSpace(env);
}
