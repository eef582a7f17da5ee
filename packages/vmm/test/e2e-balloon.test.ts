/**
 * Free page reporting and hinting against the Linux 6.1 virtio_balloon driver of the bundled
 * guest (CONFIG_PAGE_REPORTING=y): the layouts the unit tests in @tskvm/virtio assume, checked
 * against the real driver. One boot of ~80 s: only with TSKVM_LONG=1.
 */
import { describe, expect, it } from "vitest";
import { GuestSession } from "./guest-session.js";

const MiB = 1 << 20;
const memFree = (meminfo: string): number => {
  const m = /^MemFree:\s+(\d+) kB/m.exec(meminfo);
  if (!m) throw new Error(`no MemFree in ${meminfo}`);
  return Number(m[1]) * 1024;
};

describe.skipIf(!process.env.TSKVM_LONG)("bundled Linux and the balloon's free pages (TSKVM_LONG)", () => {
  it("reports free 2 MiB blocks at boot and after a free; hints 4 MiB blocks on request and takes them back at DONE", async () => {
    const s = await GuestSession.start({ mem: "256M", balloon: "hint" });
    try {
      await s.boot();
      const b = s.vm.virtioDevices.balloon!;
      // mm/page_reporting.c: the first pass runs 2 s after the driver registers.
      await s.until("free pages reported", () => b.reportedBytes > 0, 120_000);
      expect(b.reportedBytes % (2 * MiB)).toBe(0);
      // Data written by the guest is kept: only free blocks were dropped.
      const sum = await s.ok("head -c 2000000 /dev/urandom > /tmp/a && md5sum /tmp/a");
      await s.ok("head -c 24000000 /dev/zero > /tmp/z");
      const reported = b.reportedBytes;
      await s.ok("rm /tmp/z; sleep 5");
      expect(b.reportedBytes).toBeGreaterThan(reported);

      const free0 = memFree(await s.ok("cat /proc/meminfo"));
      const id = b.requestFreePageHints();
      expect(id).toBeGreaterThan(1);
      await s.until("hinting run stopped", () => b.freePageHint.tag === "stopped", 120_000);
      expect(b.hintedBytes).toBeGreaterThan(64 * MiB);
      expect(b.hintedBytes % (4 * MiB)).toBe(0);
      // The driver holds the hinted blocks until DONE, then frees them.
      expect(memFree(await s.ok("cat /proc/meminfo"))).toBeLessThan(free0 - 64 * MiB);
      b.freePageHintsDone();
      await s.ok("sleep 2");
      expect(memFree(await s.ok("cat /proc/meminfo"))).toBeGreaterThan(free0 - 16 * MiB);
      expect(await s.ok("md5sum /tmp/a")).toBe(sum);
      expect(b.lastError).toBeUndefined();
      expect(Object.keys(b.metrics).filter((k) => k.startsWith("refused"))).toEqual([]);
    } finally {
      await s.stop();
    }
  }, 600_000);
});
