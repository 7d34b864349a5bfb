// The Wan pipelines in the studio on the tiny random model set that playwright.config.ts has
// `hanzo-live engine make-tiny` write into the server's models directory: a text → video and
// a video → video stream through the real server, steered live.
import { expect, test, type Page } from "@playwright/test";
import * as fs from "node:fs";
import * as path from "node:path";
import { expectFramesRising, openStudio, streams } from "./studio";

/** The tiny models' first frames come after a load: more time than the model-free pipelines. */
const rising = (page: Page) => expectFramesRising(page, 30_000, 15_000);

/** Picks `id` at 64×64 (the tiny models stream in real time on two cores at that size). */
async function choose(page: Page, id: string) {
  await page.getByTestId("pipeline-select").selectOption(id);
  await expect(page.getByTestId("pipeline-info")).not.toContainText("Model files missing");
  await expect(page.getByTestId("pipeline-facts")).toContainText(/VRAM ≈ \d+ GB/);
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
  await rising(page);
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
  await rising(page);

  // A second prompt blended in, then its weight moved: each change confirmed by the server.
  await page.getByTestId("prompt-add").click();
  await page.getByTestId("prompt-text-1").fill("heavy rain");
  await page.getByTestId("prompt-text-1").press("Enter");
  await expect(page.getByTestId("prompt-next")).toHaveText(
    "Live: “a red fox running through snow” 1.00 + “heavy rain” 0.50",
  );
  await page.getByTestId("prompt-weight-1").fill("0.3");
  await expect(page.getByTestId("prompt-next")).toHaveText(
    "Live: “a red fox running through snow” 1.00 + “heavy rain” 0.30",
  );
  await expect
    .poll(async () => (await streams(page))[0]?.parameters?.prompts)
    .toEqual([
      { text: "a red fox running through snow", weight: 1 },
      { text: "heavy rain", weight: 0.3 },
    ]);
  await page.getByTestId("prompt-interpolation").selectOption("slerp");
  await expect
    .poll(async () => (await streams(page))[0]?.parameters?.prompt_interpolation_method)
    .toBe("slerp");
  await rising(page);
  await stop(page);
  expect(errors).toEqual([]);
});

test("a preset keeps two weighted prompts and applies them again", async ({ page }) => {
  const name = `wan${Date.now().toString(36)}`;
  await openStudio(page);
  await page.getByTestId("sign-up").click();
  const dialog = page.getByTestId("auth-dialog");
  await dialog.getByTestId("auth-username").fill(name);
  await dialog.getByTestId("auth-password").fill(`pw-${name}-secret`);
  await dialog.getByTestId("auth-submit").click();
  await expect(page.getByTestId("user-name")).toHaveText(name);

  await choose(page, "self-forcing");
  await page.getByTestId("prompt-input").fill("a lighthouse at dusk");
  await page.getByTestId("prompt-add").click();
  await page.getByTestId("prompt-text-1").fill("storm waves");
  await page.getByTestId("prompt-weight-1").fill("0.25");
  await page.getByTestId("prompt-weight-0").fill("0.75");
  await page.getByTestId("param-vae_type").locator("select").selectOption("lighttae");
  await page.getByTestId("preset-name").fill("Stormy lighthouse");
  await page.getByTestId("preset-save").click();
  const item = page.locator("[data-testid=preset-item][data-name='Stormy lighthouse']");
  await expect(item).toBeVisible();

  await page.goto("/");
  await expect(page.getByTestId("app-shell")).toHaveAttribute("data-hydrated", "true");
  await expect(page.getByTestId("prompt-input")).toHaveValue("");
  await item.getByTestId("preset-apply").click();
  await expect(page.getByTestId("pipeline-select")).toHaveValue("self-forcing");
  await expect(page.getByTestId("prompt-input")).toHaveValue("a lighthouse at dusk");
  await expect(page.getByTestId("prompt-text-1")).toHaveValue("storm waves");
  await expect(page.getByTestId("prompt-weight-0")).toHaveValue("0.75");
  await expect(page.getByTestId("prompt-weight-1")).toHaveValue("0.25");
  await expect(page.getByTestId("param-height").locator("input")).toHaveValue("64");
  // A choice comes back too, and the select shows what will be sent.
  await expect(page.getByTestId("param-vae_type").locator("select")).toHaveValue("lighttae");

  // It streams with them.
  await start(page);
  await rising(page);
  await expect
    .poll(async () => (await streams(page))[0]?.parameters?.prompts)
    .toEqual([
      { text: "a lighthouse at dusk", weight: 0.75 },
      { text: "storm waves", weight: 0.25 },
    ]);
  const status = await (await page.request.get("/api/v1/pipeline/status")).json();
  expect(status.load_params).toMatchObject({ vae_type: "lighttae" });
  await stop(page);
});

test("streamdiffusionv2 transforms the camera, decoded by the TAE", async ({ page }) => {
  test.setTimeout(120_000);
  await openStudio(page);
  await choose(page, "streamdiffusionv2");
  await expect(page.getByTestId("input-mode")).toHaveValue("camera");
  // Switch and number load settings come from the schema too.
  const batch = page.getByTestId("param-stream_batch").locator("input");
  await expect(batch).toBeChecked();
  await batch.uncheck();
  const threshold = page.getByTestId("param-adapt_sink_threshold").locator("input");
  await threshold.fill("0.35");
  await threshold.blur();
  // The autoencoders are choices: the TAE decodes what the Wan VAE encodes (the method's own
  // pairing).
  const vae = page.getByTestId("param-vae_type").locator("select");
  await expect(vae).toHaveValue("wan");
  // Under the choice: what each autoencoder costs.
  await expect(page.getByTestId("param-vae_type")).toContainText("11 s (docs/perf.md");
  await vae.selectOption("tae");
  await page.getByTestId("param-encoder_vae_type").locator("select").selectOption("wan");
  await start(page);
  const status = await (await page.request.get("/api/v1/pipeline/status")).json();
  expect(status.load_params).toMatchObject({
    stream_batch: false,
    adapt_sink_threshold: 0.35,
    vae_type: "tae",
    encoder_vae_type: "wan",
  });
  await expect(vae).toBeDisabled();
  await expect(batch).toBeDisabled();
  await rising(page);
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

test("a pipeline whose files are missing says which, and Start waits for them", async ({ page }) => {
  const dir = process.env.HANZO_E2E_DATA_DIR;
  test.skip(!dir || !!process.env.BASE_URL, "needs the server's models directory");
  const lora = path.join(dir!, "models", "LongLive-1.3B", "models", "lora.pt");
  fs.renameSync(lora, `${lora}.away`);
  try {
    await openStudio(page);
    await page.getByTestId("pipeline-select").selectOption("longlive");
    const missing = page.getByTestId("missing-files");
    await expect(missing).toContainText("LoRA");
    await expect(missing).toContainText("LongLive-1.3B/models/lora.pt");
    await expect(missing).not.toContainText("DiT checkpoint");
    await expect(page.getByTestId("start-button")).toBeDisabled();
    await expect(page.getByTestId("start-blocked")).toHaveText(
      "Cannot start: model files missing (LoRA; see Settings)",
    );
    // Another pipeline with its files is ready.
    await page.getByTestId("pipeline-select").selectOption("self-forcing");
    await expect(page.getByTestId("missing-files")).toHaveCount(0);
    await expect(page.getByTestId("start-button")).toBeEnabled();
  } finally {
    fs.renameSync(`${lora}.away`, lora);
  }
  // An autoencoder's file matters only once it is chosen.
  const tae = path.join(dir!, "models", "Autoencoders", "taew2_1.pth");
  fs.renameSync(tae, `${tae}.away`);
  try {
    await page.reload();
    await expect(page.getByTestId("app-shell")).toHaveAttribute("data-hydrated", "true");
    await page.getByTestId("pipeline-select").selectOption("self-forcing");
    await expect(page.getByTestId("missing-files")).toHaveCount(0);
    await page.getByTestId("param-vae_type").locator("select").selectOption("tae");
    await expect(page.getByTestId("missing-files")).toContainText("Autoencoders/taew2_1.pth");
    await expect(page.getByTestId("start-blocked")).toHaveText(
      "Cannot start: model files missing (TAE; see Settings)",
    );
    await page.getByTestId("param-vae_type").locator("select").selectOption("lighttae");
    await expect(page.getByTestId("missing-files")).toHaveCount(0);
    await expect(page.getByTestId("start-button")).toBeEnabled();
  } finally {
    fs.renameSync(`${tae}.away`, tae);
  }
});

test("blended prompts survive switching pipelines back and forth", async ({ page }) => {
  const errors: string[] = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  await openStudio(page);
  await page.getByTestId("pipeline-select").selectOption("longlive");
  await page.getByTestId("prompt-input").fill("a harbour at night");
  await page.getByTestId("prompt-add").click();
  await page.getByTestId("prompt-add").click();
  await page.getByTestId("prompt-text-1").fill("fog");
  await page.getByTestId("prompt-text-2").fill("lanterns");
  // The rows were made in a click handler inside a branch that now goes away and comes back.
  await page.getByTestId("pipeline-select").selectOption("passthrough");
  await expect(page.getByTestId("prompt-blend")).toHaveCount(0);
  await page.getByTestId("pipeline-select").selectOption("longlive");
  await expect(page.getByTestId("prompt-text-2")).toHaveValue("lanterns");
  await page.getByTestId("prompt-weight-2").fill("0.2");
  await expect(page.getByTestId("prompt-weight-2")).toHaveValue("0.2");
  // Removing the first blended row renumbers the one below it.
  await page.getByTestId("prompt-remove-1").click();
  await expect(page.getByTestId("prompt-text-1")).toHaveValue("lanterns");
  await expect(page.getByTestId("prompt-text-2")).toHaveCount(0);
  // The last one gone, the main prompt's weight is 1 again (its slider hides with it).
  await page.getByTestId("prompt-weight-0").fill("0");
  await page.getByTestId("prompt-remove-1").click();
  await expect(page.getByTestId("prompt-weight-0")).toHaveCount(0);
  await page.getByTestId("prompt-add").click();
  await expect(page.getByTestId("prompt-weight-0")).toHaveValue("1");
  expect(errors).toEqual([]);
});
