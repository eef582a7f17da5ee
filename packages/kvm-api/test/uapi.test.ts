/**
 * Checks the byte-level uapi view against the real header: a C program, compiled here with gcc
 * against the installed <linux/kvm.h> (Debian: linux-libc-dev), prints sizeof/offsetof of every
 * member we lay out, every ioctl number and every constant we export, and we compare. Where
 * /dev/kvm can be opened it also asks the host KVM for its API version.
 * Needs: gcc and linux-libc-dev. Skipped (with a message) when either is missing.
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import * as Caps from "../src/caps.js";
import * as Cpuid from "../src/cpuid.js";
import * as Kclock from "../src/devices/kvmclock.js";
import { KVM_PIT_SPEAKER_DUMMY } from "../src/devices/pit.js";
import * as Exits from "../src/exits.js";
import * as Evfd from "../src/ioeventfd.js";
import * as Routing from "../src/irq-routing.js";
import { KVM_MEM_LOG_DIRTY_PAGES, KVM_MEM_READONLY } from "../src/memory.js";
import { IOCTLS } from "../src/uapi/ioctl.js";
import { StructView } from "../src/uapi/layout.js";
import { ALL_STRUCTS, kvm_regs, kvm_run } from "../src/uapi/structs.js";
import * as VS from "../src/vcpu-state.js";

const HEADER = "/usr/include/linux/kvm.h";
const haveGcc = (() => {
  try {
    execFileSync("gcc", ["--version"], { stdio: "ignore" });
    return existsSync(HEADER);
  } catch {
    return false;
  }
})();

function pick(mod: Record<string, unknown>, prefix: string): [string, number][] {
  return Object.entries(mod).filter(([k, v]) => k.startsWith(prefix) && typeof v === "number") as [
    string,
    number,
  ][];
}

/** Constants exported by this package that the header defines under the same name. */
const CONSTANTS: [string, number][] = [
  ...pick(Caps, "KVM_CAP_"),
  ["KVM_API_VERSION", Caps.KVM_API_VERSION],
  ...pick(Exits, "KVM_EXIT_"),
  ...pick(Exits, "KVM_INTERNAL_ERROR_"),
  ...pick(Exits, "KVM_SYSTEM_EVENT_"),
  ...pick(Evfd, "KVM_IOEVENTFD_FLAG_"),
  ...pick(Routing, "KVM_IRQCHIP_"),
  ...pick(Routing, "KVM_IRQ_ROUTING_"),
  ...pick(VS, "KVM_MP_STATE_"),
  ...pick(VS, "KVM_VCPUEVENT_VALID_"),
  ...pick(Kclock, "KVM_CLOCK_"),
  ["KVM_CPUID_FLAG_SIGNIFCANT_INDEX", Cpuid.KVM_CPUID_FLAG_SIGNIFCANT_INDEX],
  ["KVM_MEM_LOG_DIRTY_PAGES", KVM_MEM_LOG_DIRTY_PAGES],
  ["KVM_MEM_READONLY", KVM_MEM_READONLY],
  ["KVM_PIT_SPEAKER_DUMMY", KVM_PIT_SPEAKER_DUMMY],
];

function program(): string {
  const lines: string[] = [];
  for (const s of ALL_STRUCTS) {
    lines.push(`P("size:${s.name}", sizeof(struct ${s.name}));`);
    for (const [path, f] of Object.entries(s.fields)) {
      lines.push(`P("off:${s.name}:${path}", offsetof(struct ${s.name}, ${path}));`);
      lines.push(`P("msize:${s.name}:${path}:${f.count}", sizeof(((struct ${s.name} *)0)->${path}));`);
    }
  }
  for (const name of Object.keys(IOCTLS)) lines.push(`P("ioctl:${name}", (unsigned long)(${name}));`);
  for (const [name] of CONSTANTS) lines.push(`P("const:${name}", (unsigned long)(${name}));`);
  return `#include <stddef.h>
#include <stdio.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <linux/kvm.h>
#define P(k, v) printf("%s %lu\\n", k, (unsigned long)(v))
int main(void) {
${lines.join("\n")}
  int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
  if (fd >= 0) {
    P("host:api", ioctl(fd, KVM_GET_API_VERSION, 0));
${pick(Caps, "KVM_CAP_")
  .map(([n]) => `    P("hostcap:${n}", ioctl(fd, KVM_CHECK_EXTENSION, ${n}));`)
  .join("\n")}
    close(fd);
  }
  return 0;
}
`;
}

const results = new Map<string, number>();
if (haveGcc) {
  const dir = mkdtempSync(join(tmpdir(), "kvm-uapi-"));
  writeFileSync(join(dir, "uapi.c"), program());
  execFileSync("gcc", ["-O0", "-o", join(dir, "uapi"), join(dir, "uapi.c")], { stdio: "pipe" });
  const out = execFileSync(join(dir, "uapi"), { encoding: "utf8" });
  for (const line of out.trim().split("\n")) {
    const i = line.lastIndexOf(" ");
    results.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
}

describe.skipIf(!haveGcc)("uapi layouts and numbers match <linux/kvm.h> (gcc)", () => {
  for (const s of ALL_STRUCTS) {
    it(`struct ${s.name}: sizeof and every member's offset and size`, () => {
      expect(results.get(`size:${s.name}`)).toBe(s.size);
      for (const [path, f] of Object.entries(s.fields)) {
        expect({ path, off: results.get(`off:${s.name}:${path}`) }).toEqual({ path, off: f.offset });
        const elem = { u8: 1, s8: 1, u16: 2, s16: 2, u32: 4, s32: 4, u64: 8, s64: 8 }[f.type];
        expect({ path, size: results.get(`msize:${s.name}:${path}:${f.count}`) }).toEqual({
          path,
          size: elem * f.count,
        });
      }
    });
  }
  it("every ioctl request number", () => {
    for (const [name, v] of Object.entries(IOCTLS))
      expect({ name, v: results.get(`ioctl:${name}`) }).toEqual({ name, v });
  });
  it("every exported KVM constant", () => {
    for (const [name, v] of CONSTANTS)
      expect({ name, v: results.get(`const:${name}`) }).toEqual({ name, v: v >>> 0 });
  });
  it("the host's /dev/kvm (when it can be opened) reports API version 12", () => {
    const api = results.get("host:api");
    if (api === undefined) return; // no /dev/kvm access here
    expect(api).toBe(12);
    // Every capability we claim is known to the real kernel under the same number.
    for (const [name] of pick(Caps, "KVM_CAP_"))
      expect({ name, on: results.get(`hostcap:${name}`)! > 0 }).toEqual({ name, on: true });
  });
});

describe("StructView", () => {
  it("reads and writes members little-endian at their offsets", () => {
    const v = new StructView(kvm_regs);
    v.set("rip", 0xffffffff81000000n);
    expect(v.bytes[16 * 8 + 7]).toBe(0xff);
    expect(v.big("rip")).toBe(0xffffffff81000000n);
    const r = new StructView(kvm_run);
    r.set("io.port", 0x3f8);
    r.set("mmio.data", 0x41, 3);
    expect(r.num("io.port")).toBe(0x3f8);
    expect(r.array("mmio.data")[3]).toBe(0x41);
    expect(() => r.num("cr8")).toThrow(TypeError);
    expect(() => r.num("nope")).toThrow(RangeError);
  });
});
