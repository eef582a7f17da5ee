// virtio-net: one frame per iteration from guest A's transmit queue through the L2 switch
// into guest B's receive buffers (MRG_RXBUF), with B's buffer recycled: hz = packets/s.
import { bench, describe } from "vitest";
import { FlatGuestMemory, L2Switch, MmioReg, MmioTransport, VirtioNet } from "../src/index";
import { MmioDriverTransport, MockDriver } from "../src/testing/index";

function nic(sw: L2Switch, last: number) {
  const dev = new VirtioNet({ mac: [2, 0, 0, 0, 0, last] });
  dev.setBackend(sw.attach(dev));
  const mem = new FlatGuestMemory(4 << 20);
  const mmio = new MmioTransport(dev, mem);
  const drv = new MockDriver(mem, new MmioDriverTransport(mmio), 0x1000, 0x10_0000);
  drv.init({ queueSize: 256 });
  return { mem, mmio, drv, dv: new DataView(mem.bytes.buffer) };
}

function setup(frameLen: number) {
  const sw = new L2Switch();
  const a = nic(sw, 1);
  const b = nic(sw, 2);
  const TX = 0x20_0000;
  const RX = 0x30_0000;
  // A's frame: virtio_net_hdr (12 bytes, zero) + Ethernet to B.
  a.mem.bytes.set([2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x88, 0xb5], TX + 12);
  const put = (n: typeof a, qi: number, addr: number, len: number, flags: number) => {
    const q = n.drv.queue(qi);
    n.dv.setUint32(q.descAddr, addr, true);
    n.dv.setUint32(q.descAddr + 8, len, true);
    n.dv.setUint16(q.descAddr + 12, flags, true);
    return q;
  };
  const tq = put(a, 1, TX, 12 + frameLen, 0);
  const rq = put(b, 0, RX, 1526 + 12, 2);
  let ai = 0;
  let bi = 0;
  const publish = (n: typeof a, q: typeof tq, idx: number, qi: number) => {
    n.dv.setUint16(q.availAddr + 4 + 2 * (idx % 256), 0, true);
    n.dv.setUint16(q.availAddr + 2, (idx + 1) & 0xffff, true);
    n.mmio.write(MmioReg.QUEUE_NOTIFY, 4, qi);
  };
  return () => {
    publish(b, rq, bi, 0); // one receive buffer
    bi = (bi + 1) & 0xffff;
    publish(a, tq, ai, 1); // one frame: tx -> switch -> rx
    ai = (ai + 1) & 0xffff;
    if (b.dv.getUint16(rq.usedAddr + 2, true) !== bi) throw new Error("frame not delivered");
    a.mmio.write(MmioReg.INTERRUPT_ACK, 4, 3);
    b.mmio.write(MmioReg.INTERRUPT_ACK, 4, 3);
  };
}

describe("virtio-net through the L2 switch, 1 frame per iteration (hz = packets/s)", () => {
  bench("64-byte frames", setup(64), { time: 2000 });
  bench("1514-byte frames", setup(1514), { time: 2000 });
});
