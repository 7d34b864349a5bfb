// Playwright runs the real hanzo-live binary (built by tools/test.sh) on a free port with a
// temporary data directory, drives Debian's Chromium against it, and stops it afterwards.
//
// Never `npx playwright install`: browsers cannot be downloaded here; /usr/bin/chromium is
// used instead (CHROMIUM_PATH overrides it). Set BASE_URL to test an already running server.
import { defineConfig } from "@playwright/test";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";

const ROOT = path.resolve(__dirname, "..");
const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const BIN = process.env.HANZO_LIVE_BIN ?? path.join(ROOT, "target", "debug", "hanzo-live");

// The runner picks the port and data dir once; workers re-evaluate this file and inherit them
// through the environment.
if (!process.env.HANZO_E2E_PORT || !process.env.HANZO_E2E_HUB_PORT) {
  // Two free ports at once (the server's and the local hub's), so they differ.
  const probe =
    'const n=require("net");const a=n.createServer(),b=n.createServer();' +
    'a.listen(0,"127.0.0.1",()=>b.listen(0,"127.0.0.1",()=>{' +
    'console.log(a.address().port+" "+b.address().port);a.close();b.close();}));';
  const [app, hub] = execFileSync(process.execPath, ["-e", probe]).toString().trim().split(" ");
  process.env.HANZO_E2E_PORT = app;
  process.env.HANZO_E2E_HUB_PORT = hub;
}
if (!process.env.HANZO_E2E_DATA_DIR) {
  process.env.HANZO_E2E_DATA_DIR = fs.mkdtempSync(path.join(os.tmpdir(), "hanzo-live-e2e-"));
}
const PORT = process.env.HANZO_E2E_PORT;
const DATA_DIR = process.env.HANZO_E2E_DATA_DIR;
// The Wan pipelines stream the tiny random model set, written once into the server's models
// directory (<data-dir>/models) by the binary under test.
const MODELS = path.join(DATA_DIR, "models");
if (!process.env.BASE_URL && !fs.existsSync(path.join(MODELS, "Wan2.1-T2V-1.3B"))) {
  execFileSync(BIN, ["engine", "make-tiny", "all", "--out", MODELS], { stdio: "ignore" });
}
const BASE_URL = process.env.BASE_URL ?? `http://127.0.0.1:${PORT}`;
// A Hugging Face Hub on loopback (local-hub.mjs) serving <data-dir>/hub; the server downloads
// from it (HF_ENDPOINT) and never from a real hub cache (HF_HUB_CACHE inside the data dir).
const HUB_PORT = process.env.HANZO_E2E_HUB_PORT;
const HUB_URL = `http://127.0.0.1:${HUB_PORT}`;

export default defineConfig({
  testDir: "./tests",
  timeout: 30_000,
  expect: { timeout: 10_000 },
  fullyParallel: false,
  workers: 1,
  retries: 0,
  forbidOnly: !!process.env.CI,
  reporter: [["list"], ["./summary-reporter.ts"]],
  globalTeardown: "./global-teardown.ts",
  webServer: process.env.BASE_URL
    ? undefined
    : [
        {
          command: `"${process.execPath}" end2end/local-hub.mjs "${path.join(DATA_DIR, "hub")}" ${HUB_PORT}`,
          cwd: ROOT,
          url: `${HUB_URL}/health`,
          reuseExistingServer: false,
          timeout: 30_000,
        },
        {
          command: `"${BIN}" --host 127.0.0.1 --port ${PORT} --data-dir "${DATA_DIR}" --site-root "${path.join(ROOT, "target", "site")}"`,
          cwd: ROOT,
          url: `${BASE_URL}/health`,
          reuseExistingServer: false,
          timeout: 120_000,
          stdout: "pipe",
          stderr: "pipe",
          gracefulShutdown: { signal: "SIGTERM", timeout: 15_000 },
          env: {
            HF_ENDPOINT: HUB_URL,
            HF_HUB_CACHE: path.join(DATA_DIR, "hf-cache"),
            HF_TOKEN: "",
          },
        },
      ],
  use: {
    baseURL: BASE_URL,
    browserName: "chromium",
    trace: "retain-on-failure",
    launchOptions: {
      executablePath: CHROMIUM,
      // No network beyond loopback here: keep Chromium from calling home.
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-quic",
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
      ],
    },
  },
});
