import { test, expect, type Page } from '@playwright/test';
import { artists, signIn } from './helpers';

/** Panics and uncaught errors of the page's WASM and scripts, as they happen. */
function watchErrors(page: Page): string[] {
  const errors: string[] = [];
  page.on('pageerror', (error) => errors.push(`pageerror: ${error.message}`));
  page.on('console', (message) => {
    if (message.type() === 'error' && /panicked|RuntimeError|unreachable/.test(message.text())) {
      errors.push(`console: ${message.text().slice(0, 300)}`);
    }
  });
  return errors;
}

test('every page hydrates without a panic, loaded directly or reached by a link', async ({ page }) => {
  const errors = watchErrors(page);
  await signIn(page);
  // Reached by links (client-side navigation, lazy routes loaded on the way).
  await page.getByRole('link', { name: 'History' }).click();
  await expect(page.getByTestId('rank-table').first()).toBeVisible();
  await page.getByRole('link', { name: 'Back to the dashboard' }).click();
  await expect(artists(page).first()).toBeVisible();
  const href = await artists(page).first().locator('a.ranked__title').getAttribute('href');
  await artists(page).first().locator('a.ranked__title').click();
  await expect(page.getByTestId('artist-name')).toBeVisible();
  // Loaded directly: the server's HTML hydrated by the WASM, lazy chunk included.
  for (const path of ['/dashboard?range=long_term', '/history?range=medium_term', href!, '/artist/0000000000000000000000', '/nowhere']) {
    await page.goto(path);
    await page.waitForLoadState('networkidle');
    await expect(page).toHaveTitle(/Personalify$/);
  }
  // Hydrated means interactive: the history page's range switch navigates in place.
  await page.goto('/history?range=short_term');
  await page.waitForLoadState('networkidle');
  await page.evaluate(() => ((window as unknown as { marker: number }).marker = 1));
  await page.locator('[data-range="long_term"]').click();
  await expect(page).toHaveURL(/range=long_term$/);
  await expect(page.locator('[data-range="long_term"]')).toHaveAttribute('aria-current', 'page');
  expect(await page.evaluate(() => (window as unknown as { marker?: number }).marker), 'no full page load').toBe(1);
  expect(errors).toEqual([]);
});
