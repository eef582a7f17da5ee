/**
 * Issue 8, "Done when" item 8: bad input gets one clear line and a non-zero exit, and nothing is
 * written. Runs the CLI built from src (tsup, no types) as a child process.
 */
import { spawn, spawnSync } from "node:child_process";
import {
  copyFileSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  truncateSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEFAULT_APPEND } from "../src/config.js";

const PKG = resolve(__dirname, "..");
const GUESTS = resolve(PKG, "../../guests");
const OUT = join(PKG, "node_modules", ".tskvm-cli-test");
const CLI = join(OUT, "cli.js");
let tmp = "";

beforeAll(() => {
  const r = spawnSync(
    "npx",
    [
      "tsup",
      "--no-config",
      "src/cli.ts",
      "--format",
      "esm",
      "--target",
      "node20",
      "--out-dir",
      OUT,
      "--silent",
    ],
    { cwd: PKG, encoding: "utf8" },
  );
  if (r.status !== 0) throw new Error(`building the CLI failed: ${r.stderr}`);
  tmp = mkdtempSync(join(tmpdir(), "tskvm-cli-"));
}, 120_000);

afterAll(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

/** Every file under tmp with its size and mtime: "nothing written" means this does not change. */
function snapshot(): string {
  return readdirSync(tmp)
    .sort()
    .map((f) => {
      const s = statSync(join(tmp, f));
      return `${f}:${s.size}:${s.mtimeMs}`;
    })
    .join("\n");
}

function tskvm(...args: string[]) {
  const before = snapshot();
  const r = spawnSync(process.execPath, [CLI, ...args], {
    cwd: tmp,
    encoding: "utf8",
    env: { ...process.env, TSKVM_GUESTS_DIR: GUESTS },
    timeout: 60_000,
  });
  expect(snapshot(), "the CLI wrote into the working directory").toBe(before);
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** One line on stderr, nothing on stdout, the given status. */
function expectRefusal(r: ReturnType<typeof tskvm>, status: number, pattern: RegExp) {
  expect(r.stdout).toBe("");
  expect(r.stderr.endsWith("\n")).toBe(true);
  expect(r.stderr.trimEnd().split("\n")).toHaveLength(1);
  expect(r.stderr).toMatch(/^tskvm: /);
  expect(r.stderr).toMatch(pattern);
  expect(r.status).toBe(status);
}

describe("tskvm run: bad input -> one clear line, non-zero exit, nothing written", () => {
  it("a truncated bzImage", () => {
    const k = join(tmp, "truncated-bzImage");
    writeFileSync(k, readFileSync(join(GUESTS, "bzImage")).subarray(0, 100_000));
    expectRefusal(
      tskvm("run", "--kernel", k),
      1,
      /bzImage truncated: the header announces \d+ bytes of kernel, the file has 100000/,
    );
  });

  it("a file that is not a kernel", () => {
    const k = join(tmp, "notes.txt");
    writeFileSync(k, "hello, this is not a kernel\n".repeat(100));
    expectRefusal(
      tskvm("--kernel", k),
      1,
      /not a bzImage: boot flag at 0x1fe .*; no multiboot header either/,
    );
  });

  it("an old boot protocol", () => {
    const k = join(tmp, "old-bzImage");
    const img = readFileSync(join(GUESTS, "bzImage"));
    img.writeUInt16LE(0x0204, 0x206);
    writeFileSync(k, img);
    expectRefusal(tskvm("--kernel", k), 1, /boot protocol 2\.04 is too old: tskvm needs 2\.06 or later/);
  });

  it("an initrd larger than memory (a sparse file: nothing is read)", () => {
    const i = join(tmp, "huge-initrd");
    writeFileSync(i, "");
    truncateSync(i, 512 * 1024 * 1024);
    expectRefusal(
      tskvm("--initrd", i, "--mem", "64M"),
      1,
      /--initrd .*huge-initrd: 536870912 bytes does not fit in 67108864 bytes/,
    );
  });

  it("an initrd that fits the memory but not above the kernel", () => {
    const i = join(tmp, "big-initrd");
    writeFileSync(i, "");
    truncateSync(i, 40 * 1024 * 1024);
    expectRefusal(tskvm("--initrd", i, "--mem", "48M"), 1, /initrd of 41943040 bytes does not fit/);
  });

  it("a missing kernel, initrd or disk file", () => {
    expectRefusal(tskvm("--kernel", "nope.bin"), 1, /--kernel nope\.bin: no such file/);
    expectRefusal(tskvm("--initrd", "nope.cpio"), 1, /--initrd nope\.cpio: no such file/);
    expectRefusal(tskvm("--disk", "missing.img"), 1, /--disk missing\.img: no such file/);
  });

  it("a disk whose size is not whole sectors, or a read-only file attached read-write", () => {
    const odd = join(tmp, "odd.img");
    writeFileSync(odd, Buffer.alloc(1000));
    expectRefusal(tskvm("--disk", odd), 1, /size 1000 is not a multiple of 512-byte sectors/);
    const ro = join(tmp, "ro.img");
    copyFileSync(odd, ro);
    truncateSync(ro, 1024);
    if (process.getuid?.() !== 0) {
      // root may write anything, so the permission case only holds for other users
      spawnSync("chmod", ["0444", ro]);
      expectRefusal(tskvm("--disk", ro), 1, /not writable \(add ,ro/);
    }
  });

  it.each([
    [["--bogus"], /unknown option '--bogus'/],
    [["run", "--mem"], /option '--mem <size>' argument missing/],
    [["--mem", "12Q"], /--mem: unknown unit "Q"/],
    [["--mem", "1.5K"], /--mem: "1.5K" is not a whole number of 4 KiB pages/],
    [["--mem", "8M"], /--mem: 8 MiB is too small/],
    [["--mem", "64G"], /--mem: at most 3072M/],
    [["--cpus", "0"], /--cpus: 0 is out of range 1-32/],
    [["--icount", "11"], /--icount: "11" is not a shift of 0-10/],
    [["--cpus", "two"], /--cpus: "two" is not a whole number/],
    [["--screenshot", "shot.png"], /--screenshot needs --gpu/],
    [["--disk", "a.img,fast"], /--disk a\.img: unknown option "fast"/],
    [["--disk", "a.img", "--disk", "a.img,ro"], /the same file is attached twice/],
    [["--net", "bad name!"], /--net: "bad name!" is not a switch name/],
    [["--balloon", "fast"], /--balloon: unknown option "fast"/],
    [["run", "extra"], /too many arguments/],
  ])("bad flags %j", (args, pattern) => {
    expectRefusal(tskvm(...(args as string[])), 2, pattern);
  });

  it("--screenshot into a missing directory is refused before anything runs", () => {
    expectRefusal(
      tskvm("--gpu", "--screenshot", "no/such/dir/shot.png"),
      1,
      /directory no\/such\/dir does not exist/,
    );
  });
});

describe("tskvm run: good input", () => {
  /** The multiboot test kernel (ELF build) in 32 MiB, then `extra` flags. */
  const multiboot = (...extra: string[]) =>
    tskvm("--kernel", join(GUESTS, "multiboot-test/multiboot-test.elf"), "--mem", "32M", ...extra);

  it("issue 8 item 7: the multiboot test kernel runs and exits through isa-debug-exit with 33", () => {
    const r = multiboot("--debug-exit", "--append", "cli");
    expect(r.stdout).toBe("tskvm multiboot-test: ok cmdline=cli\n");
    expect(r.stderr).toBe("");
    expect(r.status).toBe(33);
  });

  it("--icount: the same run with guest time counted in instructions", () => {
    const r = multiboot("--debug-exit", "--icount", "3", "--append", "ic");
    expect(r.stdout).toBe("tskvm multiboot-test: ok cmdline=ic\n");
    expect(r.status).toBe(33);
  });

  it("the a.out-kludge build too", () => {
    const r = tskvm(
      "--kernel",
      join(GUESTS, "multiboot-test/multiboot-test-aout.bin"),
      "--debug-exit",
      "--mem",
      "32M",
      "--append",
      "x",
    );
    expect(r.stdout).toBe("tskvm multiboot-test: ok cmdline=x\n");
    expect(r.status).toBe(33);
  });

  it("a guest that halts with interrupts off (power-off without ACPI) ends the run with 0", () => {
    // Without --debug-exit the test kernel's OUT to 0xf4 goes nowhere and it stops in CLI; HLT.
    const r = multiboot();
    expect(r.stdout).toBe(`tskvm multiboot-test: ok cmdline=${DEFAULT_APPEND}\n`);
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
  });

  it("--screenshot of a guest that never set up a scanout: the run ends, then status 1 and why", () => {
    const png = join(tmp, "never.png");
    const r = multiboot("--debug-exit", "--gpu", "--screenshot", png);
    expect(r.stdout).toBe(`tskvm multiboot-test: ok cmdline=${DEFAULT_APPEND}\n`);
    expect(r.stderr).toBe("tskvm: screenshot: the guest has not set up a scanout yet\n");
    expect(r.status).toBe(1);
    expect(existsSync(png)).toBe(false);
  });

  it("--help prints usage and exits 0", () => {
    const r = spawnSync(process.execPath, [CLI, "run", "--help"], { encoding: "utf8" });
    expect(r.status).toBe(0);
    expect(r.stdout).toContain("--kernel <path>");
    expect(r.stdout).toContain("--debug-exit");
  });

  it("stdout closed under a running guest (`tskvm | head`): the guest is stopped, status 1 and why", async () => {
    const child = spawn(process.execPath, [CLI], {
      cwd: tmp,
      env: { ...process.env, TSKVM_GUESTS_DIR: GUESTS },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let err = "";
    child.stderr.on("data", (d: Buffer) => {
      err += d.toString("utf8");
    });
    // The reader goes away after the first bytes of the boot log; the kernel goes on printing.
    child.stdout.once("data", () => child.stdout.destroy());
    const status = await new Promise<number | null>((res) => child.on("close", (code) => res(code)));
    expect(err).toBe("tskvm: the console's output failed (EPIPE); the guest was stopped\n");
    expect(status).toBe(1);
  }, 60_000);
});
