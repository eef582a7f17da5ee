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
