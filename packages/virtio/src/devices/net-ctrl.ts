/**
 * The virtio-net control queue (virtio 1.2 5.1.6.5): receive filtering (CTRL_RX), the MAC
 * filter table and address (CTRL_RX / CTRL_MAC_ADDR) and guest announcements (GUEST_ANNOUNCE).
 * Pure state and parsing; the device owns the queue.
 */

/** 5.1.6.5: command classes and commands. */
export const NetCtrl = {
  CLASS_RX: 0,
  RX_PROMISC: 0,
  RX_ALLMULTI: 1,
  RX_ALLUNI: 2,
  RX_NOMULTI: 3,
  RX_NOUNI: 4,
  RX_NOBCAST: 5,
  CLASS_MAC: 1,
  MAC_TABLE_SET: 0,
  MAC_ADDR_SET: 1,
  CLASS_ANNOUNCE: 3,
  ANNOUNCE_ACK: 0,
  /** The ack byte. */
  OK: 0,
  ERR: 1,
} as const;

/** Most MAC table entries kept per list (unicast, multicast); beyond, the table overflows to "all". */
const MAX_TABLE = 64;

/** Receive filter state (5.1.6.5.1). Until the driver configures it, the device is promiscuous. */
export class RxFilter {
  promisc = true;
  allmulti = false;
  alluni = false;
  nomulti = false;
  nouni = false;
  nobcast = false;
  readonly unicast = new Set<number>();
  readonly multicast = new Set<number>();

  reset(): void {
    this.promisc = true;
    this.allmulti = false;
    this.alluni = false;
    this.nomulti = false;
    this.nouni = false;
    this.nobcast = false;
    this.unicast.clear();
    this.multicast.clear();
  }

  /** Whether a frame to `dst` (at frame offset 0) passes the filter for a device with address `mac`. */
  accepts(frame: Uint8Array, mac: Uint8Array): boolean {
    if (this.promisc) return true;
    const key = macKey(frame, 0);
    if ((frame[0]! & 1) !== 0) {
      if (key === 0xffff_ffff_ffff) return !this.nobcast;
      if (this.nomulti) return false;
      return this.allmulti || this.multicast.has(key);
    }
    if (this.nouni) return false;
    return this.alluni || key === macKey(mac, 0) || this.unicast.has(key);
  }
}

export function macKey(b: Uint8Array, at: number): number {
  return (
    b[at]! * 2 ** 40 +
    b[at + 1]! * 2 ** 32 +
    ((b[at + 2]! << 24) >>> 0) +
    ((b[at + 3]! << 16) | (b[at + 4]! << 8) | b[at + 5]!)
  );
}

/** What a command asks the device to do beyond the filter (the device applies it). */
export type CtrlEffect = { kind: "none" } | { kind: "setMac"; mac: Uint8Array } | { kind: "announceAck" };

/**
 * Parse and apply one command: `cmd` is the device-readable part (class, command, data).
 * `allowed(class, command)` says whether its feature was negotiated. Returns the ack and effect.
 */
export function handleCtrl(
  cmd: Uint8Array,
  filter: RxFilter,
  allowed: (cls: number, command: number) => boolean,
): { ack: number; effect: CtrlEffect } {
  const err = { ack: NetCtrl.ERR, effect: { kind: "none" } as CtrlEffect };
  if (cmd.length < 2) return err;
  const cls = cmd[0]!;
  const command = cmd[1]!;
  const data = cmd.subarray(2);
  if (!allowed(cls, command)) return err;
  const ok = (effect: CtrlEffect = { kind: "none" }) => ({ ack: NetCtrl.OK, effect });
  if (cls === NetCtrl.CLASS_RX) {
    // 5.1.6.5.1: one byte, on (non-zero) or off.
    if (data.length < 1 || command > NetCtrl.RX_NOBCAST) return err;
    const on = data[0] !== 0;
    if (command === NetCtrl.RX_PROMISC) filter.promisc = on;
    else if (command === NetCtrl.RX_ALLMULTI) filter.allmulti = on;
    else if (command === NetCtrl.RX_ALLUNI) filter.alluni = on;
    else if (command === NetCtrl.RX_NOMULTI) filter.nomulti = on;
    else if (command === NetCtrl.RX_NOUNI) filter.nouni = on;
    else filter.nobcast = on;
    return ok();
  }
  if (cls === NetCtrl.CLASS_MAC) {
    if (command === NetCtrl.MAC_ADDR_SET) {
      if (data.length < 6) return err;
      return ok({ kind: "setMac", mac: data.slice(0, 6) });
    }
    if (command === NetCtrl.MAC_TABLE_SET) {
      // 5.1.6.5.2: two tables, each le32 entries then entries * 6 bytes (unicast, then multicast).
      const lists: number[][] = [];
      let at = 0;
      for (let t = 0; t < 2; t++) {
        if (data.length - at < 4) return err;
        const n = new DataView(data.buffer, data.byteOffset + at, 4).getUint32(0, true);
        at += 4;
        if (n > (data.length - at) / 6) return err;
        const list: number[] = [];
        for (let i = 0; i < n; i++) list.push(macKey(data, at + 6 * i));
        at += 6 * n;
        lists.push(list);
      }
      filter.unicast.clear();
      filter.multicast.clear();
      // A table larger than kept overflows to "accept all of that kind" rather than dropping.
      if (lists[0]!.length > MAX_TABLE) filter.alluni = true;
      else for (const k of lists[0]!) filter.unicast.add(k);
      if (lists[1]!.length > MAX_TABLE) filter.allmulti = true;
      else for (const k of lists[1]!) filter.multicast.add(k);
      return ok();
    }
    return err;
  }
  if (cls === NetCtrl.CLASS_ANNOUNCE && command === NetCtrl.ANNOUNCE_ACK) return ok({ kind: "announceAck" });
  return err;
}
