// Shared vitest settings: every package writes a JSON report that tools/run-tests.mjs sums into
// the closing "N passed, N failed" line CI reads.
import { defineConfig } from "vitest/config";

export const sharedTestConfig = defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    reporters: ["default", ["json", { outputFile: "test-report.json" }]],
    // A package whose first tests have not landed yet still builds; tools/run-tests.mjs fails
    // the whole run when no test at all ran.
    passWithNoTests: true,
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
