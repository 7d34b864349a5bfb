// The Wan pipelines in the studio on the tiny random model set that playwright.config.ts has
// `hanzo-live engine make-tiny` write into the server's models directory: a text → video and
// a video → video stream through the real server, steered live.
import { expect, test, type Page } from "@playwright/test";

async function openStudio(page: Page) {
  await page.goto("/");
  await expect(page.getByTestId("app-shell")).toHaveAttribute("data-hydrated", "true");
  await expect(page.getByTestId("pipeline-select")).toHaveValue("passthrough");
}

async function decodedFrames(page: Page): Promise<number> {
  return page.evaluate(() => {
    const v = document.querySelector<HTMLVideoElement>("[data-testid=output-video]")!;
    return v.getVideoPlaybackQuality().totalVideoFrames;
  });
}

async function expectFramesRising(page: Page) {
  await expect.poll(() => decodedFrames(page), { timeout: 30_000 }).toBeGreaterThan(5);
  const before = await decodedFrames(page);
  await expect.poll(() => decodedFrames(page), { timeout: 15_000 }).toBeGreaterThan(before + 5);
}

async function streams(page: Page) {
  return (await (await page.request.get("/api/v1/metrics")).json()).streams as any[];
}

/** Picks `id` at 64×64 (the tiny models stream in real time on two cores at that size). */
async function choose(page: Page, id: string) {
  await page.getByTestId("pipeline-select").selectOption(id);
  await expect(page.getByTestId("pipeline-info")).not.toContainText("Model files missing");
  for (const key of ["height", "width"]) {
    const field = page.getByTestId(`param-${key}`).locator("input");
    await field.fill("64");
    await field.blur();
  }
  await expect(page.getByTestId("start-button")).toBeEnabled();
}

async function start(page: Page) {
  await page.getByTestId("start-button").click();
  await expect(page.getByTestId("video-area")).toHaveAttribute("data-phase", "streaming", {
    timeout: 60_000,
  });
}

async function stop(page: Page) {
  await page.getByTestId("start-button").click();
  await expect(page.getByTestId("video-area")).toHaveAttribute("data-phase", "idle");
  await expect.poll(async () => (await streams(page)).length).toBe(0);
}

test("longlive generates video from text and takes a new prompt live", async ({ page }) => {
  test.setTimeout(120_000);
  const errors: string[] = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  await openStudio(page);
  await choose(page, "longlive");
  await expect(page.getByTestId("input-mode")).toHaveValue("text");
  await start(page);
  await expectFramesRising(page);
  const [s] = await streams(page);
  expect(s.pipeline_id).toBe("longlive");
  const status = await (await page.request.get("/api/v1/pipeline/status")).json();
  expect(status).toMatchObject({ status: "loaded", pipeline_id: "longlive" });
  expect(status.load_params).toMatchObject({ height: 64, width: 64 });

  // A new prompt goes over the data channel; the server's stream takes it.
  await page.getByTestId("prompt-input").fill("a red fox running through snow");
  await page.getByTestId("prompt-submit").click();
  await expect
    .poll(async () => JSON.stringify((await streams(page))[0]?.parameters?.prompts ?? null), {
      timeout: 15_000,
    })
    .toContain("a red fox running through snow");
  await expectFramesRising(page);
  await stop(page);
  expect(errors).toEqual([]);
});

test("streamdiffusionv2 transforms the camera", async ({ page }) => {
  test.setTimeout(120_000);
  await openStudio(page);
  await choose(page, "streamdiffusionv2");
  await expect(page.getByTestId("input-mode")).toHaveValue("camera");
  await start(page);
  await expectFramesRising(page);
  const [s] = await streams(page);
  expect(s.pipeline_id).toBe("streamdiffusionv2");
  expect(s.frames_in).toBeGreaterThan(0);
  await expect
    .poll(() =>
      page.evaluate(() => document.querySelector<HTMLVideoElement>("[data-testid=output-video]")!.videoWidth),
    )
    .toBe(64);
  await stop(page);
});
