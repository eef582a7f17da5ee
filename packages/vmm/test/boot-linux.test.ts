/**
 * The bundled Linux on tskvm's own stack (cpu-x86 + vmx + mmu-ept + kvm-api, this package's
 * loader, MP table and devices), for as long as TSKVM_BOOT_SECONDS allows (default 300). Long:
 * only with TSKVM_LONG=1. It checks what the kernel itself reports about the machine we built;
 * the marker line (issue 8 item 1) is recorded when reached.
 */
import { resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { parseVmOptions } from "../src/config.js";
import { bundledGuest } from "../src/guests.js";
import { createVm } from "../src/vm.js";

const GUESTS = resolve(__dirname, "../../../guests");
const SECONDS = Number(process.env.TSKVM_BOOT_SECONDS ?? 300);

describe.skipIf(!process.env.TSKVM_LONG)("bundled Linux on tskvm", () => {
  it(
    "boots with our e820 map, command line, initrd and MP table as the kernel reports them",
    async () => {
      let serial = "";
      const append = "console=ttyS0 earlyprintk=serial,ttyS0 reboot=k";
      const vm = await createVm(parseVmOptions({ mem: "128M", append }, bundledGuest(GUESTS)), {
        onSerial: (b) => {
          serial += String.fromCharCode(b);
          if (serial.includes("TSKVM-BOOT-OK")) void vm.control({ kind: "stop" });
        },
      });
      const timer = setTimeout(() => void vm.control({ kind: "stop" }), SECONDS * 1000);
      const t0 = performance.now();
      const end = await vm.run();
      clearTimeout(timer);
      vm.close();
      const last = serial.trimEnd().split("\n").slice(-3).join(" | ");
      console.log(
        `after ${((performance.now() - t0) / 1000).toFixed(1)} s: ${JSON.stringify(end)}; last lines: ${last}`,
      );
      expect(serial).toContain("Linux version 6.1");
      expect(serial).toContain(`Command line: ${append}`);
      expect(serial).toMatch(/BIOS-e820: \[mem 0x0000000000100000-0x0000000007ffffff\] usable/);
      expect(serial).toContain("found SMP MP-table at [mem 0x0009fc00-0x0009fc0f]");
    },
    (SECONDS + 120) * 1000,
  );
});
