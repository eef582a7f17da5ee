/** Options for PcapWriter. */
export interface PcapOptions {
  /** Bytes kept of each frame (snaplen). */
  snapLength?: number;
  /** Milliseconds since the epoch (injectable for reproducible files). */
  now?: () => number;
}

/** libpcap LINKTYPE_ETHERNET. */
const LINKTYPE_ETHERNET = 1;

/**
 * Writes frames in the classic libpcap format (microsecond timestamps, Ethernet link type)
 * to a sink, so traffic can be read with Wireshark or tcpdump. No file I/O here: the sink
 * decides (e.g. fs.appendFileSync in the VMM).
 *
 * @example
 * ```ts
 * import { L2Switch, PcapWriter } from "@tskvm/virtio";
 * const chunks: Uint8Array[] = [];
 * const pcap = new PcapWriter((c) => chunks.push(c));
 * const sw = new L2Switch({ tap: (frame) => pcap.write(frame) });
 * ```
 */
export class PcapWriter {
  private readonly snap: number;
  private readonly now: () => number;

  constructor(
    private readonly sink: (chunk: Uint8Array) => void,
    opts: PcapOptions = {},
  ) {
    this.snap = opts.snapLength ?? 65535;
    this.now = opts.now ?? Date.now;
    const h = new Uint8Array(24);
    const d = new DataView(h.buffer);
    d.setUint32(0, 0xa1b2c3d4, true); // magic: microsecond resolution, our byte order
    d.setUint16(4, 2, true);
    d.setUint16(6, 4, true);
    d.setInt32(8, 0, true); // thiszone
    d.setUint32(12, 0, true); // sigfigs
    d.setUint32(16, this.snap, true);
    d.setUint32(20, LINKTYPE_ETHERNET, true);
    sink(h);
  }

  /** One record: header (ts_sec, ts_usec, incl_len, orig_len) then the captured bytes. */
  write(frame: Uint8Array): void {
    const ms = this.now();
    const incl = Math.min(frame.length, this.snap);
    const r = new Uint8Array(16 + incl);
    const d = new DataView(r.buffer);
    d.setUint32(0, Math.floor(ms / 1000), true);
    d.setUint32(4, Math.floor((ms % 1000) * 1000), true);
    d.setUint32(8, incl, true);
    d.setUint32(12, frame.length, true);
    r.set(frame.subarray(0, incl), 16);
    this.sink(r);
  }
}
