import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { ALLOWED_IMPORTS, checkDependencyDirection, formatViolations } from "../src/deps";

const ROOT = resolve(__dirname, "../..");

describe("dependency direction (ARCHITECTURE.md arrows)", () => {
  const temps: string[] = [];
  afterEach(() => {
    for (const t of temps.splice(0)) rmSync(t, { recursive: true, force: true });
  });

  /** A copy of packages/ (no node_modules or dist) to plant violations in. */
  function copyRepo(): string {
    const dir = mkdtempSync(join(tmpdir(), "tskvm-deps-"));
    temps.push(dir);
    cpSync(join(ROOT, "packages"), join(dir, "packages"), {
      recursive: true,
      filter: (src) => !/[/\\](node_modules|dist|\.turbo)([/\\]|$)/.test(src),
    });
    return dir;
  }

  it("the repository itself has no forbidden import", () => {
    const v = checkDependencyDirection(ROOT);
    expect(formatViolations(v)).toBe("");
  });

  it("covers exactly the six layers", () => {
    expect(Object.keys(ALLOWED_IMPORTS).sort()).toEqual(
      ["cpu-x86", "kvm-api", "mmu-ept", "virtio", "vmm", "vmx"].sort(),
    );
  });

  it('catches import "@tskvm/vmm" in packages/cpu-x86', () => {
    const dir = copyRepo();
    writeFileSync(join(dir, "packages/cpu-x86/src/bad.ts"), 'import "@tskvm/vmm";\n');
    const v = checkDependencyDirection(dir);
    expect(v).toHaveLength(1);
    expect(v[0]).toMatchObject({ pkg: "cpu-x86", target: "@tskvm/vmm" });
  });

  it("catches type-only, re-export, dynamic and subpath imports", () => {
    const dir = copyRepo();
    mkdirSync(join(dir, "packages/virtio/test"), { recursive: true });
    writeFileSync(
      join(dir, "packages/virtio/test/bad.test.ts"),
      [
        'import type { X } from "@tskvm/cpu-x86";',
        'export { Y } from "@tskvm/mmu-ept/testing";',
        'const z = await import("@tskvm/kvm-api");',
      ].join("\n"),
    );
    const targets = checkDependencyDirection(dir).map((x) => x.target);
    expect(targets.sort()).toEqual(["@tskvm/cpu-x86", "@tskvm/kvm-api", "@tskvm/mmu-ept/testing"]);
  });

  it("catches an upward arrow: vmx importing kvm-api, vmm importing cpu-x86 directly", () => {
    const dir = copyRepo();
    writeFileSync(join(dir, "packages/vmx/src/bad.ts"), 'import { Kvm } from "@tskvm/kvm-api";\n');
    writeFileSync(join(dir, "packages/vmm/src/bad.ts"), 'import { decode } from "@tskvm/cpu-x86";\n');
    const v = checkDependencyDirection(dir);
    expect(v.map((x) => `${x.pkg}->${x.target}`).sort()).toEqual([
      "vmm->@tskvm/cpu-x86",
      "vmx->@tskvm/kvm-api",
    ]);
  });

  it("allows the arrows ARCHITECTURE.md draws", () => {
    const dir = copyRepo();
    writeFileSync(
      join(dir, "packages/kvm-api/src/ok.ts"),
      'import "@tskvm/vmx";\nimport "@tskvm/cpu-x86";\n',
    );
    writeFileSync(join(dir, "packages/vmm/src/ok.ts"), 'import "@tskvm/kvm-api";\nimport "@tskvm/virtio";\n');
    expect(checkDependencyDirection(dir)).toEqual([]);
  });

  it("catches a forbidden dependency in package.json", () => {
    const dir = copyRepo();
    const pj = join(dir, "packages/mmu-ept/package.json");
    writeFileSync(pj, JSON.stringify({ name: "@tskvm/mmu-ept", devDependencies: { "@tskvm/vmx": "0.0.0" } }));
    const v = checkDependencyDirection(dir);
    expect(v.map((x) => x.target)).toEqual(["@tskvm/vmx"]);
  });

  it("catches a relative import reaching into another package", () => {
    const dir = copyRepo();
    writeFileSync(join(dir, "packages/virtio/src/bad.ts"), 'import "../../vmm/src/index";\n');
    const v = checkDependencyDirection(dir);
    expect(v).toHaveLength(1);
    expect(v[0]!.reason).toMatch(/packages\/vmm/);
  });
});
