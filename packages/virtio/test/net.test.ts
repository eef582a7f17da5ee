import { describe, expect, it } from "vitest";
import {
  features,
  hasFeature,
  L2Switch,
  NET_S_ANNOUNCE,
  NET_S_LINK_UP,
  NetConfig,
  NetCtrl,
  NetFeature,
  NetHdr,
  onesComplementSum,
  PcapWriter,
  VirtioNet,
} from "../src/index";
import type { MockDriver } from "../src/testing/index";
import { rig, TRANSPORTS } from "./harness";

const MAC_A = [0x52, 0x54, 0, 0, 0, 0xa];
const MAC_B = [0x52, 0x54, 0, 0, 0, 0xb];
const BCAST = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff];

function frame(dst: number[], src: number[], payload: number, type = 0x88b5): Uint8Array {
  const f = new Uint8Array(14 + payload);
  f.set(dst, 0);
  f.set(src, 6);
  f[12] = type >>> 8;
  f[13] = type & 0xff;
  for (let i = 0; i < payload; i++) f[14 + i] = (i * 13) & 0xff;
  return f;
}

function hdr(flags = 0, gso = 0, csumStart = 0, csumOffset = 0): Uint8Array {
  const h = new Uint8Array(NetHdr.SIZE);
  const d = new DataView(h.buffer);
  h[0] = flags;
  h[1] = gso;
  d.setUint16(6, csumStart, true);
  d.setUint16(8, csumOffset, true);
  return h;
}

/** Received frames: strip the header, concatenating merged buffers by num_buffers. */
function rxFrames(drv: MockDriver): { numBuffers: number; frame: Uint8Array }[] {
  const u = drv.queue(0).used();
  const out: { numBuffers: number; frame: Uint8Array }[] = [];
  for (let i = 0; i < u.length; ) {
    const first = u[i]!;
    const nb = first.in[0]![10]! | (first.in[0]![11]! << 8);
    const parts: Uint8Array[] = [];
    for (let k = 0; k < nb; k++) {
      const b = u[i + k]!;
      parts.push(b.in[0]!.subarray(k === 0 ? NetHdr.SIZE : 0, b.len));
    }
    const total = parts.reduce((a, p) => a + p.length, 0);
    const f = new Uint8Array(total);
    let at = 0;
    for (const p of parts) {
      f.set(p, at);
      at += p.length;
    }
    out.push({ numBuffers: nb, frame: f });
    i += nb;
  }
  return out;
}

for (const kind of TRANSPORTS) {
  describe(`virtio-net over ${kind} (virtio 1.2 5.1)`, () => {
    const pair = (opts: { mrg?: boolean; mtu?: number } = {}) => {
      const sw = new L2Switch();
      const mk = (mac: number[]) => {
        const nic = new VirtioNet({ mac, mergeableRxBuffers: opts.mrg, mtu: opts.mtu });
        nic.setBackend(sw.attach(nic));
        const r = rig(kind, nic);
        expect(r.drv.init({ queueSize: 64 })).toBe(true);
        return r;
      };
      return { sw, a: mk(MAC_A), b: mk(MAC_B) };
    };
    const post = (drv: MockDriver, n: number, len: number) => {
      for (let i = 0; i < n; i++) expect(drv.queue(0).add([], [len], 100 + i)).toBe(true);
    };

    it("5.1.4 MAC, link status and MTU are in the config space", () => {
      const { a } = pair({ mtu: 1400 });
      for (let i = 0; i < 6; i++) expect(a.drv.readConfigStable(NetConfig.MAC + i, 1)).toBe(MAC_A[i]);
      expect(a.drv.readConfigStable(NetConfig.STATUS, 2)).toBe(NET_S_LINK_UP);
      expect(a.drv.readConfigStable(NetConfig.MTU, 2)).toBe(1400);
    });

    it("5.1.6 a frame sent by one guest arrives at the other through the switch, learned after", () => {
      const { sw, a, b } = pair();
      post(b.drv, 8, 1536);
      const f = frame(BCAST, MAC_A, 100);
      expect(a.drv.queue(1).add([hdr(), f], [], 1)).toBe(true);
      expect(a.drv.queue(1).used()).toMatchObject([{ token: 1, len: 0 }]);
      const got = rxFrames(b.drv);
      expect(got).toHaveLength(1);
      expect(got[0]!.frame).toEqual(f);
      expect(got[0]!.numBuffers).toBe(1);
      expect(sw.lookup(MAC_A)).toBeDefined();
      // A reply to the learned MAC is forwarded (not flooded).
      post(a.drv, 4, 1536);
      b.drv.queue(1).add([hdr(), frame(MAC_A, MAC_B, 60)], [], 2);
      expect(rxFrames(a.drv)[0]!.frame.length).toBe(74);
      expect(sw.stats.forwarded).toBe(1);
    });

    it("5.1.6.4.2 MRG_RXBUF: a frame spread over several buffers carries num_buffers", () => {
      const { a, b } = pair();
      post(b.drv, 8, 256);
      const f = frame(MAC_B, MAC_A, 1000);
      a.drv.queue(1).add([hdr(), f], [], 1);
      const got = rxFrames(b.drv);
      expect(got[0]!.numBuffers).toBe(5); // 12 + 1014 bytes over 256-byte buffers
      expect(got[0]!.frame).toEqual(f);
    });

    it("5.1.6.3 frames wait for receive buffers, then are delivered when the driver adds some", () => {
      const { a, b } = pair();
      a.drv.queue(1).add([hdr(), frame(MAC_B, MAC_A, 50)], [], 1);
      expect(b.dev.rxBacklog).toBe(1);
      post(b.drv, 1, 1536);
      expect(rxFrames(b.drv)).toHaveLength(1);
      expect(b.dev.rxBacklog).toBe(0);
    });

    it("without MRG_RXBUF: num_buffers is 1 and a too-small buffer drops the frame, keeping the buffer", () => {
      const { a, b } = pair({ mrg: false });
      expect(b.drv.features.lo & (1 << NetFeature.MRG_RXBUF)).toBe(0);
      post(b.drv, 1, 64);
      a.drv.queue(1).add([hdr(), frame(MAC_B, MAC_A, 200)], [], 1);
      expect(b.dev.metrics["rxBufferTooSmall"]).toBe(1);
      a.drv.queue(1).add([hdr(), frame(MAC_B, MAC_A, 20)], [], 2);
      const got = rxFrames(b.drv);
      expect(got).toEqual([{ numBuffers: 1, frame: frame(MAC_B, MAC_A, 20) }]);
    });

    it("5.1.6.2.2 CSUM: the device completes a partial checksum before the frame leaves", () => {
      const { a, b } = pair();
      post(b.drv, 2, 1536);
      // IPv4/UDP-like payload: checksum field at 14+20+6, covering from 14+20.
      const f = frame(MAC_B, MAC_A, 60, 0x0800);
      f[40] = 0x12;
      f[41] = 0x34; // "pseudo-header sum" placed by the guest
      a.drv.queue(1).add([hdr(NetHdr.F_NEEDS_CSUM, 0, 34, 6), f], [], 1);
      const out = rxFrames(b.drv)[0]!.frame;
      // The receiver's check: data (with the stored checksum) plus the pseudo-header sums to 0xffff.
      let sum = onesComplementSum(out, 34, out.length) + 0x1234;
      sum = (sum & 0xffff) + (sum >>> 16);
      expect(sum).toBe(0xffff);
      expect(out[40] !== 0x12 || out[41] !== 0x34).toBe(true);
    });

    it("a GSO frame is dropped (no TSO offered) and the chain still returned", () => {
      const { a, b } = pair();
      post(b.drv, 1, 1536);
      a.drv.queue(1).add([hdr(0, 1), frame(MAC_B, MAC_A, 60)], [], 1);
      expect(a.drv.queue(1).used()).toHaveLength(1);
      expect(a.dev.metrics["txGso"]).toBe(1);
      expect(rxFrames(b.drv)).toHaveLength(0);
    });

    it("CSUM not negotiated: a NEEDS_CSUM frame is dropped", () => {
      const sw = new L2Switch();
      const nic = new VirtioNet({ mac: MAC_A });
      nic.setBackend(sw.attach(nic));
      const r = rig(kind, nic);
      r.drv.init({ want: features(32, NetFeature.MAC) });
      r.drv.queue(1).add([hdr(NetHdr.F_NEEDS_CSUM, 0, 14, 2), frame(BCAST, MAC_A, 20)], [], 1);
      expect(nic.metrics["txCsumNotNegotiated"]).toBe(1);
    });

    it("5.1.4.2 link down: config change, no frames delivered", () => {
      const { a, b } = pair();
      b.dev.setLink(false);
      expect(b.irqs().config).toBe(true);
      expect(b.drv.readConfigStable(NetConfig.STATUS, 2) & NET_S_LINK_UP).toBe(0);
      post(b.drv, 1, 1536);
      a.drv.queue(1).add([hdr(), frame(MAC_B, MAC_A, 20)], [], 1);
      expect(rxFrames(b.drv)).toHaveLength(0);
    });

    it("5.1.4.2 frames larger than the MTU are not passed to the guest", () => {
      const { a, b } = pair({ mtu: 500 });
      post(b.drv, 2, 1536);
      a.drv.queue(1).add([hdr(), frame(MAC_B, MAC_A, 600)], [], 1);
      expect(b.dev.metrics["rxBadLength"]).toBe(1);
    });

    it("the receive backlog is bounded", () => {
      const sw = new L2Switch();
      const nic = new VirtioNet({ mac: MAC_A, rxQueueFrames: 2 });
      rig(kind, nic).drv.init();
      for (let i = 0; i < 5; i++) nic.receive(frame(MAC_A, MAC_B, 10));
      expect(nic.rxBacklog).toBe(2);
      expect(nic.metrics["rxBacklogFull"]).toBe(3);
      sw.detach(sw.attach(nic));
    });
  });
}

describe("PcapWriter", () => {
  it("writes the libpcap global header and one record per frame", () => {
    const chunks: Uint8Array[] = [];
    const p = new PcapWriter((c) => chunks.push(c), { now: () => 1_700_000_000_123 });
    p.write(frame(BCAST, MAC_A, 2));
    const g = new DataView(chunks[0]!.buffer);
    expect(g.getUint32(0, true)).toBe(0xa1b2c3d4);
    expect(g.getUint16(4, true)).toBe(2);
    expect(g.getUint32(20, true)).toBe(1);
    const r = new DataView(chunks[1]!.buffer);
    expect(r.getUint32(0, true)).toBe(1_700_000_000);
    expect(r.getUint32(4, true)).toBe(123_000);
    expect(r.getUint32(8, true)).toBe(16);
    expect(chunks[1]!.subarray(16)).toEqual(frame(BCAST, MAC_A, 2));
  });
});

describe("L2Switch", () => {
  it("floods broadcast to every other port and bounds the MAC table", () => {
    const got: number[] = [];
    const sw = new L2Switch({ maxMacs: 2 });
    const ports = [0, 1, 2].map((i) => sw.attach({ receive: () => got.push(i) > 0 }));
    ports[0]!.send(frame(BCAST, MAC_A, 1));
    expect(got.sort()).toEqual([1, 2]);
    for (let i = 0; i < 5; i++) ports[1]!.send(frame(BCAST, [2, 0, 0, 0, 0, i], 1));
    expect(sw.lookup(MAC_A)).toBeUndefined();
    expect(sw.lookup([2, 0, 0, 0, 0, 4])).toBe(1);
  });
});

describe("virtio-net control queue (virtio 1.2 5.1.6.5)", () => {
  const cmd = (cls: number, command: number, ...data: number[]) => new Uint8Array([cls, command, ...data]);
  const table = (uni: number[][], multi: number[][]) => {
    const out: number[] = [];
    for (const list of [uni, multi]) {
      out.push(list.length, 0, 0, 0);
      for (const m of list) out.push(...m);
    }
    return out;
  };

  for (const kind of TRANSPORTS) {
    it(`over ${kind}: RX filtering, MAC table, MAC address and announce`, () => {
      const nic = new VirtioNet({ mac: MAC_A });
      const r = rig(kind, nic);
      expect(r.drv.init({ queueSize: 64 })).toBe(true);
      expect(hasFeature(r.drv.features, NetFeature.CTRL_VQ)).toBe(true);
      const ctrl = (c: Uint8Array) => {
        r.drv.queue(2).add([c], [1], 0);
        return r.drv.queue(2).used()[0]!.in[0]![0];
      };
      const rx = (f: Uint8Array) => nic.receive(f);
      for (let i = 0; i < 16; i++) r.drv.queue(0).add([], [1536], i);
      // Promiscuous until told otherwise (5.1.6.5.1).
      expect(rx(frame(MAC_B, [2, 0, 0, 0, 0, 3], 10))).toBe(true);
      expect(ctrl(cmd(NetCtrl.CLASS_RX, NetCtrl.RX_PROMISC, 0))).toBe(NetCtrl.OK);
      expect(rx(frame(MAC_B, [2, 0, 0, 0, 0, 3], 10))).toBe(false);
      expect(rx(frame(MAC_A, MAC_B, 10))).toBe(true);
      expect(rx(frame(BCAST, MAC_B, 10))).toBe(true);
      expect(ctrl(cmd(NetCtrl.CLASS_RX, NetCtrl.RX_NOBCAST, 1))).toBe(NetCtrl.OK);
      expect(rx(frame(BCAST, MAC_B, 10))).toBe(false);
      const mc = [0x01, 0x00, 0x5e, 0, 0, 1];
      expect(rx(frame(mc, MAC_B, 10))).toBe(false);
      expect(ctrl(cmd(NetCtrl.CLASS_MAC, NetCtrl.MAC_TABLE_SET, ...table([MAC_B], [mc])))).toBe(NetCtrl.OK);
      expect(rx(frame(mc, MAC_B, 10))).toBe(true);
      expect(rx(frame(MAC_B, MAC_A, 10))).toBe(true);
      expect(ctrl(cmd(NetCtrl.CLASS_MAC, NetCtrl.MAC_TABLE_SET, 9, 0, 0, 0))).toBe(NetCtrl.ERR);
      // MAC_ADDR_SET: the new address shows in config space and filters.
      expect(ctrl(cmd(NetCtrl.CLASS_MAC, NetCtrl.MAC_ADDR_SET, 2, 0, 0, 0, 0, 0x77))).toBe(NetCtrl.OK);
      expect(r.drv.readConfigStable(NetConfig.MAC + 5, 1)).toBe(0x77);
      expect(rx(frame([2, 0, 0, 0, 0, 0x77], MAC_B, 10))).toBe(true);
      // Announce: status bit and config change; the driver's ack clears it.
      expect(nic.announce()).toBe(true);
      expect(r.irqs().config).toBe(true);
      expect(r.drv.readConfigStable(NetConfig.STATUS, 2) & NET_S_ANNOUNCE).toBe(NET_S_ANNOUNCE);
      expect(ctrl(cmd(NetCtrl.CLASS_ANNOUNCE, NetCtrl.ANNOUNCE_ACK))).toBe(NetCtrl.OK);
      expect(r.drv.readConfigStable(NetConfig.STATUS, 2) & NET_S_ANNOUNCE).toBe(0);
      // Unknown class / command: VIRTIO_NET_ERR.
      expect(ctrl(cmd(9, 9))).toBe(NetCtrl.ERR);
      expect(ctrl(new Uint8Array([0]))).toBe(NetCtrl.ERR);
    });
  }

  it("5.1.3.1 CTRL_RX without CTRL_VQ is refused at FEATURES_OK; commands need their feature", () => {
    const r = rig("mmio", new VirtioNet({ mac: MAC_A }));
    expect(r.drv.negotiate(features(32, NetFeature.CTRL_RX))).toBe(false);
    expect(r.drv.init({ want: features(32, NetFeature.CTRL_VQ) })).toBe(true);
    r.drv.queue(2).add([cmd(NetCtrl.CLASS_RX, NetCtrl.RX_PROMISC, 0)], [1], 0);
    expect(r.drv.queue(2).used()[0]!.in[0]![0]).toBe(NetCtrl.ERR);
  });
});

describe("virtio-net receive liveness", () => {
  it("5.1.6.4.2 a frame larger than a full ring of buffers is dropped, not left blocking the queue", () => {
    const nic = new VirtioNet({ mac: MAC_A, controlQueue: false });
    const r = rig("mmio", nic);
    r.drv.init({ queueSize: 4 });
    for (let i = 0; i < 4; i++) r.drv.queue(0).add([], [64], i);
    expect(nic.receive(frame(MAC_A, MAC_B, 1000))).toBe(true);
    expect(nic.metrics["rxFrameTooBig"]).toBe(1);
    expect(nic.rxBacklog).toBe(0);
    expect(nic.receive(frame(MAC_A, MAC_B, 20))).toBe(true);
    expect(r.drv.queue(0).used()).toHaveLength(1);
  });
});
