#!/usr/bin/env node
// The README's test command (`npm test`): builds what the tests need, runs every workspace's
// vitest suite through turbo, type-checks every workspace (src, test and bench: vitest strips types
// without checking them; a failed type check counts as one failed test), then sums the per-package
// JSON reports into the plain closing line
// `N passed, N failed[, N skipped]` that CI reads. It exits non-zero when a test failed, a suite
// could not run, or no test ran at all. The line is also written to .test-summary for .ci/run.
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
/** @type {string[]} */
const workspaces = JSON.parse(readFileSync(join(root, "package.json"), "utf8")).workspaces;
const reports = workspaces.map((w) => join(root, w, "test-report.json"));
for (const r of reports) rmSync(r, { force: true });

const extra = process.argv.slice(2);
const turbo = spawnSync("npx", ["turbo", "run", "test", "--continue", ...extra], {
  cwd: root,
  stdio: "inherit",
  env: { TURBO_TELEMETRY_DISABLED: "1", ...process.env },
});

let passed = 0;
let failed = 0;
let skipped = 0;
/** @type {string[]} */
const missing = [];
for (const [i, r] of reports.entries()) {
  if (!existsSync(r)) {
    // A workspace without a report crashed before vitest could write one (or was filtered out).
    if (extra.length === 0) missing.push(workspaces[i] ?? r);
    continue;
  }
  const j = JSON.parse(readFileSync(r, "utf8"));
  passed += j.numPassedTests ?? 0;
  failed += j.numFailedTests ?? 0;
  skipped += (j.numPendingTests ?? 0) + (j.numTodoTests ?? 0);
  // Suites that failed to load count as failures even though no test inside them ran.
  for (const suite of j.testResults ?? []) {
    if (suite.status === "failed" && (suite.assertionResults ?? []).length === 0) failed += 1;
  }
}
failed += missing.length;
if (missing.length > 0) console.error(`no test report from: ${missing.join(", ")}`);
if (extra.length === 0) {
  const tc = spawnSync("npx", ["turbo", "run", "typecheck", "--continue", "--output-logs=errors-only"], {
    cwd: root,
    stdio: "inherit",
    env: { TURBO_TELEMETRY_DISABLED: "1", ...process.env },
  });
  if (tc.status !== 0) {
    failed += 1;
    console.error("type check failed: `npm run typecheck` shows where");
  }
}
const line = `${passed} passed, ${failed} failed${skipped > 0 ? `, ${skipped} skipped` : ""}`;
writeFileSync(join(root, ".test-summary"), `${line}\n`);
console.log(line);
const ok = turbo.status === 0 && failed === 0 && passed > 0;
if (passed === 0) console.error("no test ran");
process.exit(ok ? 0 : 1);
