/**
 * VM-entry checks on the guest-state area (SDM Vol. 3C 27.3.1), in the SDM's order. A failure is
 * a VM-entry failure exit: basic reason 33 ("VM-entry failure due to invalid guest state") with
 * exit qualification 0, 2 (PDPTE loading, 27.3.1.6) or 4 (VMCS link pointer, 27.3.1.5).
 */
import {
  Activity,
  EntryCtl,
  INTR_INFO_VALID,
  Interruptibility,
  IntrType,
  Pin,
  Proc,
  Proc2,
} from "./controls";
import type { EntryCheckEnv } from "./entry-checks-controls";
import { EFER_VALID, fixedOk, validPat } from "./entry-checks-host";
import { F, guestSegFields, Seg } from "./fields";
import { canonical, le64 } from "./util";

/** A guest-state check failure: the rule and the exit qualification it reports. */
export interface GuestCheckFailure {
  rule: string;
  qualification: number;
}

/** Exit qualifications of a VM-entry failure due to invalid guest state (SDM 27.8). */
export const EntryFailQual = { DEFAULT: 0, PDPTE: 2, NMI_INJECTION: 3, LINK_POINTER: 4 } as const;

/** IA32_DEBUGCTL bits this CPU model accepts: LBR (0), BTF (1) and 6..15 (SDM Vol. 3B 18.4.1). */
export const DEBUGCTL_VALID = 0xffc3n;

const AR_UNUSABLE = 1 << 16;

function fail(rule: string, qualification: number = EntryFailQual.DEFAULT): GuestCheckFailure {
  return { rule, qualification };
}

/** Limit/granularity consistency (27.3.1.2): G must be 0 if limit bits 11:0 are not all 1, and 1 if bits 31:20 are not all 0. */
function granularityBad(limit: number, ar: number): boolean {
  const g = (ar & 0x8000) !== 0;
  if ((limit & 0xfff) !== 0xfff && g) return true;
  return limit >>> 20 !== 0 && !g;
}

/** Shared controls the guest checks look at. */
function controls(env: EntryCheckEnv) {
  const v = env.vmcs;
  const proc = v.get32(F.CPU_BASED_VM_EXEC_CONTROL);
  const proc2 = proc & Proc.ACTIVATE_SECONDARY ? v.get32(F.SECONDARY_VM_EXEC_CONTROL) : 0;
  const entry = v.get32(F.VM_ENTRY_CONTROLS);
  return {
    proc2,
    entry,
    unrestricted: (proc2 & Proc2.UNRESTRICTED_GUEST) !== 0,
    ia32e: (entry & EntryCtl.IA32E_MODE_GUEST) !== 0,
  };
}

/** 27.3.1.1 Checks on guest control registers, debug registers and MSRs. */
export function checkGuestRegisters(env: EntryCheckEnv): GuestCheckFailure | null {
  const { vmcs, caps } = env;
  const c = controls(env);
  const cr0 = vmcs.get64(F.GUEST_CR0);
  const cr4 = vmcs.get64(F.GUEST_CR4);
  // With unrestricted guest, PE and PG are exempt from CR0_FIXED0 (27.3.1.1).
  const fixed0 = c.unrestricted ? caps.cr0Fixed0 & ~0x80000001 : caps.cr0Fixed0;
  if (!fixedOk(cr0, fixed0, caps.cr0Fixed1)) return fail("27.3.1.1 guest CR0 fixed bits");
  if (cr0 & 0x80000000n && (cr0 & 1n) === 0n) return fail("27.3.1.1 guest CR0.PG needs CR0.PE");
  if (!fixedOk(cr4, caps.cr4Fixed0, caps.cr4Fixed1)) return fail("27.3.1.1 guest CR4 fixed bits");
  if (c.entry & EntryCtl.LOAD_DEBUG_CONTROLS && (vmcs.get64(F.GUEST_IA32_DEBUGCTL) & ~DEBUGCTL_VALID) !== 0n)
    return fail("27.3.1.1 guest IA32_DEBUGCTL reserved bits");
  if (c.ia32e) {
    if ((cr0 & 0x80000000n) === 0n) return fail("27.3.1.1 IA-32e mode guest needs CR0.PG");
    if ((cr4 & 0x20n) === 0n) return fail("27.3.1.1 IA-32e mode guest needs CR4.PAE");
  } else if (cr4 & 0x20000n) {
    return fail("27.3.1.1 CR4.PCIDE needs IA-32e mode guest");
  }
  if (!caps.paValid(vmcs.get64(F.GUEST_CR3))) return fail("27.3.1.1 guest CR3 bits beyond MAXPHYADDR");
  if (c.entry & EntryCtl.LOAD_DEBUG_CONTROLS && vmcs.get64(F.GUEST_DR7) >> 32n !== 0n)
    return fail("27.3.1.1 guest DR7 bits 63:32");
  if (!canonical(vmcs.get64(F.GUEST_SYSENTER_ESP))) return fail("27.3.1.1 guest IA32_SYSENTER_ESP canonical");
  if (!canonical(vmcs.get64(F.GUEST_SYSENTER_EIP))) return fail("27.3.1.1 guest IA32_SYSENTER_EIP canonical");
  if (c.entry & EntryCtl.LOAD_PAT && !validPat(vmcs.get64(F.GUEST_IA32_PAT)))
    return fail("27.3.1.1 guest IA32_PAT memory types");
  if (c.entry & EntryCtl.LOAD_EFER) {
    const efer = vmcs.get64(F.GUEST_IA32_EFER);
    if ((efer & ~EFER_VALID) !== 0n) return fail("27.3.1.1 guest IA32_EFER reserved bits");
    const lma = (efer & 0x400n) !== 0n;
    if (lma !== c.ia32e) return fail("27.3.1.1 guest IA32_EFER.LMA = IA-32e mode guest");
    if (cr0 & 0x80000000n && ((efer & 0x100n) !== 0n) !== lma)
      return fail("27.3.1.1 guest IA32_EFER.LME = LMA");
  }
  return null;
}

/** 27.3.1.2 Checks on guest segment registers. */
export function checkGuestSegments(env: EntryCheckEnv): GuestCheckFailure | null {
  const { vmcs } = env;
  const c = controls(env);
  const sel = (s: Seg) => vmcs.get32(guestSegFields(s).sel);
  const ar = (s: Seg) => vmcs.get32(guestSegFields(s).ar);
  const limit = (s: Seg) => vmcs.get32(guestSegFields(s).limit);
  const base = (s: Seg) => vmcs.get64(guestSegFields(s).base);
  const usable = (s: Seg) => (ar(s) & AR_UNUSABLE) === 0;
  const v86 = (vmcs.get64(F.GUEST_RFLAGS) & 0x20000n) !== 0n;
  const pe = (vmcs.get32(F.GUEST_CR0) & 1) !== 0;

  // Selector fields.
  if (sel(Seg.TR) & 4) return fail("27.3.1.2 TR selector TI = 0");
  if (usable(Seg.LDTR) && sel(Seg.LDTR) & 4) return fail("27.3.1.2 LDTR selector TI = 0");
  if (!v86 && !c.unrestricted && (sel(Seg.SS) & 3) !== (sel(Seg.CS) & 3))
    return fail("27.3.1.2 SS.RPL = CS.RPL");

  // Base-address fields.
  const data = [Seg.CS, Seg.SS, Seg.DS, Seg.ES, Seg.FS, Seg.GS] as const;
  if (v86) {
    for (const s of data)
      if (base(s) !== BigInt(sel(s)) << 4n) return fail("27.3.1.2 virtual-8086 base = selector << 4");
  }
  if (!canonical(base(Seg.TR)) || !canonical(base(Seg.FS)) || !canonical(base(Seg.GS)))
    return fail("27.3.1.2 TR/FS/GS base canonical");
  if (usable(Seg.LDTR) && !canonical(base(Seg.LDTR))) return fail("27.3.1.2 LDTR base canonical");
  if (base(Seg.CS) >> 32n !== 0n) return fail("27.3.1.2 CS base bits 63:32");
  for (const s of [Seg.SS, Seg.DS, Seg.ES] as const)
    if (usable(s) && base(s) >> 32n !== 0n) return fail("27.3.1.2 SS/DS/ES base bits 63:32");

  // Limit fields and access rights in virtual-8086 mode.
  if (v86) {
    for (const s of data) if (limit(s) !== 0xffff) return fail("27.3.1.2 virtual-8086 limit = FFFFH");
    for (const s of data) if (ar(s) !== 0xf3) return fail("27.3.1.2 virtual-8086 access rights = F3H");
  } else {
    // CS: checked whether or not marked unusable.
    const cs = ar(Seg.CS);
    const csType = cs & 0xf;
    const okTypes = c.unrestricted ? [3, 9, 11, 13, 15] : [9, 11, 13, 15];
    if (!okTypes.includes(csType)) return fail("27.3.1.2 CS type");
    if ((cs & 0x10) === 0) return fail("27.3.1.2 CS S = 1");
    const csDpl = (cs >>> 5) & 3;
    const ssDpl = (ar(Seg.SS) >>> 5) & 3;
    if (csType === 3 && csDpl !== 0) return fail("27.3.1.2 CS DPL = 0 for type 3");
    if ((csType === 9 || csType === 11) && csDpl !== ssDpl)
      return fail("27.3.1.2 CS DPL = SS DPL (non-conforming)");
    if ((csType === 13 || csType === 15) && csDpl > ssDpl)
      return fail("27.3.1.2 CS DPL <= SS DPL (conforming)");
    if ((cs & 0x80) === 0) return fail("27.3.1.2 CS P = 1");
    if (cs & 0xf00) return fail("27.3.1.2 CS reserved bits 11:8");
    if (c.ia32e && cs & 0x2000 && cs & 0x4000) return fail("27.3.1.2 CS D/B = 0 when L = 1");
    if (granularityBad(limit(Seg.CS), cs)) return fail("27.3.1.2 CS G and limit");
    if (cs >>> 17) return fail("27.3.1.2 CS reserved bits 31:17");

    // SS.
    const ss = ar(Seg.SS);
    if (usable(Seg.SS) && (ss & 0xf) !== 3 && (ss & 0xf) !== 7) return fail("27.3.1.2 SS type 3 or 7");
    if (!c.unrestricted && ssDpl !== (sel(Seg.SS) & 3)) return fail("27.3.1.2 SS DPL = SS RPL");
    if ((csType === 3 || !pe) && ssDpl !== 0) return fail("27.3.1.2 SS DPL = 0 in real mode or CS type 3");
    if (usable(Seg.SS)) {
      if ((ss & 0x10) === 0) return fail("27.3.1.2 SS S = 1");
      if ((ss & 0x80) === 0) return fail("27.3.1.2 SS P = 1");
      if (ss & 0xf00) return fail("27.3.1.2 SS reserved bits 11:8");
      if (granularityBad(limit(Seg.SS), ss)) return fail("27.3.1.2 SS G and limit");
      if (ss >>> 17) return fail("27.3.1.2 SS reserved bits 31:17");
    }

    // DS, ES, FS, GS.
    for (const s of [Seg.DS, Seg.ES, Seg.FS, Seg.GS] as const) {
      if (!usable(s)) continue;
      const a = ar(s);
      const type = a & 0xf;
      if ((type & 1) === 0) return fail("27.3.1.2 DS/ES/FS/GS type accessed");
      if (type & 8 && (type & 2) === 0) return fail("27.3.1.2 DS/ES/FS/GS code segment readable");
      if ((a & 0x10) === 0) return fail("27.3.1.2 DS/ES/FS/GS S = 1");
      if (!c.unrestricted && type <= 11 && ((a >>> 5) & 3) < (sel(s) & 3))
        return fail("27.3.1.2 DS/ES/FS/GS DPL >= RPL");
      if ((a & 0x80) === 0) return fail("27.3.1.2 DS/ES/FS/GS P = 1");
      if (a & 0xf00) return fail("27.3.1.2 DS/ES/FS/GS reserved bits 11:8");
      if (granularityBad(limit(s), a)) return fail("27.3.1.2 DS/ES/FS/GS G and limit");
      if (a >>> 17) return fail("27.3.1.2 DS/ES/FS/GS reserved bits 31:17");
    }
  }

  // TR.
  const tr = ar(Seg.TR);
  const trType = tr & 0xf;
  if (c.ia32e ? trType !== 11 : trType !== 3 && trType !== 11) return fail("27.3.1.2 TR type busy TSS");
  if (tr & 0x10) return fail("27.3.1.2 TR S = 0");
  if ((tr & 0x80) === 0) return fail("27.3.1.2 TR P = 1");
  if (tr & 0xf00) return fail("27.3.1.2 TR reserved bits 11:8");
  if (granularityBad(limit(Seg.TR), tr)) return fail("27.3.1.2 TR G and limit");
  if (tr & AR_UNUSABLE) return fail("27.3.1.2 TR usable");
  if (tr >>> 17) return fail("27.3.1.2 TR reserved bits 31:17");

  // LDTR.
  if (usable(Seg.LDTR)) {
    const l = ar(Seg.LDTR);
    if ((l & 0xf) !== 2) return fail("27.3.1.2 LDTR type 2");
    if (l & 0x10) return fail("27.3.1.2 LDTR S = 0");
    if ((l & 0x80) === 0) return fail("27.3.1.2 LDTR P = 1");
    if (l & 0xf00) return fail("27.3.1.2 LDTR reserved bits 11:8");
    if (granularityBad(limit(Seg.LDTR), l)) return fail("27.3.1.2 LDTR G and limit");
    if (l >>> 17) return fail("27.3.1.2 LDTR reserved bits 31:17");
  }
  return null;
}

/** 27.3.1.3 Checks on guest descriptor-table registers. */
export function checkGuestDescriptorTables(env: EntryCheckEnv): GuestCheckFailure | null {
  const v = env.vmcs;
  if (!canonical(v.get64(F.GUEST_GDTR_BASE)) || !canonical(v.get64(F.GUEST_IDTR_BASE)))
    return fail("27.3.1.3 GDTR/IDTR base canonical");
  if (v.get32(F.GUEST_GDTR_LIMIT) >>> 16 || v.get32(F.GUEST_IDTR_LIMIT) >>> 16)
    return fail("27.3.1.3 GDTR/IDTR limit bits 31:16");
  return null;
}

/**
 * 27.3.1.4 Checks on guest RIP, RFLAGS and SSP. On 32-bit halves: RIP changes at nearly every VM
 * exit, so this check runs on nearly every VM entry (entry-check-cache.ts).
 */
export function checkGuestRipRflags(env: EntryCheckEnv): GuestCheckFailure | null {
  const v = env.vmcs;
  const ia32e = (v.get32(F.VM_ENTRY_CONTROLS) & EntryCtl.IA32E_MODE_GUEST) !== 0;
  const ripHi = v.getHi(F.GUEST_RIP);
  const csL = (v.get32(F.GUEST_CS_AR_BYTES) & 0x2000) !== 0;
  if ((!ia32e || !csL) && ripHi !== 0) return fail("27.3.1.4 RIP bits 63:32 outside 64-bit mode");
  // Canonical (`canonical` in util.ts): bits 63:47, the high half's bits 31:15, all equal.
  const top = ripHi >>> 15;
  if (ia32e && csL && top !== 0 && top !== 0x1ffff) return fail("27.3.1.4 RIP canonical in 64-bit mode");
  const rflags = v.get32(F.GUEST_RFLAGS);
  // Reserved: 63:22, 15, 5, 3 must be 0; bit 1 must be 1.
  if (v.getHi(F.GUEST_RFLAGS) !== 0 || (rflags & ~0x3fffff) !== 0 || (rflags & 0x8028) !== 0)
    return fail("27.3.1.4 RFLAGS reserved bits 0");
  if ((rflags & 2) === 0) return fail("27.3.1.4 RFLAGS bit 1 = 1");
  if ((ia32e || (v.get32(F.GUEST_CR0) & 1) === 0) && rflags & 0x20000)
    return fail("27.3.1.4 RFLAGS.VM = 0 in IA-32e mode or real mode");
  const info = v.get32(F.VM_ENTRY_INTR_INFO_FIELD);
  if (info & INTR_INFO_VALID && ((info >>> 8) & 7) === IntrType.EXTERNAL && (rflags & 0x200) === 0)
    return fail("27.3.1.4 RFLAGS.IF = 1 to inject an external interrupt");
  return null;
}

/** 27.3.1.5 Checks on guest non-register state. */
export function checkGuestNonRegister(env: EntryCheckEnv): GuestCheckFailure | null {
  const { vmcs, caps } = env;
  const act = vmcs.get32(F.GUEST_ACTIVITY_STATE);
  const intr = vmcs.get32(F.GUEST_INTERRUPTIBILITY_INFO);
  const info = vmcs.get32(F.VM_ENTRY_INTR_INFO_FIELD);
  const injecting = (info & INTR_INFO_VALID) !== 0;
  const type = (info >>> 8) & 7;
  const vector = info & 0xff;
  const rflags = vmcs.get64(F.GUEST_RFLAGS);
  // IA32_VMX_MISC bits 8:6: HLT and wait-for-SIPI are supported, shutdown is not.
  const misc = Number(caps.readMsr(0x485)! & 0x1c0n);
  if (act > 3 || (act !== 0 && ((misc >>> (5 + act)) & 1) === 0))
    return fail("27.3.1.5 activity state supported");
  if (act === Activity.HLT && ((vmcs.get32(F.GUEST_SS_AR_BYTES) >>> 5) & 3) !== 0)
    return fail("27.3.1.5 HLT activity needs SS.DPL = 0");
  if (act !== Activity.ACTIVE && intr & (Interruptibility.STI | Interruptibility.MOV_SS))
    return fail("27.3.1.5 activity state active under STI/MOV-SS blocking");
  if (injecting) {
    if (act === Activity.WAIT_FOR_SIPI) return fail("27.3.1.5 no event injection in wait-for-SIPI");
    if (
      act === Activity.SHUTDOWN &&
      !(type === IntrType.NMI || (type === IntrType.HW_EXCEPTION && vector === 18))
    )
      return fail("27.3.1.5 shutdown activity only takes NMI or #MC");
    if (
      act === Activity.HLT &&
      !(
        type === IntrType.EXTERNAL ||
        type === IntrType.NMI ||
        (type === IntrType.HW_EXCEPTION && (vector === 1 || vector === 18)) ||
        type === IntrType.OTHER
      )
    )
      return fail("27.3.1.5 HLT activity takes only external interrupt, NMI, #DB, #MC, pending MTF");
  }
  // Interruptibility state.
  if (intr >>> 4) return fail("27.3.1.5 interruptibility reserved bits"); // bit 4 needs SGX
  if ((intr & 3) === 3) return fail("27.3.1.5 STI and MOV-SS blocking not both");
  if (intr & Interruptibility.STI && (rflags & 0x200n) === 0n)
    return fail("27.3.1.5 STI blocking needs RFLAGS.IF");
  if (injecting && type === IntrType.EXTERNAL && intr & 3)
    return fail("27.3.1.5 no STI/MOV-SS blocking when injecting an external interrupt");
  if (injecting && type === IntrType.NMI && intr & Interruptibility.MOV_SS)
    return fail("27.3.1.5 no MOV-SS blocking when injecting an NMI");
  if (intr & Interruptibility.SMI) return fail("27.3.1.5 SMI blocking only in SMM");
  const pin = vmcs.get32(F.PIN_BASED_VM_EXEC_CONTROL);
  if (injecting && type === IntrType.NMI && pin & Pin.VIRTUAL_NMIS && intr & Interruptibility.NMI)
    return fail("27.3.1.5 no virtual-NMI blocking when injecting an NMI");
  // Pending debug exceptions: bits 11:4, 13, 15, 16 (RTM not supported) and 63:17 are 0.
  const pde = vmcs.get64(F.GUEST_PENDING_DBG_EXCEPTIONS);
  if ((pde & ~0x500fn) !== 0n) return fail("27.3.1.5 pending debug exceptions reserved bits");
  if (intr & 3 || act === Activity.HLT) {
    const bs = (pde & 0x4000n) !== 0n;
    const tf = (rflags & 0x100n) !== 0n;
    const btf = (vmcs.get64(F.GUEST_IA32_DEBUGCTL) & 2n) !== 0n;
    if (tf && !btf && !bs) return fail("27.3.1.5 pending BS = 1 when TF = 1 and BTF = 0");
    if ((!tf || btf) && bs) return fail("27.3.1.5 pending BS = 0 when TF = 0 or BTF = 1");
  }
  // VMCS link pointer: all ones, or a VMCS with our revision id (shadowing is not supported, so
  // its shadow-VMCS indicator must be 0).
  const link = vmcs.get64(F.VMCS_LINK_POINTER);
  if (link !== 0xffffffffffffffffn) {
    if ((link & 0xfffn) !== 0n || !caps.paValid(link))
      return fail("27.3.1.5 VMCS link pointer aligned and in range", EntryFailQual.LINK_POINTER);
    const b = new Uint8Array(4);
    env.mem.read(Number(link), b);
    const rev = (b[0]! | (b[1]! << 8) | (b[2]! << 16) | (b[3]! << 24)) >>> 0;
    if (rev !== caps.config.revisionId)
      return fail("27.3.1.5 VMCS link pointer revision id", EntryFailQual.LINK_POINTER);
  }
  return null;
}

/** A present PAE PDPTE with reserved bits set (2:1, 8:5, above MAXPHYADDR) is invalid (SDM 4.4.1). */
export function pdpteBad(pdpte: bigint, physAddrBits: number): boolean {
  if ((pdpte & 1n) === 0n) return false;
  if ((pdpte & 0x1e6n) !== 0n) return true;
  return pdpte >> BigInt(physAddrBits) !== 0n;
}

/**
 * 27.3.1.6 Checks on guest page-directory-pointer-table entries: when the guest will use PAE
 * paging (CR0.PG = 1, CR4.PAE = 1, not IA-32e mode). With EPT they come from the VMCS fields;
 * without, from the table CR3 points to. Returns the PDPTEs to load, or a failure.
 */
export function checkGuestPdptes(env: EntryCheckEnv): GuestCheckFailure | bigint[] | null {
  const { vmcs, caps } = env;
  // Not cached (it yields the PDPTEs), so it runs at every entry: most guests leave here.
  if (
    (vmcs.get32(F.GUEST_CR0) & 0x80000000) === 0 ||
    (vmcs.get32(F.GUEST_CR4) & 0x20) === 0 ||
    vmcs.get32(F.VM_ENTRY_CONTROLS) & EntryCtl.IA32E_MODE_GUEST
  )
    return null;
  const c = controls(env);
  let ptes: bigint[];
  if (c.proc2 & Proc2.ENABLE_EPT) {
    ptes = [F.GUEST_PDPTE0, F.GUEST_PDPTE1, F.GUEST_PDPTE2, F.GUEST_PDPTE3].map((f) => vmcs.get64(f));
  } else {
    const b = new Uint8Array(32);
    env.mem.read(Number(vmcs.get64(F.GUEST_CR3) & 0xffffffe0n), b);
    ptes = [0, 8, 16, 24].map((o) => le64(b, o));
  }
  for (const p of ptes)
    if (pdpteBad(p, caps.physAddrBits)) return fail("27.3.1.6 PDPTE reserved bits", EntryFailQual.PDPTE);
  return ptes;
}

/** 27.3.1.1-27.3.1.5 in order (the PDPTE check comes separately, since it also yields the PDPTEs). */
export function checkGuestState(env: EntryCheckEnv): GuestCheckFailure | null {
  return (
    checkGuestRegisters(env) ??
    checkGuestSegments(env) ??
    checkGuestDescriptorTables(env) ??
    checkGuestRipRflags(env) ??
    checkGuestNonRegister(env)
  );
}
