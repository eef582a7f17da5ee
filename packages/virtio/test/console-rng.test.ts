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
