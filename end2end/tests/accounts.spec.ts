// Accounts, presets, recordings, history and the library, through the real server and
// Chromium: everything a signed-in user keeps, and what a guest and another user see.
import { expect, test, type Page } from "@playwright/test";

/** A fresh username per run (the data dir is fresh too, but a BASE_URL server may not be). */
function unique(prefix: string): string {
  return `${prefix}${Date.now().toString(36)}${Math.floor(Math.random() * 1000)}`;
}

async function hydrated(page: Page, path = "/") {
  await page.goto(path);
  await expect(page.locator("[data-hydrated]")).toHaveAttribute("data-hydrated", "true");
}

async function authenticate(page: Page, mode: "sign-in" | "sign-up", username: string) {
  await page.getByTestId(mode).click();
  const dialog = page.getByTestId("auth-dialog");
  await expect(dialog).toBeVisible();
  await dialog.getByTestId("auth-username").fill(username);
  await dialog.getByTestId("auth-password").fill(`pw-${username}-secret`);
  await dialog.getByTestId("auth-submit").click();
  await expect(dialog).toBeHidden();
  await expect(page.getByTestId("user-name")).toHaveText(username);
}

async function signOut(page: Page) {
  await page.getByTestId("sign-out").click();
  await expect(page.getByTestId("sign-in")).toBeVisible();
}

async function setInt(page: Page, key: string, value: string) {
  const input = page.getByTestId(`param-${key}`).locator("input");
  await input.fill(value);
  await input.blur();
  await expect(input).toHaveValue(value);
}

test("sign-up errors are shown inline, and guests are asked to sign in", async ({ page }) => {
  await hydrated(page);
  await expect(page.getByTestId("presets-guest")).toBeVisible();
  await page.getByTestId("sign-up").click();
  const dialog = page.getByTestId("auth-dialog");
  await dialog.getByTestId("auth-username").fill("x");
  await dialog.getByTestId("auth-password").fill("short");
  await dialog.getByTestId("auth-submit").click();
  await expect(dialog.getByTestId("auth-error")).toHaveText("username must be 3 to 32 characters long");
  await dialog.getByTestId("auth-username").fill(unique("ok"));
  await dialog.getByTestId("auth-submit").click();
  await expect(dialog.getByTestId("auth-error")).toHaveText("password must be at least 8 characters long");
  await dialog.getByTestId("auth-switch").click();
  await dialog.getByTestId("auth-password").fill("wrong password");
  await dialog.getByTestId("auth-submit").click();
  await expect(dialog.getByTestId("auth-error")).toHaveText("wrong username or password");
  await dialog.getByRole("button", { name: "Cancel" }).click();

  for (const path of ["/history", "/library"]) {
    await hydrated(page, path);
    await expect(page.getByTestId("sign-in-prompt")).toBeVisible();
  }
});

test("a preset is saved, survives a reload, applies, and stays private", async ({ page }) => {
  const errors: string[] = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  const alice = unique("alice");
  await hydrated(page);
  await authenticate(page, "sign-up", alice);
  await expect(page.getByTestId("presets-empty")).toBeVisible();

  await setInt(page, "height", "256");
  await setInt(page, "width", "384");
  await page.getByTestId("prompt-input").fill("a red fox in the snow");
  await page.getByTestId("preset-name").fill("Small fox");
  await page.getByTestId("preset-save").click();
  await expect(page.locator("[data-testid=preset-item][data-name='Small fox']")).toBeVisible();

  // A duplicate and a rename.
  await page.getByTestId("preset-duplicate").first().click();
  await expect(page.locator("[data-testid=preset-item][data-name='Small fox (copy)']")).toBeVisible();
  const copy = page.locator("[data-testid=preset-item][data-name='Small fox (copy)']");
  await copy.getByTestId("preset-rename").click();
  await copy.getByTestId("preset-rename-input").fill("Fox copy");
  await copy.getByRole("button", { name: "Save" }).click();
  await expect(page.locator("[data-testid=preset-item][data-name='Fox copy']")).toBeVisible();
  await page.locator("[data-testid=preset-item][data-name='Fox copy']").getByTestId("preset-delete").click();
  await expect(page.getByTestId("preset-item")).toHaveCount(1);

  // After a reload the server renders the user and the preset; the controls are back to
  // their defaults until the preset is applied.
  await hydrated(page);
  await expect(page.getByTestId("user-name")).toHaveText(alice);
  const height = page.getByTestId("param-height").locator("input");
  await expect(height).toHaveValue("512");
  await expect(page.getByTestId("prompt-input")).toHaveValue("");
  await page.locator("[data-testid=preset-item][data-name='Small fox']").getByTestId("preset-apply").click();
  await expect(height).toHaveValue("256");
  await expect(page.getByTestId("param-width").locator("input")).toHaveValue("384");
  await expect(page.getByTestId("prompt-input")).toHaveValue("a red fox in the snow");

  // Export, then import the file back: a second copy under a free name.
  const [download] = await Promise.all([
    page.waitForEvent("download"),
    page.getByTestId("presets-export").click(),
  ]);
  const exported = await download.path();
  await page.getByTestId("presets-import").setInputFiles(exported!);
  await expect(page.locator("[data-testid=preset-item][data-name='Small fox (2)']")).toBeVisible();

  // Another user sees none of it, nor any history or recordings.
  await signOut(page);
  await expect(page.getByTestId("presets-guest")).toBeVisible();
  await authenticate(page, "sign-up", unique("bob"));
  await expect(page.getByTestId("presets-empty")).toBeVisible();
  await expect(page.getByTestId("preset-item")).toHaveCount(0);
  await hydrated(page, "/history");
  await expect(page.getByTestId("history-empty")).toBeVisible();
  await hydrated(page, "/library");
  await expect(page.getByTestId("library-empty")).toBeVisible();

  // Signing back in as the owner brings the presets back.
  await signOut(page);
  await hydrated(page);
  await authenticate(page, "sign-in", alice);
  await expect(page.getByTestId("preset-item")).toHaveCount(2);
  expect(errors).toEqual([]);
});

test("a recording of the stream lands in the Library and plays; History shows the stream", async ({
  page,
}) => {
  await hydrated(page);
  await authenticate(page, "sign-up", unique("carol"));
  await setInt(page, "height", "128");
  await setInt(page, "width", "128");
  await page.getByTestId("start-button").click();
  await expect(page.getByTestId("video-area")).toHaveAttribute("data-phase", "streaming", { timeout: 30_000 });
  await expect
    .poll(() =>
      page.evaluate(
        () => document.querySelector<HTMLVideoElement>("[data-testid=output-video]")!.getVideoPlaybackQuality().totalVideoFrames,
      ),
    )
    .toBeGreaterThan(10);

  await page.getByTestId("record-button").click();
  await expect(page.getByTestId("record-status")).toHaveText(/^0:03 · \d+/, { timeout: 10_000 });
  await page.getByTestId("record-button").click();
  await expect(page.getByTestId("toasts")).toContainText("Recording saved", { timeout: 20_000 });
  await page.getByTestId("start-button").click();
  await expect(page.getByTestId("video-area")).toHaveAttribute("data-phase", "idle");

  await page.getByTestId("nav-library").click();
  await expect(page.getByTestId("library-page")).toHaveAttribute("data-hydrated", "true");
  const card = page.getByTestId("recording-card");
  await expect(card).toHaveCount(1);
  await expect(card).toContainText("128×128");
  await expect(card.locator("img")).toBeVisible(); // the thumbnail
  await card.getByTestId("recording-play").click();
  const player = card.getByTestId("library-player");
  await expect(player).toBeVisible();
  await expect
    .poll(
      () =>
        player.evaluate((v: HTMLVideoElement) => (v.ended ? 1e9 : v.currentTime)),
      { timeout: 15_000 },
    )
    .toBeGreaterThan(0.5);

  await card.getByTestId("recording-rename").click();
  await card.getByTestId("recording-title-input").fill("Fox run");
  await card.getByRole("button", { name: "Save" }).click();
  await expect(card.getByTestId("recording-title")).toHaveText("Fox run");

  await page.getByTestId("nav-history").click();
  await expect(page.getByTestId("history-page")).toHaveAttribute("data-hydrated", "true");
  const row = page.getByTestId("history-row").first();
  await expect(row).toContainText("passthrough");
  await expect(row.getByTestId("history-status")).toHaveText("Ended");
  await row.locator("button").first().click();
  await expect(row.getByTestId("history-detail")).toContainText('"height":128');

  page.once("dialog", (d) => d.accept());
  await page.goto("/library");
  await expect(page.getByTestId("library-page")).toHaveAttribute("data-hydrated", "true");
  await page.getByTestId("recording-delete").click();
  await expect(page.getByTestId("library-empty")).toBeVisible();
});

test("a guest's recording is downloaded instead of uploaded", async ({ page }) => {
  await hydrated(page);
  await setInt(page, "height", "128");
  await setInt(page, "width", "128");
  await page.getByTestId("start-button").click();
  await expect(page.getByTestId("video-area")).toHaveAttribute("data-phase", "streaming", { timeout: 30_000 });
  await page.getByTestId("record-button").click();
  await expect(page.getByTestId("record-status")).toHaveText(/^0:01/, { timeout: 10_000 });
  const [download] = await Promise.all([
    page.waitForEvent("download"),
    page.getByTestId("record-button").click(),
  ]);
  expect(download.suggestedFilename()).toMatch(/^hanzo-live-\d+\.webm$/);
  await expect(page.getByTestId("toasts")).toContainText("Recording downloaded");
  await page.getByTestId("start-button").click();
});
