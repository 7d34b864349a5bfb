// The Download card against the local hub (local-hub.mjs, HF_ENDPOINT): LongLive's own files
// move from the server's models directory into the hub, the card offers them, shows progress,
// is cancelled and resumed, and when they are back Start is enabled without a reload.
import { expect, test } from "@playwright/test";
import * as fs from "node:fs";
import * as path from "node:path";
import { openStudio } from "./studio";

const DATA_DIR = process.env.HANZO_E2E_DATA_DIR;
const HUB = `http://127.0.0.1:${process.env.HANZO_E2E_HUB_PORT}`;
const FILES = ["models/longlive_base.pt", "models/lora.pt"];

test("the Download card fetches a pipeline's missing files with progress, cancel and resume", async ({
  page,
}) => {
  test.skip(!DATA_DIR || !!process.env.BASE_URL, "needs the server's models directory and hub");
  const models = path.join(DATA_DIR!, "models", "LongLive-1.3B");
  const repo = path.join(DATA_DIR!, "hub", "Efficient-Large-Model", "LongLive-1.3B");
  const original = FILES.map((f) => fs.readFileSync(path.join(models, f)));
  for (const f of FILES) {
    fs.mkdirSync(path.dirname(path.join(repo, f)), { recursive: true });
    fs.renameSync(path.join(models, f), path.join(repo, f));
  }
  const errors: string[] = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  try {
    await page.request.post(`${HUB}/_control?delay_ms=120`);
    await openStudio(page);
    await page.getByTestId("pipeline-select").selectOption("longlive");
    await expect(page.getByTestId("start-button")).toBeDisabled();
    const card = page.getByTestId("download-card");
    await expect(card.getByTestId("download-size")).toHaveText("Download 2 files, about 7.10 GB");
    await expect(card.getByTestId("download-text-encoder")).toHaveCount(0);

    // Slowly: the bar and its figures move; Cancel keeps what arrived.
    await card.getByTestId("download-button").click();
    await expect(card.getByTestId("download-progress")).toBeVisible();
    const figures = card.getByTestId("download-figures");
    await expect(figures).toContainText("LongLive-1.3B/models/longlive_base.pt");
    await expect(figures).toContainText(/ of 310 KB · \d+%/);
    await expect(figures).toContainText(/KB\/s · 0:0\d left/);
    await card.getByTestId("download-cancel").click();
    await expect(card.getByTestId("download-cancelled")).toBeVisible();
    await expect(card.getByTestId("download-resumable")).toContainText(
      "already on disk from an unfinished download",
    );
    await expect(card.getByTestId("download-button")).toHaveText("Resume download");
    await expect(page.getByTestId("start-button")).toBeDisabled();

    // Resumed at full speed: the files arrive, the card goes, Start enables.
    await page.request.post(`${HUB}/_control?delay_ms=0`);
    await card.getByTestId("download-button").click();
    await expect(page.getByTestId("missing-files")).toHaveCount(0, { timeout: 20_000 });
    await expect(page.getByTestId("start-button")).toBeEnabled();
    FILES.forEach((f, i) => expect(fs.readFileSync(path.join(models, f)).equals(original[i])).toBe(true));
    expect(errors).toEqual([]);
  } finally {
    for (const f of FILES) {
      if (!fs.existsSync(path.join(models, f))) fs.renameSync(path.join(repo, f), path.join(models, f));
    }
  }
});
