// The live media loop in the browser: camera, video file and text-only streams through the
// real server, pause/resume, live settings, metrics.
import { expect, test, type Page } from "@playwright/test";
import { decodedFrames, expectFramesRising, openStudio, streams, streamsSeenBy } from "./studio";

/** Presses Start and waits until the stream is live. */
async function start(page: Page) {
  await page.getByTestId("start-button").click();
  await expect(page.getByTestId("video-area")).toHaveAttribute("data-phase", "streaming", { timeout: 30_000 });
}

async function stop(page: Page) {
  await page.getByTestId("start-button").click();
  await expect(page.getByTestId("video-area")).toHaveAttribute("data-phase", "idle");
  await expect.poll(async () => (await streams(page)).length).toBe(0);
}

test("camera → passthrough: the output plays, pauses, resumes, and shows metrics", async ({
  page,
  request,
}) => {
  const errors: string[] = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  await openStudio(page);
  await expect(page.getByTestId("input-mode")).toHaveValue("camera");
  await expect(page.getByTestId("input-status")).toHaveText("Camera Preview");

  await start(page);
  await expect(page.getByTestId("start-button")).toHaveText("Stop");
  await expectFramesRising(page);
  // The stream is the page's: a client without its cookie sees none of it.
  expect(await streams(page)).toHaveLength(1);
  expect(await streamsSeenBy(request)).toEqual([]);

  // The status bar fills in from the server's metrics and the browser's stats.
  await expect(page.getByTestId("stream-state")).toHaveText("Live");
  await expect(page.getByTestId("metric-fps")).toHaveText(/FPS: \d+(\.\d)?$/, { timeout: 10_000 });
  await expect(page.getByTestId("metric-cpu")).toHaveText(/CPU: \d+%/);
  await expect(page.getByTestId("metric-ram")).toHaveText(/RAM: [\d.]+\/[\d.]+ GB/);
  await expect(page.getByTestId("metric-latency")).toHaveText(/Latency: \d+ ms/);
  await expect(page.getByTestId("metric-bitrate")).toHaveText(/Bitrate: [\d.]+ (k|M)bps/);
  await expect(page.getByTestId("metric-gpu")).toHaveText(/GPU: (n\/a|\d+%)/);

  // Click pauses: the server holds the stream (parameters reach it), the picture stops.
  await page.getByTestId("video-area").click();
  await expect(page.getByTestId("stream-state")).toHaveText("Paused");
  await expect.poll(async () => (await streams(page))[0]?.parameters?.paused).toBe(true);
  await page.waitForTimeout(500);
  const paused = await decodedFrames(page);
  await page.waitForTimeout(1000);
  expect(await decodedFrames(page)).toBeLessThanOrEqual(paused + 2);

  // Space resumes.
  await page.locator("body").press("Space");
  await expect(page.getByTestId("stream-state")).toHaveText("Live");
  await expect.poll(async () => (await streams(page))[0]?.parameters?.paused).toBe(false);
  await expectFramesRising(page);

  await stop(page);
  expect(errors).toEqual([]);
});

test("video file mode streams the bundled clip", async ({ page }) => {
  await openStudio(page);
  await page.getByTestId("input-mode").selectOption("video");
  await expect(page.getByTestId("input-status")).toHaveText("Video Preview");
  await expect
    .poll(() => page.evaluate(() => document.querySelector<HTMLVideoElement>(".preview-video")!.currentTime))
    .toBeGreaterThan(0);
  await start(page);
  await expectFramesRising(page);
  const s = await streams(page);
  expect(s[0].pipeline_id).toBe("passthrough");
  expect(s[0].frames_in).toBeGreaterThan(0);
  await stop(page);
});

test("switching the source while streaming keeps the stream going", async ({ page }) => {
  await openStudio(page);
  await start(page);
  await expectFramesRising(page);
  const before = (await streams(page))[0];
  // Camera → bundled clip: the sent track is replaced, the session stays.
  await page.getByTestId("input-mode").selectOption("video");
  await expect(page.getByTestId("input-status")).toHaveText("Video Preview");
  await expectFramesRising(page);
  const after = (await streams(page))[0];
  expect(after.session_id).toBe(before.session_id);
  expect(after.frames_in).toBeGreaterThan(before.frames_in);
  await stop(page);
});

test("vod streams in text mode with no input", async ({ page }) => {
  await openStudio(page);
  await page.getByTestId("pipeline-select").selectOption("vod");
  await expect(page.getByTestId("input-mode")).toHaveValue("text");
  await expect(page.getByTestId("text-mode-note")).toBeVisible();
  await start(page);
  await expectFramesRising(page);
  const s = await streams(page);
  expect(s[0].pipeline_id).toBe("vod");
  expect(s[0].frames_in).toBe(0);
  await stop(page);
});

test("load settings validate inline and lock while streaming", async ({ page, request }) => {
  await openStudio(page);
  const height = page.getByTestId("param-height");
  await height.locator("input").fill("100");
  await height.locator("input").blur();
  await expect(height).toContainText("Must be a multiple of 16");
  await expect(page.getByTestId("start-button")).toBeDisabled();
  await height.locator("input").fill("4096");
  await height.locator("input").blur();
  await expect(height).toContainText("Must be at most 2048");
  await height.locator("input").fill("256");
  await height.locator("input").blur();
  await expect(height).not.toContainText("Must be");
  await height.getByRole("button", { name: "Increase" }).click();
  await expect(height.locator("input")).toHaveValue("272");

  await start(page);
  await expect(height.locator("input")).toBeDisabled();
  await expect(page.getByTestId("pipeline-select")).toBeDisabled();
  const status = await (await request.get("/api/v1/pipeline/status")).json();
  expect(status.load_params).toEqual({ height: 272, width: 512 });
  await expect
    .poll(() =>
      page.evaluate(() => document.querySelector<HTMLVideoElement>("[data-testid=output-video]")!.videoHeight),
    )
    .toBe(272);
  await stop(page);
});
