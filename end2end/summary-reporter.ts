// Prints one plain closing line, "playwright: N passed, N failed[, N skipped]", that CI reads
// (Playwright's own list reporter ends with "N passed (Xs)").
import type { FullResult, Reporter, TestCase, TestResult } from "@playwright/test/reporter";

class SummaryReporter implements Reporter {
  private outcomes = new Map<string, string>();

  onTestEnd(test: TestCase, result: TestResult) {
    // The last attempt decides (retries overwrite earlier ones).
    this.outcomes.set(test.id, result.status);
  }

  onEnd(result: FullResult) {
    let passed = 0;
    let failed = 0;
    let skipped = 0;
    for (const status of this.outcomes.values()) {
      if (status === "passed") passed++;
      else if (status === "skipped") skipped++;
      else failed++;
    }
    // A run that broke before any test (e.g. the server never started) is a failure.
    if (result.status !== "passed" && failed === 0) failed = 1;
    const tail = skipped ? `, ${skipped} skipped` : "";
    console.log(`\nplaywright: ${passed} passed, ${failed} failed${tail}`);
  }

  printsToStdio() {
    return false;
  }
}

export default SummaryReporter;
