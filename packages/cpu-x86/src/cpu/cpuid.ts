/**
 * The CPUID model (SDM Vol. 2 CPUID). GenuineIntel, configurable: each feature word is a field the
 * owner may change (for example the x87/SSE units add their bits when they are composed in). By default
 * it exposes exactly what this CPU implements.
 */

/** Feature bits (CPUID.1:EDX / ECX, 7.0:EBX, 80000001h:EDX / ECX) the integer core implements. */
export const CPUID_1_EDX_BASE =
  (1 << 0) | // FPU (x87 unit, src/fpu)
  (1 << 3) | // PSE
  (1 << 4) | // TSC
  (1 << 5) | // MSR
  (1 << 6) | // PAE
  (1 << 8) | // CX8
  (1 << 11) | // SEP (SYSENTER/SYSEXIT)
  (1 << 13) | // PGE
  (1 << 15) | // CMOV
  (1 << 16) | // PAT
  (1 << 17) | // PSE-36
  (1 << 19) | // CLFSH
  (1 << 23) | // MMX
  (1 << 24) | // FXSR
  (1 << 25) | // SSE
  (1 << 26); // SSE2
export const CPUID_1_ECX_BASE =
  (1 << 0) | // SSE3
  (1 << 9) | // SSSE3
  (1 << 19) | // SSE4.1
  (1 << 20) | // SSE4.2
  (1 << 13) | // CMPXCHG16B
  (1 << 22) | // MOVBE
  (1 << 23) | // POPCNT
  (1 << 26) | // XSAVE (x87 and SSE components; OSXSAVE, bit 27, follows CR4.OSXSAVE)
  (1 << 30); // RDRAND
export const CPUID_7_EBX_BASE =
  (1 << 0) | // FSGSBASE
  (1 << 7) | // SMEP
  (1 << 9) | // ERMS (REP MOVSB/STOSB)
  (1 << 18) | // RDSEED
  (1 << 20); // SMAP (and STAC/CLAC)
/** CPUID.1:ECX.XSAVE. */
export const CPUID_1_ECX_XSAVE = 1 << 26;
/** CPUID.(0DH,1):EAX: XSAVEOPT (bit 0) and XSAVEC with the compacted XRSTOR (bit 1). */
export const CPUID_D1_EAX_XSAVEOPT = 1 << 0;
export const CPUID_D1_EAX_XSAVEC = 1 << 1;
/**
 * CPUID.(0DH,1):EAX[3]: XSAVES/XRSTORS and the IA32_XSS MSR (SDM Vol. 1 13.11, 13.12). Off in this
 * model's defaults (no supervisor component exists, so IA32_XSS can only be 0);
 * `xsaveExtensions |= CPUID_D1_EAX_XSAVES` turns it on. A hypervisor layer decides nested
 * "enable XSAVES/XRSTORS" and the XSS-exiting bitmap through `InterceptKind.XSAVES` (kvm-api does).
 */
export const CPUID_D1_EAX_XSAVES = 1 << 3;
/**
 * IA32_XSS bits this CPU supports (CPUID.(0DH,1):ECX/EDX): none. No supervisor state component (PT,
 * CET, ...) is implemented; XSAVES/XRSTORS are still complete for the user components.
 */
export const XSS_SUPPORTED = 0;
/** Bytes of an XSAVE area holding the legacy region (x87, SSE) and the header (SDM Vol. 1 13.4). */
const XSAVE_AREA_LEGACY = 576;
/** XCR0 bits of the x87 and SSE components, always supported. */
const XCR0_X87_SSE = 3;
/** XCR0 bit of the PKRU component (SDM Vol. 1 13.5.7), supported with PKU. */
const XCR0_PKRU = 1 << 9;
/** PKRU component size, and its standard-form offset in Intel's layout (CPUID.(0DH,9):EAX, EBX). */
const XSAVE_PKRU_SIZE = 8;
export const XSAVE_PKRU_OFFSET_INTEL = 2688;
/** CPUID.(7,0):EBX.SMAP. */
export const CPUID_7_EBX_SMAP = 1 << 20;
/**
 * CPUID.(7,0):ECX.PKU: protection keys, RDPKRU/WRPKRU, CR4.PKE, and the XSAVE PKRU component (XCR0[9],
 * CPUID.(0DH,9)). Off in this model's defaults; `features7Ecx |= CPUID_7_ECX_PKU` turns it on (kvm-api's
 * host model does, and lists the 0DH sub-leaves and XCR0-dependent sizes a Linux guest checks).
 */
export const CPUID_7_ECX_PKU = 1 << 3;
/** CPUID.(7,0):ECX.OSPKE: CR4.PKE, filled in at CPUID time. */
const CPUID_7_ECX_OSPKE = 1 << 4;
export const CPUID_81_EDX_BASE =
  (1 << 11) | // SYSCALL/SYSRET
  (1 << 20) | // NX
  (1 << 26) | // 1 GiB pages
  (1 << 27) | // RDTSCP
  (1 << 29); // long mode
export const CPUID_81_ECX_BASE =
  (1 << 0) | // LAHF/SAHF in 64-bit mode
  (1 << 5) | // LZCNT (ABM)
  (1 << 8); // PREFETCHW

/** Registers of one CPUID answer. */
export interface CpuidResult {
  eax: number;
  ebx: number;
  ecx: number;
  edx: number;
}

export class CpuidModel {
  vendor = "GenuineIntel";
  brand = "tskvm x86-64 CPU (TypeScript)";
  /** Family 6, model 0x55-ish signature: stepping 1, model 5, family 6, extended model 5. */
  signature = 0x00050651;
  features1Edx = CPUID_1_EDX_BASE;
  features1Ecx = CPUID_1_ECX_BASE;
  features7Ebx = CPUID_7_EBX_BASE;
  features7Ecx = 0;
  features81Edx = CPUID_81_EDX_BASE;
  features81Ecx = CPUID_81_ECX_BASE;
  apicId = 0;
  physBits = 40;
  linBits = 48;
  maxLeaf = 0xd;
  /** CPUID.(0DH,1):EAX: the XSAVE instructions beyond XSAVE/XRSTOR (no XGETBV ECX=1; XSAVES opt-in). */
  xsaveExtensions = CPUID_D1_EAX_XSAVEOPT | CPUID_D1_EAX_XSAVEC;
  /**
   * Standard-form offset of the PKRU component (CPUID.(0DH,9):EBX): Intel's layout, which leaves room
   * for AVX, MPX and AVX-512 before it even though this CPU has none of them. At most 4088.
   */
  pkruOffset = XSAVE_PKRU_OFFSET_INTEL;

  /** XCR0 bits supported: CPUID.(0DH,0):EAX. x87 and SSE, and PKRU with PKU (they come together). */
  get xcr0Mask(): number {
    return XCR0_X87_SSE | (this.features7Ecx & CPUID_7_ECX_PKU ? XCR0_PKRU : 0);
  }

  /** Bytes of an XSAVE area holding the components `xfeatures`, standard or compacted form. */
  xsaveAreaSize(xfeatures: number, compacted: boolean): number {
    if ((xfeatures & this.xcr0Mask & XCR0_PKRU) === 0) return XSAVE_AREA_LEGACY;
    return (compacted ? XSAVE_AREA_LEGACY : this.pkruOffset) + XSAVE_PKRU_SIZE;
  }

  private str4(s: string, at: number): number {
    let v = 0;
    for (let k = 3; k >= 0; k--) v = (v << 8) | (s.charCodeAt(at + k) || 0);
    return v | 0;
  }

  /**
   * Answers CPUID; `osxsave` / `ospke` are CR4.OSXSAVE / CR4.PKE and `xfeatures` XCR0 | IA32_XSS, which
   * CPUID reflects (the latter in the sizes of leaf 0DH; IA32_XSS is always 0 here).
   */
  query(leaf: number, sub: number, out: CpuidResult, osxsave: boolean, ospke = false, xfeatures = 3): void {
    out.eax = out.ebx = out.ecx = out.edx = 0;
    leaf >>>= 0;
    const maxExt = 0x80000008;
    if (leaf > this.maxLeaf && leaf < 0x80000000) leaf = this.maxLeaf; // Intel: highest basic leaf's data
    if (leaf > maxExt) leaf = this.maxLeaf;
    const v = this.vendor;
    switch (leaf) {
      case 0:
        out.eax = this.maxLeaf;
        out.ebx = this.str4(v, 0);
        out.edx = this.str4(v, 4);
        out.ecx = this.str4(v, 8);
        return;
      case 1:
        out.eax = this.signature;
        out.ebx = (this.apicId << 24) | (1 << 16) | (8 << 8); // CLFLUSH line 8*8 = 64 bytes
        out.ecx = this.features1Ecx | (osxsave && this.features1Ecx & CPUID_1_ECX_XSAVE ? 1 << 27 : 0);
        out.edx = this.features1Edx;
        return;
      case 7:
        if (sub === 0) {
          out.ebx = this.features7Ebx;
          out.ecx =
            this.features7Ecx | (ospke && this.features7Ecx & CPUID_7_ECX_PKU ? CPUID_7_ECX_OSPKE : 0);
        }
        return;
      case 0xd:
        // SDM Vol. 1 13.2: sub-leaf 0 = supported XCR0 bits and standard-form area sizes (for the
        // components XCR0 enables and for all supported ones); sub-leaf 1 = XSAVEOPT/XSAVEC/XSAVES,
        // the compacted size for XCR0 | IA32_XSS and the supported IA32_XSS bits; sub-leaf i >= 2 =
        // size and offset of component i (9, PKRU, is the only one; ECX = 0: a user component, not
        // 64-byte aligned when compacted). Components 0 and 1 have no sub-leaf.
        if ((this.features1Ecx & CPUID_1_ECX_XSAVE) === 0) return;
        if (sub === 0) {
          out.eax = this.xcr0Mask;
          out.ebx = this.xsaveAreaSize(xfeatures, false);
          out.ecx = this.xsaveAreaSize(this.xcr0Mask, false);
        } else if (sub === 1) {
          out.eax = this.xsaveExtensions;
          out.ebx = this.xsaveAreaSize(xfeatures, true);
          out.ecx = XSS_SUPPORTED;
        } else if (sub === 9 && this.xcr0Mask & XCR0_PKRU) {
          out.eax = XSAVE_PKRU_SIZE;
          out.ebx = this.pkruOffset;
        }
        return;
      case 0x80000000:
        out.eax = maxExt;
        return;
      case 0x80000001:
        out.ecx = this.features81Ecx;
        out.edx = this.features81Edx;
        return;
      case 0x80000002:
      case 0x80000003:
      case 0x80000004: {
        const at = (leaf - 0x80000002) * 16;
        const b = this.brand.padEnd(48, "\0");
        out.eax = this.str4(b, at);
        out.ebx = this.str4(b, at + 4);
        out.ecx = this.str4(b, at + 8);
        out.edx = this.str4(b, at + 12);
        return;
      }
      case 0x80000008:
        out.eax = this.physBits | (this.linBits << 8);
        return;
      default:
        return;
    }
  }
}
