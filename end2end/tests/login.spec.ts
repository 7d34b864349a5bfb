// A server started with --require-login: a guest's Start is refused and opens the sign-in
// dialog; once signed up, the same Start streams. Runs its own server (the suite's one takes
// guests), the same binary and site, on a free port with a fresh data directory.
import { expect, test } from "@playwright/test";
import { spawn, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { decodedFrames } from "./studio";

const ROOT = path.resolve(__dirname, "..", "..");
const BIN = process.env.HANZO_LIVE_BIN ?? path.join(ROOT, "target", "debug", "hanzo-live");

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

let server: ChildProcess | undefined;
let dataDir = "";
let url = "";

test.beforeAll(async () => {
  test.skip(!!process.env.BASE_URL, "needs a server of its own, started here");
  const port = await freePort();
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "hanzo-live-e2e-login-"));
  url = `http://127.0.0.1:${port}`;
  server = spawn(
    BIN,
    ["--host", "127.0.0.1", "--port", String(port), "--data-dir", dataDir,
     "--site-root", path.join(ROOT, "target", "site"), "--require-login"],
    { cwd: ROOT, stdio: "ignore", env: { ...process.env, HF_TOKEN: "" } },
  );
  await expect
    .poll(async () => (await fetch(`${url}/health`).catch(() => undefined))?.status, { timeout: 60_000 })
    .toBe(200);
});

test.afterAll(async () => {
  if (server && server.exitCode === null) {
    const exited = new Promise((resolve) => server!.once("exit", resolve));
    server.kill("SIGTERM");
    await exited;
  }
  if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
});

test("with --require-login a guest's Start asks to sign in; signed up, it streams", async ({ page }) => {
  await page.goto(`${url}/`);
  await expect(page.getByTestId("app-shell")).toHaveAttribute("data-hydrated", "true");
  await expect(page.getByTestId("pipeline-select")).toHaveValue("passthrough");

  // Refused (401): no stream, the sign-in dialog opens.
  await page.getByTestId("start-button").click();
  const dialog = page.getByTestId("auth-dialog");
  await expect(dialog).toBeVisible();
  await expect(page.getByTestId("video-area")).toHaveAttribute("data-phase", "idle");
  const offer = await page.request.post(`${url}/api/v1/webrtc/offer`, { data: { sdp: "v=0", type: "offer" } });
  expect(offer.status()).toBe(401);
  expect((await offer.json()).kind).toBe("unauthorized");
  expect((await (await page.request.get(`${url}/api/v1/metrics`)).json()).streams).toEqual([]);

  // Sign up from that dialog, then Start again.
  await dialog.getByTestId("auth-switch").click();
  const name = `login${Date.now().toString(36)}`;
  await dialog.getByTestId("auth-username").fill(name);
  await dialog.getByTestId("auth-password").fill(`pw-${name}-secret`);
  await dialog.getByTestId("auth-submit").click();
  await expect(dialog).toBeHidden();
  await expect(page.getByTestId("user-name")).toHaveText(name);

  await page.getByTestId("start-button").click();
  await expect(page.getByTestId("video-area")).toHaveAttribute("data-phase", "streaming", { timeout: 30_000 });
  await expect.poll(() => decodedFrames(page), { timeout: 20_000 }).toBeGreaterThan(5);
  const mine = await (await page.request.get(`${url}/api/v1/metrics`)).json();
  expect(mine.streams).toHaveLength(1);

  await page.getByTestId("start-button").click();
  await expect(page.getByTestId("video-area")).toHaveAttribute("data-phase", "idle");
});
