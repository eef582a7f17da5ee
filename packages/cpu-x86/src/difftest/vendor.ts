/**
 * The host CPU's vendor, for the few documented behaviours where Intel and AMD differ and the
 * comparison with the host must know which one it runs on (compare.ts). Read from /proc/cpuinfo
 * (the native harness is Linux-only).
 */
import { readFileSync } from "node:fs";

export type HostVendor = "intel" | "amd" | "other";

let cached: HostVendor | undefined;

export function hostVendor(): HostVendor {
  if (cached !== undefined) return cached;
  let v: HostVendor = "other";
  try {
    const m = /^vendor_id\s*:\s*(\S+)/m.exec(readFileSync("/proc/cpuinfo", "latin1"));
    if (m?.[1] === "GenuineIntel") v = "intel";
    else if (m?.[1] === "AuthenticAMD") v = "amd";
  } catch {
    // Not Linux: no vendor-specific allowance applies.
  }
  cached = v;
  return v;
}

const nan32 = (w: number): boolean => (w & 0x7f800000) === 0x7f800000 && (w & 0x7fffff) !== 0;
const nan64 = (lo: number, hi: number): boolean =>
  (hi & 0x7ff00000) === 0x7ff00000 && ((hi & 0xfffff) !== 0 || lo !== 0);

/**
 * One XMM register of host and model (the four 32-bit words from `at`) as DPPS (`dps`: float32
 * lanes) or DPPD (float64 lanes) left it: each lane equal, or NaN in both. Which NaN the dot
 * product's sum passes on when several products are NaN differs between Intel and AMD (the model
 * follows AMD), so on an Intel host the comparisons use this for DPPS/DPPD results.
 */
export function dotProductLanesAgree(
  dps: boolean,
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  at: number,
): boolean {
  for (let i = at; i < at + 4; i += dps ? 1 : 2) {
    if (dps) {
      if (a[i] !== b[i] && !(nan32(a[i]! >>> 0) && nan32(b[i]! >>> 0))) return false;
    } else if (
      (a[i] !== b[i] || a[i + 1] !== b[i + 1]) &&
      !(nan64(a[i]! >>> 0, a[i + 1]! >>> 0) && nan64(b[i]! >>> 0, b[i + 1]! >>> 0))
    )
      return false;
  }
  return true;
}
