/**
 * The dependency-direction check of shared/ARCHITECTURE.md: an arrow is "may import", nothing
 * points up, and cpu-x86, mmu-ept and virtio import no package of ours. It reads every package's
 * package.json and every import in its sources, tests and benchmarks.
 */
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve, sep } from "node:path";

/** Which of our packages each package may import (folder names under packages/). */
export const ALLOWED_IMPORTS: Readonly<Record<string, readonly string[]>> = {
  "cpu-x86": [],
  "mmu-ept": [],
  virtio: [],
  vmx: ["cpu-x86", "mmu-ept"],
  "kvm-api": ["cpu-x86", "mmu-ept", "vmx"],
  vmm: ["kvm-api", "virtio"],
};

export interface Violation {
  /** The importing package (folder name). */
  readonly pkg: string;
  /** Where: a source file relative to the root, or the package.json. */
  readonly where: string;
  /** The specifier or dependency name that breaks the rule. */
  readonly target: string;
  readonly reason: string;
}

const SCOPE = "@tskvm/";
const SOURCE_DIRS = ["src", "test", "bench", "tools", "data"];
const SOURCE_EXT = /\.(?:[cm]?[jt]s|tsx)$/;
// Static imports/exports, dynamic import() and require(); comments are not parsed out, so a
// commented import still counts (commented-out code is not allowed here anyway).
const SPECIFIER =
  /(?:\bimport\s*(?:type\s+)?(?:[\w*{}\s,$]+\s*from\s*)?|\bexport\s*(?:type\s+)?[\w*{}\s,$]*\s*from\s*|\bimport\s*\(\s*|\brequire\s*\(\s*)["']([^"']+)["']/g;

function walk(dir: string, out: string[]): void {
  for (const name of readdirSync(dir)) {
    if (name === "node_modules" || name === "dist" || name.startsWith(".")) continue;
    const full = join(dir, name);
    if (statSync(full).isDirectory()) walk(full, out);
    else if (SOURCE_EXT.test(name)) out.push(full);
  }
}

/** The package folder a scoped specifier names, or undefined when it is not ours. */
function scopedTarget(spec: string): string | undefined {
  if (!spec.startsWith(SCOPE)) return undefined;
  return spec.slice(SCOPE.length).split("/")[0];
}

export function checkDependencyDirection(root: string): Violation[] {
  const violations: Violation[] = [];
  const pkgRoot = join(root, "packages");
  const folders = readdirSync(pkgRoot).filter((f) => existsSync(join(pkgRoot, f, "package.json")));
  for (const pkg of folders) {
    const allowed = ALLOWED_IMPORTS[pkg];
    if (allowed === undefined) {
      violations.push({
        pkg,
        where: `packages/${pkg}`,
        target: pkg,
        reason: "package is not a layer of ARCHITECTURE.md; add it to ALLOWED_IMPORTS first",
      });
      continue;
    }
    const ok = (target: string) => target === pkg || allowed.includes(target);
    const manifest = JSON.parse(readFileSync(join(pkgRoot, pkg, "package.json"), "utf8")) as Record<
      string,
      Record<string, string> | undefined
    >;
    for (const field of ["dependencies", "devDependencies", "peerDependencies", "optionalDependencies"]) {
      for (const dep of Object.keys(manifest[field] ?? {})) {
        const target = scopedTarget(dep);
        if (target !== undefined && !ok(target)) {
          violations.push({
            pkg,
            where: `packages/${pkg}/package.json (${field})`,
            target: dep,
            reason: `${pkg} may not depend on ${target}`,
          });
        }
      }
    }
    const files: string[] = [];
    for (const d of SOURCE_DIRS) {
      const full = join(pkgRoot, pkg, d);
      if (existsSync(full)) walk(full, files);
    }
    for (const file of files) {
      const text = readFileSync(file, "utf8");
      const where = relative(root, file);
      for (const m of text.matchAll(SPECIFIER)) {
        const spec = m[1]!;
        const target = scopedTarget(spec);
        if (target !== undefined) {
          if (!ok(target))
            violations.push({ pkg, where, target: spec, reason: `${pkg} may not import ${target}` });
          continue;
        }
        if (!spec.startsWith(".")) continue;
        // A relative path that leaves the package reaches into another package's files.
        const resolved = resolve(dirname(file), spec);
        const rel = relative(pkgRoot, resolved).split(sep);
        if (rel[0] !== ".." && rel[0] !== pkg && rel[0] !== undefined && rel.length > 1) {
          violations.push({
            pkg,
            where,
            target: spec,
            reason: `relative import into packages/${rel[0]}; import the package by name`,
          });
        }
      }
    }
  }
  return violations;
}

export function formatViolations(violations: readonly Violation[]): string {
  return violations.map((v) => `${v.where}: ${v.target}: ${v.reason}`).join("\n");
}
