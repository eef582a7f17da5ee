import { describe, expect, it } from "vitest";
import { ConsoleConfig, RNG_MAX_REQUEST, VirtioConsole, VirtioRng } from "../src/index";
import { rig, TRANSPORTS } from "./harness";

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);

for (const kind of TRANSPORTS) {
  describe(`virtio-rng over ${kind} (virtio 1.2 5.4)`, () => {
    it("5.4.6 fills device-writable buffers with entropy and reports the length", () => {
      const r = rig(kind, new VirtioRng());
      expect(r.drv.init()).toBe(true);
      r.drv.queue(0).add([], [64, 64], 1);
      const u = r.drv.queue(0).used();
      expect(u[0]!.len).toBe(128);
      expect(u[0]!.in[0]!.some((b) => b !== 0)).toBe(true);
      expect(r.irqs().used).toBe(true);
    });

    it("caps one request at 64 KiB (Firecracker #5762)", () => {
      const r = rig(kind, new VirtioRng());
      r.drv.init();
      r.drv.queue(0).add([], [RNG_MAX_REQUEST + 4096], 1);
      expect(r.drv.queue(0).used()[0]!.len).toBe(RNG_MAX_REQUEST);
    });
  });

  describe(`virtio-console over ${kind} (virtio 1.2 5.3)`, () => {
    it("5.3.6 transmitq: every descriptor of a chain reaches the host", () => {
      const out: string[] = [];
      const r = rig(kind, new VirtioConsole({ onOutput: (b) => out.push(dec(b)) }));
      expect(r.drv.init()).toBe(true);
      r.drv.queue(1).add([enc("hello, "), enc("world")], [], 1);
      expect(out.join("")).toBe("hello, world");
      expect(r.drv.queue(1).used()[0]!.len).toBe(0);
    });

    it("5.3.6 receiveq: input waits for buffers, then fills them in order", () => {
      const con = new VirtioConsole();
      const r = rig(kind, con);
      r.drv.init();
      expect(con.input(enc("abcdef"))).toBe(6);
      expect(con.pendingInput).toBe(6);
      r.drv.queue(0).add([], [4], 1);
      r.drv.queue(0).add([], [4], 2);
      const u = r.drv.queue(0).used();
      expect(u.map((x) => dec(x.in[0]!.subarray(0, x.len)))).toEqual(["abcd", "ef"]);
      expect(con.pendingInput).toBe(0);
    });

    it("input is bounded while the guest reads nothing (CVE-2020-27174)", () => {
      const con = new VirtioConsole({ maxPendingInput: 10 });
      rig(kind, con).drv.init();
      expect(con.input(new Uint8Array(8))).toBe(8);
      expect(con.input(new Uint8Array(8))).toBe(2);
      expect(con.metrics["inputDropped"]).toBe(6);
    });

    it("5.3.4 cols/rows in config; resize raises a config change; emerg_wr outputs a byte", () => {
      const out: string[] = [];
      const con = new VirtioConsole({ onOutput: (b) => out.push(dec(b)), cols: 100, rows: 40 });
      const r = rig(kind, con);
      r.drv.init();
      expect(r.drv.readConfigStable(ConsoleConfig.COLS, 2)).toBe(100);
      const g = r.t.configGeneration();
      con.resize(132, 50);
      expect(r.t.configGeneration()).not.toBe(g);
      expect(r.irqs().config).toBe(true);
      expect(r.drv.readConfigStable(ConsoleConfig.ROWS, 2)).toBe(50);
      r.t.configWrite(ConsoleConfig.EMERG_WR, 4, 0x21);
      expect(out).toEqual(["!"]);
    });
  });
}

describe("virtio-console multiport (virtio 1.2 5.3.6.2)", () => {
  const ctl = (id: number, event: number, value: number) => {
    const b = new Uint8Array(8);
    const d = new DataView(b.buffer);
    d.setUint32(0, id, true);
    d.setUint16(4, event, true);
    d.setUint16(6, value, true);
    return b;
  };
  const parse = (b: Uint8Array, len: number) => {
    const d = new DataView(b.buffer, b.byteOffset);
    return {
      id: d.getUint32(0, true),
      event: d.getUint16(4, true),
      value: d.getUint16(6, true),
      extra: dec(b.subarray(8, len)),
    };
  };

  for (const kind of TRANSPORTS) {
    it(`over ${kind}: DEVICE_READY -> DEVICE_ADD per port; PORT_READY -> CONSOLE_PORT / PORT_NAME / PORT_OPEN; data per port`, async () => {
      const { ConsoleControl, ConsoleFeature, hasFeature } = await import("../src/index");
      const out0: string[] = [];
      const out1: string[] = [];
      const con = new VirtioConsole({
        onOutput: (b) => out0.push(dec(b)),
        ports: [{ name: "org.tskvm.agent", onOutput: (b) => out1.push(dec(b)) }],
      });
      const r = rig(kind, con);
      expect(r.drv.init()).toBe(true);
      expect(hasFeature(r.drv.features, ConsoleFeature.MULTIPORT)).toBe(true);
      expect(r.drv.readConfigStable(ConsoleConfig.MAX_NR_PORTS, 4)).toBe(2);
      expect(r.drv.queues).toHaveLength(6);
      const crx = r.drv.queue(2);
      const ctx = r.drv.queue(3);
      for (let i = 0; i < 8; i++) crx.add([], [64], i);
      ctx.add([ctl(0xffff_ffff, ConsoleControl.DEVICE_READY, 1)], [], 100);
      let msgs = crx.used().map((u) => parse(u.in[0]!, u.len));
      expect(msgs).toEqual([
        { id: 0, event: ConsoleControl.DEVICE_ADD, value: 1, extra: "" },
        { id: 1, event: ConsoleControl.DEVICE_ADD, value: 1, extra: "" },
      ]);
      ctx.add([ctl(0, ConsoleControl.PORT_READY, 1)], [], 101);
      ctx.add([ctl(1, ConsoleControl.PORT_READY, 1)], [], 102);
      msgs = crx.used().map((u) => parse(u.in[0]!, u.len));
      expect(msgs).toEqual([
        { id: 0, event: ConsoleControl.CONSOLE_PORT, value: 1, extra: "" },
        { id: 0, event: ConsoleControl.PORT_OPEN, value: 1, extra: "" },
        { id: 1, event: ConsoleControl.PORT_NAME, value: 1, extra: "org.tskvm.agent" },
        { id: 1, event: ConsoleControl.PORT_OPEN, value: 1, extra: "" },
      ]);
      ctx.add([ctl(1, ConsoleControl.PORT_OPEN, 1)], [], 103);
      expect(con.isOpen(1)).toBe(true);
      // Port 1's queues are 4 (rx) and 5 (tx).
      r.drv.queue(5).add([enc("ping")], [], 1);
      r.drv.queue(1).add([enc("console")], [], 2);
      expect(out1).toEqual(["ping"]);
      expect(out0).toEqual(["console"]);
      con.input(enc("pong"), 1);
      r.drv.queue(4).add([], [16], 3);
      const u = r.drv.queue(4).used();
      expect(dec(u[0]!.in[0]!.subarray(0, u[0]!.len))).toBe("pong");
      ctx.add([ctl(9, ConsoleControl.PORT_READY, 1)], [], 104);
      expect(con.metrics["badPortId"]).toBe(1);
    });
  }

  it("without MULTIPORT negotiated only port 0 works", async () => {
    const { features } = await import("../src/index");
    const out1: string[] = [];
    const con = new VirtioConsole({ ports: [{ onOutput: (b) => out1.push(dec(b)) }] });
    const r = rig("mmio", con);
    expect(r.drv.init({ want: features(32) })).toBe(true);
    const before = con.metrics["notifyUnusedQueue"] ?? 0;
    r.drv.queue(5).add([enc("x")], [], 1);
    expect(out1).toEqual([]);
    expect(con.metrics["notifyUnusedQueue"]).toBe(before + 1);
  });
});
