/**
 * Issue 8 "Done when" items 3 (virtio-net: two VMs on one switch) and 5 (gpu: `--screenshot`
 * shows the boot text), over the serial console. Two or more boots each: only with TSKVM_LONG=1.
 */
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { L2Switch } from "@tskvm/virtio";
import { PNG } from "pngjs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GuestSession, PROMPT } from "./guest-session.js";

const PKG = resolve(__dirname, "..");
const OUT = join(PKG, "node_modules", ".tskvm-e2e-cli");
let tmp = "";

describe.skipIf(!process.env.TSKVM_LONG)("bundled Linux on tskvm: net and gpu (TSKVM_LONG)", () => {
  beforeAll(() => {
    tmp = mkdtempSync(join(tmpdir(), "tskvm-e2e-long-"));
  });
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  it("virtio-net: two VMs on one in-process switch ping each other and move a file with nc", async () => {
    const switches = new Map<string, L2Switch>();
    const [a, b] = await Promise.all([
      GuestSession.start({ mem: "96M", net: "lan", switches }),
      GuestSession.start({ mem: "96M", net: "lan", switches }),
    ]);
    try {
      await Promise.all([a.boot(600_000), b.boot(600_000)]);
      await a.ok("ifconfig eth0 10.0.0.1 netmask 255.255.255.0 up");
      await b.ok("ifconfig eth0 10.0.0.2 netmask 255.255.255.0 up");
      const ping = await a.ok("ping -c 3 10.0.0.2", 120_000);
      expect(ping).toMatch(/3 packets transmitted, 3 (packets )?received/);
      expect(await b.ok("ping -c 3 10.0.0.1", 120_000)).toMatch(
        /3 packets transmitted, 3 (packets )?received/,
      );
      // A file from A to B: B listens, A sends and closes.
      await a.ok("seq 1 5000 > /tmp/payload && md5sum < /tmp/payload > /tmp/sum");
      b.send("nc -l -p 5555 > /tmp/got &\n");
      await b.expect(PROMPT);
      await b.ok("sleep 1");
      await a.ok("nc -w 5 10.0.0.2 5555 < /tmp/payload", 120_000);
      await b.ok("sleep 2; wait", 60_000);
      const sumA = await a.ok("cat /tmp/sum");
      expect(await b.ok("md5sum < /tmp/got")).toBe(sumA);
      expect((await b.ok("wc -c < /tmp/got")).trim()).toBe("23893");
    } finally {
      await Promise.all([a.stop(), b.stop()]);
    }
  }, 1_200_000);

  it("gpu: `tskvm --gpu --screenshot` writes a PNG with the framebuffer console's text", async () => {
    const built = spawnSync(
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
      { cwd: PKG, stdio: "pipe" },
    );
    expect(built.status).toBe(0);
    const png = join(tmp, "screen.png");
    const child = spawn(process.execPath, [join(OUT, "cli.js"), "--gpu", "--screenshot", png], {
      cwd: PKG,
      stdio: ["pipe", "pipe", "pipe"],
      // The CLI built into OUT finds the bundled guests relative to itself only from dist/.
      env: { ...process.env, TSKVM_GUESTS_DIR: join(PKG, "../../guests") },
    });
    let out = "";
    let sent = false;
    child.stdout.on("data", (d: Buffer) => {
      out += d.toString("latin1");
      if (
        !sent &&
        out.includes("TSKVM-BOOT-OK") &&
        out.slice(out.indexOf("TSKVM-BOOT-OK")).includes(PROMPT)
      ) {
        sent = true;
        // The kernel log onto the framebuffer console (the kernel's own console is ttyS0), then
        // reset: the screenshot is written when the run ends, from the display's last picture
        // (Linux resets the device on the way down).
        setTimeout(
          () => child.stdin.write("dmesg | grep -i fb0; dmesg > /dev/tty0; sleep 2; reboot -f\n"),
          1000,
        );
      }
    });
    const status = await new Promise<number | null>((r) => child.on("exit", (c) => r(c)));
    expect(out).toMatch(/fb0: virtio_?gpu/i);
    expect(status).toBe(0);
    const img = PNG.sync.read(readFileSync(png));
    expect(img.width).toBeGreaterThanOrEqual(640);
    // The framebuffer console draws light glyphs on black: the top text rows hold many lit
    // pixels, in shapes (not a uniform fill), and the bottom-right corner stays background.
    const lit = (x0: number, y0: number, w: number, h: number) => {
      let n = 0;
      for (let y = y0; y < y0 + h; y++)
        for (let x = x0; x < x0 + w; x++) {
          const i = (y * img.width + x) * 4;
          if (img.data[i]! + img.data[i + 1]! + img.data[i + 2]! > 300) n++;
        }
      return n;
    };
    const textArea = lit(0, 0, Math.min(img.width, 640), 160);
    expect(textArea).toBeGreaterThan(2000);
    expect(textArea).toBeLessThan(640 * 160 * 0.6);
    // Rows of glyphs: some scanlines in the text area are lit, the gaps between lines are not all lit.
    const rows = Array.from({ length: 160 }, (_, y) => lit(0, y, Math.min(img.width, 640), 1));
    expect(rows.filter((n) => n === 0).length).toBeGreaterThan(5);
    expect(rows.filter((n) => n > 20).length).toBeGreaterThan(40);
  }, 600_000);
});
