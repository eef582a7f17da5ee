import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ConsoleEscape, type ConsoleEvent } from "../src/console.js";

const enc = (s: string) => new TextEncoder().encode(s);
const show = (evs: ConsoleEvent[]) =>
  evs.map((e) => (e.kind === "data" ? new TextDecoder().decode(e.bytes) : `<${e.kind}>`));

describe("serial console escapes (QEMU's Ctrl-A mux)", () => {
  it("passes plain input through", () => {
    expect(show(new ConsoleEscape().feed(enc("ls -l\r")))).toEqual(["ls -l\r"]);
  });

  it("Ctrl-A x quits, Ctrl-A h helps, Ctrl-A b breaks, Ctrl-A Ctrl-A sends one Ctrl-A", () => {
    const c = new ConsoleEscape();
    expect(show(c.feed(enc("ab\x01xcd")))).toEqual(["ab", "<quit>", "cd"]);
    expect(show(c.feed(enc("\x01h\x01b")))).toEqual(["<help>", "<break>"]);
    expect(show(c.feed(enc("\x01\x01z")))).toEqual(["\x01z"]);
    expect(show(c.feed(enc("\x01qrest")))).toEqual(["rest"]); // unknown key after Ctrl-A: dropped
  });

  it("the escape may end one chunk and its key start the next", () => {
    const c = new ConsoleEscape();
    expect(show(c.feed(enc("abc\x01")))).toEqual(["abc"]);
    expect(show(c.feed(enc("x")))).toEqual(["<quit>"]);
  });

  it("property: without Ctrl-A in the input, the output is the input", () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 64 }).map((a) => a.map((b) => (b === 1 ? 2 : b))),
        (bytes) => {
          const out = new ConsoleEscape().feed(bytes).flatMap((e) => (e.kind === "data" ? [...e.bytes] : []));
          expect(out).toEqual([...bytes]);
        },
      ),
    );
  });

  it("property: chunking does not change the events' data", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), fc.nat(64), (bytes, cut) => {
        const whole = new ConsoleEscape().feed(bytes);
        const c = new ConsoleEscape();
        const split = [...c.feed(bytes.subarray(0, cut)), ...c.feed(bytes.subarray(cut))];
        const flat = (evs: ConsoleEvent[]) =>
          evs.flatMap((e): (number | string)[] => (e.kind === "data" ? [...e.bytes] : [e.kind]));
        expect(flat(split)).toEqual(flat(whole));
      }),
    );
  });
});
