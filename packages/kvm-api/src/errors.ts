/**
 * Errors as KVM gives them: every failing call throws a {@link KvmError} carrying the errno the
 * kernel would return from the same ioctl, the ioctl ("step") that failed, and a reason tag that
 * names the rule that was broken. Guest-caused conditions never throw; only misuse of the API does.
 */

/** Linux errno values (include/uapi/asm-generic/errno-base.h, errno.h). */
export const Errno = {
  EPERM: 1,
  ENOENT: 2,
  EINTR: 4,
  EIO: 5,
  ENXIO: 6,
  E2BIG: 7,
  EBADF: 9,
  EAGAIN: 11,
  ENOMEM: 12,
  EFAULT: 14,
  EBUSY: 16,
  EEXIST: 17,
  EINVAL: 22,
  ENOTTY: 25,
  ENOSPC: 28,
  ERANGE: 34,
  EOPNOTSUPP: 95,
} as const;

/** The symbolic name of an errno, e.g. `"EINVAL"`. */
export type ErrnoName = keyof typeof Errno;

/**
 * A failed KVM call. `errno` is the positive errno (ioctl returned `-errno`), `step` the ioctl name,
 * `reason` a short tag for the rule that failed (e.g. `"SlotOverlap"`).
 *
 * @example
 * ```ts
 * try { vm.setUserMemoryRegion({ slot: 0, flags: 0, guestPhysAddr: 0x1001, memorySize: 4096, memory: new ArrayBuffer(4096) }); }
 * catch (e) { if (e instanceof KvmError && e.code === "EINVAL") console.log(e.reason); }
 * ```
 */
export class KvmError extends Error {
  readonly errno: number;
  constructor(
    readonly code: ErrnoName,
    readonly step: string,
    readonly reason: string,
    detail?: string,
  ) {
    super(`${step}: ${code} (${reason})${detail ? `: ${detail}` : ""}`);
    this.name = "KvmError";
    this.errno = Errno[code];
  }
}

/** Throws a {@link KvmError}; typed `never` so callers can use it in expressions. */
export function fail(code: ErrnoName, step: string, reason: string, detail?: string): never {
  throw new KvmError(code, step, reason, detail);
}
