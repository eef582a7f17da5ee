/**
 * The snapshot container (STYLE.md "State"): magic, version, payload length, JSON payload and a
 * SHA-256 over everything before it. What goes in the payload is each device's plain `save()`
 * state by name; `restoreLegacyDevices` validates as it rebuilds. Guest RAM and vCPU state join
 * when kvm-api can provide them.
 *
 *   offset 0   "TSKVMSNP" (8 bytes)
 *   offset 8   u32 LE format version (1)
 *   offset 12  u32 LE payload length N
 *   offset 16  N bytes of UTF-8 JSON
 *   offset 16+N  SHA-256 of bytes [0, 16+N)
 */
import { Cmos, type CmosDeps, type CmosState } from "./devices/cmos.js";
import { I8042, type I8042Deps, type I8042State } from "./devices/i8042.js";
import { Uart16550, type Uart16550Deps, type Uart16550State } from "./devices/uart16550.js";
import { nodeCrypto } from "./lazy-node.js";

export const SNAPSHOT_MAGIC = "TSKVMSNP";
export const SNAPSHOT_VERSION = 1;
const HEADER = 16;
const DIGEST = 32;
/** Payloads past this are refused before parsing (a hostile file cannot make us allocate more). */
export const SNAPSHOT_MAX_PAYLOAD = 64 * 1024 * 1024;

export type SnapshotErrorKind =
  | { kind: "Truncated"; need: number; got: number }
  | { kind: "BadMagic" }
  | { kind: "UnsupportedVersion"; version: number }
  | { kind: "SizeMismatch"; declared: number; actual: number }
  | { kind: "BadChecksum" }
  | { kind: "BadPayload"; detail: string };

export class SnapshotError extends Error {
  constructor(readonly detail: SnapshotErrorKind) {
    super(describe(detail));
    this.name = "SnapshotError";
  }
}

function describe(d: SnapshotErrorKind): string {
  switch (d.kind) {
    case "Truncated":
      return `snapshot truncated: ${d.got} bytes, at least ${d.need} needed`;
    case "BadMagic":
      return `not a tskvm snapshot (no "${SNAPSHOT_MAGIC}" magic)`;
    case "UnsupportedVersion":
      return `snapshot format version ${d.version} is not supported (this tskvm reads version ${SNAPSHOT_VERSION})`;
    case "SizeMismatch":
      return `snapshot size mismatch: the header declares a ${d.declared}-byte payload, the file holds ${d.actual}`;
    case "BadChecksum":
      return "snapshot checksum mismatch: the file is corrupted";
    case "BadPayload":
      return `snapshot payload is invalid: ${d.detail}`;
  }
}

/** SHA-256 of `data` (node:crypto loaded on the first snapshot: lazy-node.ts). */
function sha256(data: Uint8Array): Buffer {
  return nodeCrypto().createHash("sha256").update(data).digest();
}

/** Wrap a JSON-able payload in the container. */
export function encodeSnapshot(payload: unknown): Uint8Array {
  const body = new TextEncoder().encode(JSON.stringify(payload));
  const out = new Uint8Array(HEADER + body.length + DIGEST);
  out.set(new TextEncoder().encode(SNAPSHOT_MAGIC), 0);
  const dv = new DataView(out.buffer);
  dv.setUint32(8, SNAPSHOT_VERSION, true);
  dv.setUint32(12, body.length, true);
  out.set(body, HEADER);
  out.set(sha256(out.subarray(0, HEADER + body.length)), HEADER + body.length);
  return out;
}

/** Check the container and return its parsed payload; each failure is a SnapshotError. */
export function decodeSnapshot(bytes: Uint8Array): unknown {
  if (bytes.length < HEADER + DIGEST)
    throw new SnapshotError({ kind: "Truncated", need: HEADER + DIGEST, got: bytes.length });
  if (new TextDecoder().decode(bytes.subarray(0, 8)) !== SNAPSHOT_MAGIC)
    throw new SnapshotError({ kind: "BadMagic" });
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const version = dv.getUint32(8, true);
  if (version !== SNAPSHOT_VERSION) throw new SnapshotError({ kind: "UnsupportedVersion", version });
  const declared = dv.getUint32(12, true);
  const actual = bytes.length - HEADER - DIGEST;
  if (declared !== actual || declared > SNAPSHOT_MAX_PAYLOAD)
    throw new SnapshotError({ kind: "SizeMismatch", declared, actual });
  const digest = sha256(bytes.subarray(0, HEADER + declared));
  const stored = bytes.subarray(HEADER + declared);
  if (!digest.equals(stored)) throw new SnapshotError({ kind: "BadChecksum" });
  try {
    return JSON.parse(
      new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(HEADER, HEADER + declared)),
    );
  } catch (e) {
    throw new SnapshotError({ kind: "BadPayload", detail: (e as Error).message });
  }
}

/** The legacy devices' state, by name. */
export interface LegacyDevicesState {
  uart: Uart16550State;
  i8042: I8042State;
  cmos: CmosState;
}

/** Rebuild the legacy devices from a decoded payload, validating every field. */
export function restoreLegacyDevices(
  payload: unknown,
  deps: { uart?: Uart16550Deps; i8042?: I8042Deps; cmos?: CmosDeps } = {},
): { uart: Uart16550; i8042: I8042; cmos: Cmos } {
  if (typeof payload !== "object" || payload === null)
    throw new SnapshotError({ kind: "BadPayload", detail: "not an object" });
  const p = payload as Partial<LegacyDevicesState>;
  const part = <T>(name: string, v: T | undefined, restore: (s: T) => unknown) => {
    if (typeof v !== "object" || v === null)
      throw new SnapshotError({ kind: "BadPayload", detail: `${name} missing` });
    try {
      return restore(v);
    } catch (e) {
      throw new SnapshotError({ kind: "BadPayload", detail: (e as Error).message });
    }
  };
  return {
    uart: part("uart", p.uart, (s) => Uart16550.restore(deps.uart ?? {}, s)) as Uart16550,
    i8042: part("i8042", p.i8042, (s) => I8042.restore(deps.i8042 ?? {}, s)) as I8042,
    cmos: part("cmos", p.cmos, (s) => Cmos.restore(deps.cmos ?? {}, s)) as Cmos,
  };
}
