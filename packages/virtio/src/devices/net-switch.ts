import type { NetBackend } from "./net";

/** Something that takes frames from the switch (a VirtioNet, a tap, a test). */
export interface NetEndpoint {
  receive(frame: Uint8Array): boolean;
}

/** A switch port: the endpoint's backend (frames it sends enter the switch). */
export class SwitchPort implements NetBackend {
  constructor(
    readonly sw: L2Switch,
    readonly id: number,
    readonly endpoint: NetEndpoint,
  ) {}

  send(frame: Uint8Array): void {
    this.sw.forward(this, frame);
  }

  detach(): void {
    this.sw.detach(this);
  }
}

/** Options for L2Switch. */
export interface L2SwitchOptions {
  /** Most learned MAC addresses (oldest forgotten first), so spoofed sources cannot grow it without end. */
  maxMacs?: number;
  /** Sees every frame that enters the switch (e.g. a PcapWriter). */
  tap?: (frame: Uint8Array, port: number) => void;
}

/**
 * An in-process Ethernet switch with MAC learning: frames to a learned unicast address go to
 * that port, broadcast, multicast and unknown unicast are flooded to every other port. Lets
 * several VMs in one process talk.
 *
 * @example
 * ```ts
 * import { L2Switch, VirtioNet } from "@tskvm/virtio";
 * const sw = new L2Switch();
 * for (const mac of [[2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]]) {
 *   const nic = new VirtioNet({ mac });
 *   nic.setBackend(sw.attach(nic));
 * }
 * ```
 */
export class L2Switch {
  private readonly ports = new Set<SwitchPort>();
  private readonly table = new Map<number, SwitchPort>();
  private nextId = 0;
  private readonly maxMacs: number;
  private readonly tap: ((frame: Uint8Array, port: number) => void) | undefined;
  readonly stats = { forwarded: 0, flooded: 0, dropped: 0 };

  constructor(opts: L2SwitchOptions = {}) {
    this.maxMacs = opts.maxMacs ?? 4096;
    this.tap = opts.tap;
  }

  attach(endpoint: NetEndpoint): SwitchPort {
    const p = new SwitchPort(this, this.nextId++, endpoint);
    this.ports.add(p);
    return p;
  }

  detach(port: SwitchPort): void {
    this.ports.delete(port);
    for (const [mac, p] of this.table) if (p === port) this.table.delete(mac);
  }

  /** The port a MAC was learned on, if any. */
  lookup(mac: Uint8Array | readonly number[]): number | undefined {
    return this.table.get(macKey(Uint8Array.from(mac), 0))?.id;
  }

  /** A frame from `from`: learn its source, then forward or flood. */
  forward(from: SwitchPort, frame: Uint8Array): void {
    if (frame.length < 14 || !this.ports.has(from)) {
      this.stats.dropped++;
      return;
    }
    this.tap?.(frame, from.id);
    const src = macKey(frame, 6);
    // Learn unicast sources only (a multicast source address is invalid).
    if ((frame[6]! & 1) === 0) {
      this.table.delete(src);
      this.table.set(src, from);
      if (this.table.size > this.maxMacs) this.table.delete(this.table.keys().next().value!);
    }
    if ((frame[0]! & 1) === 0) {
      const to = this.table.get(macKey(frame, 0));
      if (to !== undefined) {
        if (to !== from) {
          this.stats.forwarded++;
          to.endpoint.receive(frame);
        }
        return;
      }
    }
    this.stats.flooded++;
    for (const p of this.ports) if (p !== from) p.endpoint.receive(frame);
  }
}

function macKey(b: Uint8Array, at: number): number {
  return (
    b[at]! * 2 ** 40 +
    b[at + 1]! * 2 ** 32 +
    ((b[at + 2]! << 24) >>> 0) +
    ((b[at + 3]! << 16) | (b[at + 4]! << 8) | b[at + 5]!)
  );
}
