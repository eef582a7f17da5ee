import { DeviceType, Feature } from "../constants";
import { type DeviceContext, VirtioDevice } from "../device";
import { type Features, features, hasFeature, setFeature } from "../features";
import type { DescriptorChain } from "../queue/chain";
import { handleCtrl, NetCtrl, RxFilter } from "./net-ctrl";

/** virtio 1.2 5.1.3: network device feature bits (those this device knows). */
export const NetFeature = {
  CSUM: 0,
  GUEST_CSUM: 1,
  MTU: 3,
  MAC: 5,
  GUEST_TSO4: 7,
  HOST_TSO4: 11,
  MRG_RXBUF: 15,
  STATUS: 16,
  CTRL_VQ: 17,
  CTRL_RX: 18,
  GUEST_ANNOUNCE: 21,
  MQ: 22,
  CTRL_MAC_ADDR: 23,
} as const;

/** virtio 1.2 5.1.4: configuration layout. */
export const NetConfig = { MAC: 0, STATUS: 6, MAX_VIRTQUEUE_PAIRS: 8, MTU: 10, SIZE: 12 } as const;

/** VIRTIO_NET_S_LINK_UP in config.status. */
export const NET_S_LINK_UP = 1;
/** VIRTIO_NET_S_ANNOUNCE in config.status: please announce yourself (gratuitous ARP). */
export const NET_S_ANNOUNCE = 2;
/** struct virtio_net_hdr flags / gso_type. */
export const NetHdr = { F_NEEDS_CSUM: 1, F_DATA_VALID: 2, GSO_NONE: 0, SIZE: 12 } as const;

/** Largest frame (without the virtio header) accepted either way: 64 KiB IP packet + Ethernet + VLAN. */
export const MAX_FRAME = 65535 + 14 + 4;
const ETH_HLEN = 14;

/** Where frames the guest transmits go (a switch port, a tap, a test). */
export interface NetBackend {
  send(frame: Uint8Array): void;
}

/** Options for VirtioNet. */
export interface VirtioNetOptions {
  /** The MAC address (6 bytes); VIRTIO_NET_F_MAC is offered. */
  mac: Uint8Array | readonly number[];
  /** Offer VIRTIO_NET_F_MTU with this MTU (68..65535). */
  mtu?: number;
  /** Offer VIRTIO_NET_F_MRG_RXBUF (default true). */
  mergeableRxBuffers?: boolean;
  /**
   * Offer VIRTIO_NET_F_CSUM (default true): the guest may hand over frames with a partial
   * checksum and this device completes it before the frame leaves (so no peer ever sees a
   * partial one). No segmentation offload is offered: it is not implemented.
   */
  txChecksumOffload?: boolean;
  /**
   * Offer the control queue with CTRL_RX (receive filtering), CTRL_MAC_ADDR and GUEST_ANNOUNCE
   * (default true). Without it the device receives every frame the switch hands it.
   */
  controlQueue?: boolean;
  /** Frames held while the guest has no receive buffers (default 256); beyond that they are dropped. */
  rxQueueFrames?: number;
  queueSize?: number;
}

const RX = 0;
const TX = 1;
/** 5.1.2: without MQ the control queue is index 2. */
const CTRL = 2;

/**
 * virtio-net (virtio 1.2 5.1): one receive and one transmit queue, MAC, link status, MTU and
 * mergeable receive buffers. Frames leave through a NetBackend and enter through `receive()`.
 *
 * @example
 * ```ts
 * import { L2Switch, VirtioNet } from "@tskvm/virtio";
 * const sw = new L2Switch();
 * const a = new VirtioNet({ mac: [0x52, 0x54, 0, 0, 0, 1] });
 * a.setBackend(sw.attach(a));
 * ```
 */
export class VirtioNet extends VirtioDevice {
  readonly deviceType = DeviceType.NET;
  readonly queueSizes: readonly number[];
  readonly offered: Features;
  private backend: NetBackend | undefined;
  private readonly rxPending: Uint8Array[] = [];
  private readonly rxLimit: number;
  private readonly maxRxFrame: number;
  private mrg = false;
  /** Receive filtering (CTRL_RX); promiscuous until the driver says otherwise. */
  readonly filter = new RxFilter();
  private readonly hdr = new Uint8Array(NetHdr.SIZE);
  private readonly hdrView = new DataView(this.hdr.buffer);

  constructor(opts: VirtioNetOptions) {
    super(NetConfig.SIZE);
    const qs = opts.queueSize ?? 256;
    const ctrl = opts.controlQueue !== false;
    this.queueSizes = ctrl ? [qs, qs, 64] : [qs, qs];
    const f = features(
      Feature.VERSION_1,
      Feature.EVENT_IDX,
      Feature.INDIRECT_DESC,
      Feature.RING_RESET,
      NetFeature.MAC,
      NetFeature.STATUS,
    );
    if (opts.mergeableRxBuffers !== false) setFeature(f, NetFeature.MRG_RXBUF);
    if (opts.txChecksumOffload !== false) setFeature(f, NetFeature.CSUM);
    if (opts.mtu !== undefined) setFeature(f, NetFeature.MTU);
    if (ctrl) {
      setFeature(f, NetFeature.CTRL_VQ);
      setFeature(f, NetFeature.CTRL_RX);
      setFeature(f, NetFeature.CTRL_MAC_ADDR);
      setFeature(f, NetFeature.GUEST_ANNOUNCE);
    }
    this.offered = f;
    this.rxLimit = opts.rxQueueFrames ?? 256;
    this.maxRxFrame = opts.mtu !== undefined ? opts.mtu + ETH_HLEN + 4 : MAX_FRAME;
    const mac = Uint8Array.from(opts.mac);
    if (mac.length !== 6) throw new RangeError("MAC must be 6 bytes");
    this.config.set(mac, NetConfig.MAC);
    this.configView.setUint16(NetConfig.STATUS, NET_S_LINK_UP, true);
    this.configView.setUint16(NetConfig.MAX_VIRTQUEUE_PAIRS, 1, true);
    if (opts.mtu !== undefined) this.configView.setUint16(NetConfig.MTU, opts.mtu, true);
  }

  get mac(): Uint8Array {
    return this.config.slice(NetConfig.MAC, NetConfig.MAC + 6);
  }

  setBackend(b: NetBackend | undefined): void {
    this.backend = b;
  }

  /** Link up or down (VIRTIO_NET_S_LINK_UP) with a configuration change notification. */
  setLink(up: boolean): void {
    this.configView.setUint16(NetConfig.STATUS, up ? NET_S_LINK_UP : 0, true);
    this.host.configChanged();
  }

  get linkUp(): boolean {
    return (this.configView.getUint16(NetConfig.STATUS, true) & NET_S_LINK_UP) !== 0;
  }

  /** Frames waiting for receive buffers. */
  get rxBacklog(): number {
    return this.rxPending.length;
  }

  /**
   * Ask the guest to announce itself (after a restore or a move between switches): sets
   * VIRTIO_NET_S_ANNOUNCE with a config change if GUEST_ANNOUNCE was negotiated. Returns whether it did.
   */
  announce(): boolean {
    if (!this.active || !hasFeature(this.ctx!.features, NetFeature.GUEST_ANNOUNCE)) return false;
    const s = this.configView.getUint16(NetConfig.STATUS, true);
    this.configView.setUint16(NetConfig.STATUS, s | NET_S_ANNOUNCE, true);
    this.host.configChanged();
    return true;
  }

  override validateFeatures(acked: Features): boolean {
    // 5.1.3.1: CTRL_RX, CTRL_MAC_ADDR and GUEST_ANNOUNCE require CTRL_VQ.
    if (!hasFeature(acked, NetFeature.CTRL_VQ)) {
      for (const b of [NetFeature.CTRL_RX, NetFeature.CTRL_MAC_ADDR, NetFeature.GUEST_ANNOUNCE]) {
        if (hasFeature(acked, b)) return false;
      }
    }
    // 5.1.3.1 feature dependencies: GUEST_TSO4 requires GUEST_CSUM etc. None of those are offered,
    // so acked (already masked to offered) cannot violate them; keep the check for clarity.
    if (hasFeature(acked, NetFeature.GUEST_TSO4) && !hasFeature(acked, NetFeature.GUEST_CSUM)) return false;
    return true;
  }

  protected override onActivate(ctx: DeviceContext): boolean {
    this.mrg = hasFeature(ctx.features, NetFeature.MRG_RXBUF);
    return true;
  }

  protected onReset(): void {
    this.rxPending.length = 0;
    this.mrg = false;
    this.filter.reset();
    const s = this.configView.getUint16(NetConfig.STATUS, true);
    this.configView.setUint16(NetConfig.STATUS, s & ~NET_S_ANNOUNCE, true);
  }

  override queueReset(q: number): void {
    if (q === RX) this.rxPending.length = 0;
  }

  queueNotify(q: number): void {
    if (q === TX) this.transmit();
    else if (q === CTRL) this.controlQueue();
    // 5.1.6.3: new receive buffers: deliver what waited (CVE-2020-16843: never stall once
    // buffers reappear).
    else if (q === RX) this.flushRx();
  }

  /**
   * A frame for the guest. Returns false when it was dropped (device not running, link down,
   * too large, or the bounded backlog is full).
   */
  receive(frame: Uint8Array): boolean {
    if (!this.active || !this.linkUp) return this.drop("rxInactive");
    // 5.1.6.5.1: the receive filter the driver set through the control queue.
    if (
      frame.length >= ETH_HLEN &&
      !this.filter.accepts(frame, this.config.subarray(NetConfig.MAC, NetConfig.MAC + 6))
    ) {
      return this.drop("rxFiltered");
    }
    // 5.1.4.2: "the device MUST NOT pass received packets that exceed mtu".
    if (frame.length > this.maxRxFrame || frame.length < ETH_HLEN) return this.drop("rxBadLength");
    if (this.rxPending.length >= this.rxLimit) return this.drop("rxBacklogFull");
    this.rxPending.push(frame);
    this.flushRx();
    return true;
  }

  /** 5.1.6.5: each chain is class, command, data (readable), then one ack byte (writable). */
  private controlQueue(): void {
    const ctx = this.ctx;
    const q = ctx?.queues[CTRL];
    if (ctx === undefined || q === undefined || !q.ready) return;
    const f = ctx.features;
    const allowed = (cls: number, command: number) =>
      (cls === NetCtrl.CLASS_RX && hasFeature(f, NetFeature.CTRL_RX)) ||
      (cls === NetCtrl.CLASS_MAC &&
        ((command === NetCtrl.MAC_ADDR_SET && hasFeature(f, NetFeature.CTRL_MAC_ADDR)) ||
          (command === NetCtrl.MAC_TABLE_SET && hasFeature(f, NetFeature.CTRL_RX)))) ||
      (cls === NetCtrl.CLASS_ANNOUNCE && hasFeature(f, NetFeature.GUEST_ANNOUNCE));
    let done = 0;
    for (let chain = q.pop(); chain !== undefined; chain = q.pop()) {
      // Commands are small; a longer one (a MAC table) is bounded by the table limit below.
      const len = Math.min(chain.readableBytes, 8 + 2 * (4 + 6 * 1024));
      const cmd = new Uint8Array(len);
      const rd = chain.reader(ctx.mem);
      const n = rd.read(cmd);
      const r = rd.faulted
        ? { ack: NetCtrl.ERR, effect: { kind: "none" as const } }
        : handleCtrl(cmd.subarray(0, n), this.filter, allowed);
      if (r.effect.kind === "setMac") {
        // 5.1.6.5.2: the new address takes effect and shows in the config space.
        this.config.set(r.effect.mac, NetConfig.MAC);
      } else if (r.effect.kind === "announceAck") {
        const s = this.configView.getUint16(NetConfig.STATUS, true);
        this.configView.setUint16(NetConfig.STATUS, s & ~NET_S_ANNOUNCE, true);
      }
      if (r.ack !== NetCtrl.OK) this.count("ctrlError");
      const w = chain.writer(ctx.mem);
      w.skip(chain.writableBytes - 1);
      const wrote = chain.writableBytes > 0 ? w.write(new Uint8Array([r.ack])) : 0;
      q.pushUsed(chain, wrote);
      done++;
    }
    if (done > 0 || q.error !== undefined) this.signal(CTRL);
  }

  private drop(metric: string): false {
    this.count(metric);
    return false;
  }

  private transmit(): void {
    const ctx = this.ctx;
    const q = ctx?.queues[TX];
    if (ctx === undefined || q === undefined || !q.ready) return;
    let done = 0;
    for (let chain = q.pop(); chain !== undefined; chain = q.pop()) {
      const frame = this.parseTx(chain);
      if (frame !== undefined) {
        this.count("txFrames");
        this.backend?.send(frame);
      }
      // 5.1.6.2: transmit buffers are device-readable only: used.len is 0.
      q.pushUsed(chain, 0);
      done++;
    }
    if (done > 0 || q.error !== undefined) this.signal(TX);
  }

  /** parse + validate + checksum completion of one transmit chain; undefined = dropped. */
  private parseTx(chain: DescriptorChain): Uint8Array | undefined {
    const mem = this.ctx!.mem;
    const len = chain.readableBytes - NetHdr.SIZE;
    if (len < ETH_HLEN || len > MAX_FRAME) return this.dropTx("txBadLength");
    const rd = chain.reader(mem);
    if (rd.read(this.hdr) !== NetHdr.SIZE) return this.dropTx("txFault");
    const flags = this.hdr[0]!;
    const gso = this.hdr[1]!;
    // No HOST_TSO/UFO/USO was offered: a GSO packet cannot be honoured.
    if (gso !== NetHdr.GSO_NONE) return this.dropTx("txGso");
    const frame = new Uint8Array(len);
    if (rd.read(frame) !== len) return this.dropTx("txFault");
    if ((flags & NetHdr.F_NEEDS_CSUM) !== 0) {
      // 5.1.6.2.2: with CSUM negotiated, complete the checksum from csum_start to the end and
      // store it at csum_start + csum_offset (the field holds the pseudo-header sum).
      if (!hasFeature(this.ctx!.features, NetFeature.CSUM)) return this.dropTx("txCsumNotNegotiated");
      const start = this.hdrView.getUint16(6, true);
      const off = this.hdrView.getUint16(8, true);
      if (start + off + 2 > len) return this.dropTx("txBadCsumOffset");
      const sum = ~onesComplementSum(frame, start, len) & 0xffff;
      frame[start + off] = sum >>> 8;
      frame[start + off + 1] = sum & 0xff;
    }
    return frame;
  }

  private dropTx(metric: string): undefined {
    this.count(metric);
    return undefined;
  }

  private flushRx(): void {
    const ctx = this.ctx;
    const q = ctx?.queues[RX];
    if (ctx === undefined || q === undefined || !q.ready) return;
    let done = 0;
    while (this.rxPending.length > 0) {
      const frame = this.rxPending[0]!;
      const used = this.mrg ? this.deliverMerged(frame) : this.deliverOne(frame);
      if (used < 0) break; // wait for more buffers
      this.rxPending.shift();
      done += used;
    }
    if (done > 0 || q.error !== undefined) this.signal(RX);
  }

  private writeHeader(numBuffers: number): void {
    this.hdr.fill(0);
    // 5.1.6.4: flags 0 (GUEST_CSUM not offered: the guest checks), gso_type NONE.
    this.hdrView.setUint16(10, numBuffers, true);
  }

  /** Without MRG_RXBUF: the frame goes in one chain. -1: no buffer yet; 0: dropped. */
  private deliverOne(frame: Uint8Array): number {
    const ctx = this.ctx!;
    const q = ctx.queues[RX]!;
    const chain = q.pop();
    if (chain === undefined) return -1;
    if (chain.writableBytes < NetHdr.SIZE + frame.length) {
      // A buffer too small for this frame: drop the frame, keep the buffer for the next one.
      q.undoPop(chain);
      this.count("rxBufferTooSmall");
      return 0;
    }
    // 5.1.6.4: num_buffers is 1 when MRG_RXBUF is not negotiated.
    this.writeHeader(1);
    const w = chain.writer(ctx.mem);
    w.write(this.hdr);
    w.write(frame);
    if (w.faulted) this.count("rxFault");
    q.pushUsed(chain, w.position);
    this.count("rxFrames");
    return 1;
  }

  /** MRG_RXBUF (5.1.6.4.2): spread the frame over as many chains as needed; num_buffers says how many. */
  private deliverMerged(frame: Uint8Array): number {
    const ctx = this.ctx!;
    const q = ctx.queues[RX]!;
    const need = NetHdr.SIZE + frame.length;
    const chains: DescriptorChain[] = [];
    let room = 0;
    while (room < need) {
      const c = q.pop();
      if (c === undefined) {
        if (chains[0] !== undefined) q.undoPop(chains[0]);
        if (q.error !== undefined) return 0;
        // A whole ring of buffers cannot hold it: drop the frame rather than block the ones
        // behind it forever.
        if (chains.length >= q.size) {
          this.count("rxFrameTooBig");
          return 0;
        }
        return -1;
      }
      chains.push(c);
      room += c.writableBytes;
    }
    this.writeHeader(chains.length);
    let at = 0;
    let first = true;
    for (const c of chains) {
      const w = c.writer(ctx.mem);
      if (first) {
        w.write(this.hdr);
        first = false;
      }
      const n = w.write(frame.subarray(at));
      at += n;
      if (w.faulted) this.count("rxFault");
      q.pushUsed(c, w.position);
    }
    this.count("rxFrames");
    return chains.length;
  }
}

/** The 16-bit ones' complement sum of bytes [from, to) (RFC 1071), folded. */
export function onesComplementSum(b: Uint8Array, from: number, to: number): number {
  let sum = 0;
  let i = from;
  for (; i + 1 < to; i += 2) sum += (b[i]! << 8) | b[i + 1]!;
  if (i < to) sum += b[i]! << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return sum;
}
