import { expect, type Page, type TestInfo, type Locator } from '@playwright/test';
import AxeBuilder from '@axe-core/playwright';

export const artists = (page: Page) => page.getByTestId('top-artists').locator('li');

/** Demo sign-in from the start page; waits for the first sync to fill the dashboard. */
export async function signIn(page: Page, user?: string) {
  if (user) {
    await page.goto(`/auth/demo?user=${user}`);
  } else {
    await page.goto('/');
    await page.getByRole('link', { name: 'Try the demo' }).click();
  }
  await expect(page).toHaveURL(/\/dashboard$/);
  await expect(artists(page).first()).toBeVisible({ timeout: 20_000 });
}

/** WCAG 2.1 A/AA rules; a page passes with no serious or critical violation. */
export async function expectAccessible(page: Page, what: string) {
  // Check the settled page, not lists dimmed while new ones load.
  await expect(page.locator('[aria-busy="true"]')).toHaveCount(0);
  const results = await new AxeBuilder({ page }).withTags(['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa']).analyze();
  const severe = results.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  const summary = severe.map((v) => `${v.id} (${v.impact}): ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
  expect(summary, `${what}: serious or critical accessibility violations`).toEqual([]);
}

export async function expectNoHorizontalOverflow(page: Page) {
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  expect(overflow, 'page wider than the viewport').toBeLessThanOrEqual(0);
}

/** A full-page screenshot per page and viewport, in end2end/screenshots/. */
export async function screenshot(page: Page, testInfo: TestInfo, name: string) {
  // Charts draw when they come near the viewport: bring each into view so the picture has them.
  for (const chart of await page.locator('[data-chart-src]').all()) {
    await chart.scrollIntoViewIfNeeded();
    await expect(chart).toHaveAttribute('data-chart-drawn', '');
  }
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: `screenshots/${name}-${testInfo.project.name}.png`, fullPage: true });
}

/** ECharts has drawn into the chart box: an SVG with some shapes in it. */
export async function expectChartDrawn(chart: Locator) {
  await chart.scrollIntoViewIfNeeded();
  await expect(chart).toHaveAttribute('data-chart-drawn', '');
  await expect(chart.locator('svg')).toBeVisible();
  // ECharts paints on the next animation frame: wait for the shapes, don't count them once.
  await expect(chart.locator('svg path').first()).toBeAttached();
}

/** Tap on touch devices, click elsewhere. */
export async function press(target: Locator, testInfo: TestInfo) {
  if (testInfo.project.use.hasTouch) {
    await target.tap();
  } else {
    await target.click();
  }
}
