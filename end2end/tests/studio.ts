// Helpers the studio's specs share (not a spec itself: Playwright runs *.spec.ts only).
import { expect, type APIRequestContext, type Page } from "@playwright/test";

/** Opens the studio and waits for hydration. */
export async function openStudio(page: Page) {
  await page.goto("/");
  await expect(page.getByTestId("app-shell")).toHaveAttribute("data-hydrated", "true");
  await expect(page.getByTestId("pipeline-select")).toHaveValue("passthrough");
}

/** Frames the output <video> has decoded so far. */
export async function decodedFrames(page: Page): Promise<number> {
  return page.evaluate(() => {
    const v = document.querySelector<HTMLVideoElement>("[data-testid=output-video]")!;
    return v.getVideoPlaybackQuality().totalVideoFrames;
  });
}

/** The output plays: some frames within `first` ms, then more within `next` ms. */
export async function expectFramesRising(page: Page, first = 20_000, next = 10_000) {
  await expect.poll(() => decodedFrames(page), { timeout: first }).toBeGreaterThan(5);
  const before = await decodedFrames(page);
  await expect.poll(() => decodedFrames(page), { timeout: next }).toBeGreaterThan(before + 5);
}

/** The streams `client` may see in the metrics: a viewer sees only its own. */
export async function streamsSeenBy(client: APIRequestContext) {
  return (await (await client.get("/api/v1/metrics")).json()).streams as any[];
}

/** The page's own streams (the request shares the browser's cookies, so its guest cookie). */
export async function streams(page: Page) {
  return streamsSeenBy(page.request);
}
