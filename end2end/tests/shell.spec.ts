// The StreamPage shell: server-rendered, hydrated, responsive; /health answers.
import { expect, test, type Page } from "@playwright/test";

const REGIONS = ["header", "input-panel", "video-area", "settings-panel", "status-bar"];

/** Opens the studio and fails the test on any uncaught page error or console error. */
async function openStudio(page: Page): Promise<string[]> {
  const errors: string[] = [];
  page.on("pageerror", (e) => errors.push(`pageerror: ${e}`));
  page.on("console", (m) => {
    if (m.type() === "error") errors.push(`console: ${m.text()}`);
  });
  await page.goto("/");
  // Effects only run in the browser: this flips once the wasm has hydrated the page.
  await expect(page.getByTestId("app-shell")).toHaveAttribute("data-hydrated", "true");
  return errors;
}

test("the page loads with all five regions", async ({ page }) => {
  const errors = await openStudio(page);
  await expect(page).toHaveTitle("Hanzo Live");
  for (const id of REGIONS) {
    await expect(page.getByTestId(id), id).toBeVisible();
  }
  await expect(page.getByTestId("prompt-dock")).toBeVisible();
  await expect(page.getByRole("heading", { name: "Hanzo Live" })).toBeVisible();
  await expect(page.getByRole("heading", { name: "Input & Controls" })).toBeVisible();
  await expect(page.getByRole("heading", { name: "Settings" })).toBeVisible();
  expect(errors).toEqual([]);
});

test("hydration: the mode selector and prompt dock change client state", async ({ page }) => {
  const errors = await openStudio(page);
  // The pipeline list is fetched by the hydrated page.
  await expect(page.getByTestId("pipeline-select")).toHaveValue("passthrough");
  await expect(page.getByTestId("pipeline-info")).toContainText("Passthrough");
  const status = page.getByTestId("input-status");
  await expect(status).toHaveText("Camera Preview");

  await page.getByTestId("input-mode").selectOption("video");
  await expect(status).toHaveText("Video Preview");
  await expect(page.getByTestId("video-area")).toContainText("Input: Video");
  await page.getByTestId("input-mode").selectOption("camera");
  await expect(page.getByTestId("video-area")).toContainText("Input: Camera");

  const submit = page.getByTestId("prompt-submit");
  await expect(submit).toBeDisabled();
  await page.getByTestId("prompt-input").fill("  a neon city at night  ");
  await expect(submit).toBeEnabled();
  await page.getByTestId("prompt-input").press("Enter");
  // Neither model-free pipeline takes a prompt, and the dock says so.
  await expect(page.getByTestId("prompt-next")).toHaveText("This pipeline takes no prompt.");
  expect(errors).toEqual([]);
});

test("the settings panel and status bar show the server's identity", async ({ page, request }) => {
  await openStudio(page);
  const health = await (await request.get("/health")).json();
  await expect(page.getByTestId("server-info")).toContainText(health.version);
  await expect(page.getByTestId("server-info")).toContainText(health.git_commit);
  await expect(page.getByTestId("server-version")).toHaveText(
    `v${health.version} (${health.git_commit})`,
  );
  await expect(page.getByTestId("stream-state")).toHaveText("Idle");
  await expect(page.getByTestId("metric-fps")).toHaveText("FPS: n/a");
});

test("side panels sit beside the video when wide and stack under it below 900 px", async ({
  page,
}) => {
  await page.setViewportSize({ width: 1400, height: 900 });
  await openStudio(page);
  const box = async (id: string) => (await page.getByTestId(id).boundingBox())!;
  let [left, video, right] = [await box("input-panel"), await box("video-area"), await box("settings-panel")];
  expect(left.x + left.width).toBeLessThanOrEqual(video.x + 1);
  expect(video.x + video.width).toBeLessThanOrEqual(right.x + 1);
  expect(Math.abs(left.y - video.y)).toBeLessThan(40);

  await page.setViewportSize({ width: 800, height: 1200 });
  [left, video, right] = [await box("input-panel"), await box("video-area"), await box("settings-panel")];
  const dock = await box("prompt-dock");
  expect(left.y).toBeGreaterThanOrEqual(dock.y + dock.height);
  expect(right.y).toBeGreaterThanOrEqual(left.y + left.height);
  expect(left.width).toBeGreaterThan(700);
  expect(video.width).toBeGreaterThan(700);
});

test("/health answers JSON", async ({ request }) => {
  const resp = await request.get("/health");
  expect(resp.status()).toBe(200);
  const body = await resp.json();
  expect(body.status).toBe("healthy");
  expect(Date.parse(body.timestamp)).not.toBeNaN();
});

test("an unknown page is a 404 with a way back", async ({ page }) => {
  const resp = await page.goto("/no-such-page");
  expect(resp?.status()).toBe(404);
  await expect(page.getByTestId("not-found")).toContainText("Page not found");
  await page.getByRole("link", { name: "Back to the studio" }).click();
  await expect(page.getByTestId("app-shell")).toBeVisible();
});
