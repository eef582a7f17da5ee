import { describe, expect, it } from "vitest";
import { MmioBus, PortBus } from "../src/devices/bus.js";
import { DEBUG_EXIT_PORT, DEBUG_EXIT_SIZE, DebugExit, POST_PORT, PostPort } from "../src/devices/misc.js";

describe("isa-debug-exit and port 0x80", () => {
  it("a write of v exits with (v << 1) | 1, as QEMU's debugexit.c", () => {
    const statuses: number[] = [];
    const bus = new PortBus();
    bus.register(DEBUG_EXIT_PORT, DEBUG_EXIT_SIZE, new DebugExit((s) => statuses.push(s)), "debug-exit");
    bus.write(0xf4, 1, 0x10);
    bus.write(0xf4, 2, 0x0000);
    bus.write(0xf4, 4, 0xffffffff);
    expect(statuses).toEqual([33, 1, 2 ** 33 - 1]);
  });

  it("port 0x80 keeps the last POST code and reads 0xff", () => {
    const bus = new PortBus();
    const post = new PostPort();
    bus.register(POST_PORT, 1, post, "post");
    bus.write(0x80, 1, 0x42);
    expect(post.lastCode).toBe(0x42);
    expect(bus.read(0x80, 1)).toBe(0xff);
  });

  it("the port bus refuses overlapping ranges and floats unclaimed reads", () => {
    const bus = new PortBus();
    bus.register(0x3f8, 8, new PostPort(), "a");
    expect(() => bus.register(0x3fc, 2, new PostPort(), "b")).toThrow("overlap a");
    expect(bus.read(0x2f8, 1)).toBe(0xff);
    expect(bus.read(0x2f8, 2)).toBe(0xffff);
    expect(bus.read(0x2f8, 4)).toBe(0xffffffff);
    expect(bus.unclaimed).toBe(3);
  });

  it("the MMIO bus splits an 8-byte KVM_EXIT_MMIO into two little-endian dwords", () => {
    const seen: string[] = [];
    const regs = new Uint32Array(4);
    const bus = new MmioBus();
    bus.register(
      0xd0000000,
      16,
      {
        read: (o, s) => {
          seen.push(`r${o}/${s}`);
          return regs[o >> 2]!;
        },
        write: (o, s, v) => {
          seen.push(`w${o}/${s}`);
          regs[o >> 2] = v;
        },
      },
      "dev",
    );
    bus.writeBytes(0xd0000000, new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]));
    expect([...regs.subarray(0, 2)].map((x) => x.toString(16))).toEqual(["4030201", "8070605"]);
    const out = new Uint8Array(8);
    bus.readBytes(0xd0000000, out);
    expect([...out]).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(seen).toEqual(["w0/4", "w4/4", "r0/4", "r4/4"]);
    expect(() => bus.register(0xd000000c, 8, { read: () => 0, write: () => {} }, "other")).toThrow(
      "overlaps dev",
    );
    // An access that straddles the end of a range is not claimed by it.
    expect(bus.read(0xd000000e, 4)).toBe(0xffffffff);
  });
});
