/**
 * An expect-style driver for a guest's serial console: start a VM through `createVm`, wait for
 * a pattern in the serial output with a timeout, type commands at the busybox shell and collect
 * what they print. Shared by the end-to-end tests (issue 8, "Done when").
 */
import { appendFileSync } from "node:fs";
import { resolve } from "node:path";
import type { L2Switch } from "@tskvm/virtio";
import { parseVmOptions, type VmOptionsInput } from "../src/config.js";
import { bundledGuest } from "../src/guests.js";
import type { VmExit } from "../src/run.js";
import { createVm, type Vm } from "../src/vm.js";

export const GUESTS = resolve(__dirname, "../../../guests");
/** The busybox shell's prompt on the serial console (root in `/`). */
export const PROMPT = "/ # ";

export interface SessionOptions extends VmOptionsInput {
  switches?: Map<string, L2Switch>;
  /** Echo the serial output to stdout (debugging). */
  echo?: boolean;
}

export class GuestSession {
  /** Everything the serial line carried so far. */
  serial = "";
  /** Everything hvc0 carried so far. */
  hvc = "";
  /** Where the next `expect` starts looking. */
  private mark = 0;
  private seq = 0;
  private waiters: (() => void)[] = [];
  readonly done: Promise<VmExit>;
  exit: VmExit | undefined;

  private constructor(
    readonly vm: Vm,
    echo: boolean,
  ) {
    this.done = vm.run().then((e) => {
      this.exit = e;
      this.wake();
      return e;
    });
    void echo;
  }

  /** TSKVM_SERIAL_LOG=PREFIX: each session's serial output goes to PREFIX.<n>.log as it comes. */
  private static count = 0;
  private log: string | undefined;
  private logBuf = "";

  static async start(opts: SessionOptions = {}): Promise<GuestSession> {
    const { switches, echo = process.env.TSKVM_ECHO === "1", ...input } = opts;
    const log = process.env.TSKVM_SERIAL_LOG
      ? `${process.env.TSKVM_SERIAL_LOG}.${GuestSession.count++}.log`
      : undefined;
    const config = parseVmOptions(input, bundledGuest(GUESTS));
    let s: GuestSession | undefined;
    const pendingSerial: number[] = [];
    const vm = await createVm(config, {
      onSerial: (b) => {
        if (echo) process.stdout.write(String.fromCharCode(b));
        if (s) s.onSerial(b);
        else pendingSerial.push(b);
      },
      onConsole: (bytes) => {
        if (!s) return;
        s.hvc += Buffer.from(bytes).toString("latin1");
        s.wake();
      },
      ...(switches ? { switches } : {}),
    });
    s = new GuestSession(vm, echo);
    s.log = log;
    for (const b of pendingSerial) s.onSerial(b);
    return s;
  }

  private onSerial(b: number): void {
    this.serial += String.fromCharCode(b);
    if (this.log) {
      this.logBuf += String.fromCharCode(b);
      if (b === 10 || this.logBuf.length > 200 || this.logBuf.endsWith(PROMPT)) {
        appendFileSync(this.log, this.logBuf, "latin1");
        this.logBuf = "";
      }
    }
    this.wake();
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  /** Resolves when `test()` is true, re-checked on every output byte; rejects after `timeoutMs`. */
  async until(what: string, test: () => boolean, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!test()) {
      if (this.exit) throw new Error(`guest ended (${JSON.stringify(this.exit)}) waiting for ${what}`);
      const left = deadline - Date.now();
      if (left <= 0) {
        const tail = this.serial.slice(-600);
        throw new Error(`timeout after ${timeoutMs} ms waiting for ${what}; serial tail:\n${tail}`);
      }
      await new Promise<void>((r) => {
        const t = setTimeout(r, Math.min(left, 500));
        this.waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }

  /** Wait for `pattern` after the mark; moves the mark past it and returns the text up to it. */
  async expect(pattern: string | RegExp, timeoutMs = 60_000): Promise<string> {
    let found: { at: number; end: number } | undefined;
    const find = () => {
      const rest = this.serial.slice(this.mark);
      if (typeof pattern === "string") {
        const i = rest.indexOf(pattern);
        if (i >= 0) found = { at: i, end: i + pattern.length };
      } else {
        const m = pattern.exec(rest);
        if (m) found = { at: m.index, end: m.index + m[0].length };
      }
      return found !== undefined;
    };
    await this.until(JSON.stringify(String(pattern)), find, timeoutMs);
    const f = found!;
    const before = this.serial.slice(this.mark, this.mark + f.at);
    this.mark += f.end;
    return before;
  }

  send(text: string): void {
    this.vm.sendSerial(new TextEncoder().encode(text));
  }

  /**
   * Wait for the marker of /init and the first shell prompt, then keep the kernel's late messages
   * (deferred probes such as the i8042 keyboard's) off the console, where they would land inside
   * a command's output; they stay in the ring buffer for `dmesg`.
   */
  async boot(timeoutMs = 240_000): Promise<void> {
    await this.expect("TSKVM-BOOT-OK", timeoutMs);
    await this.expect(PROMPT, 60_000);
    await this.ok("dmesg -n 1");
  }

  /**
   * Run a shell command and return its output. The command is wrapped in begin/end markers
   * typed with an empty quote in them, so the echoes of the typed line (the tty echoes typed-
   * ahead input, then the line editor redraws it) never match; `$?` is the command's status.
   */
  async cmd(command: string, timeoutMs = 60_000): Promise<string> {
    const n = ++this.seq;
    this.send(`echo "@@B""EG-${n}@@"; ${command}; echo "@@E""ND-${n}-$?@@"\n`);
    await this.expect(`@@BEG-${n}@@`, timeoutMs);
    const out = await this.expect(new RegExp(`@@END-${n}-(\\d+)@@`), timeoutMs);
    return out.replace(/\r/g, "").replace(/^\n/, "");
  }

  /** Like `cmd`, and fails unless the command's exit status is 0. */
  async ok(command: string, timeoutMs = 60_000): Promise<string> {
    const n = this.seq + 1;
    const before = this.mark;
    const out = await this.cmd(command, timeoutMs);
    const m = new RegExp(`@@END-${n}-(\\d+)@@`).exec(this.serial.slice(before));
    if (m?.[1] !== "0") throw new Error(`\`${command}\` exited ${m?.[1]}: ${out}`);
    return out;
  }

  /** Stop the VM if it still runs and release its files. */
  async stop(): Promise<VmExit> {
    if (!this.exit) await this.vm.control({ kind: "stop" });
    const e = await this.done;
    this.vm.close();
    return e;
  }
}
