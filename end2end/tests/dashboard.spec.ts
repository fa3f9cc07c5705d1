import { test, expect, type Page } from '@playwright/test';
import { artists, expectNoHorizontalOverflow, signIn } from './helpers';

const firstNames = async (page: Page) =>
  (await artists(page).locator('.ranked__title').allTextContents()).slice(0, 5).join(' | ');

test('the dashboard shows the top lists, switches ranges in the URL, and syncs', async ({ page }, testInfo) => {
  await signIn(page);
  expect(await artists(page).count()).toBeGreaterThanOrEqual(20);
  await expect(page.getByTestId('top-tracks').locator('li').first()).toBeVisible();
  await expect(page.getByTestId('summary')).toContainText('Top genre');
  await expect(page.getByTestId('genres').locator('li').first()).toBeVisible();
  const fourWeeks = await firstNames(page);
  await page.screenshot({ path: `screenshots/dashboard-lists-${testInfo.project.name}.png`, fullPage: false });

  await page.locator('[data-range="long_term"]').click();
  await expect(page).toHaveURL(/\?range=long_term$/);
  await expect(page.locator('[data-range="long_term"]')).toHaveAttribute('aria-current', 'page');
  await expect(page.locator('[aria-current="page"]')).toHaveCount(1);
  await expect.poll(() => firstNames(page)).not.toBe(fourWeeks);

  await page.goBack();
  await expect.poll(() => firstNames(page)).toBe(fourWeeks);

  await page.getByTestId('sync-now').click();
  await expect(page.getByTestId('sync-state')).toContainText(/Synced \d+ artists and \d+ tracks\./, { timeout: 20_000 });

  await expectNoHorizontalOverflow(page);
});

test('without JavaScript the dashboard HTML still holds the top lists', async ({ page, browser }) => {
  await signIn(page);
  const state = await page.context().storageState();
  const noJs = await browser.newContext({ javaScriptEnabled: false, storageState: state });
  const plain = await noJs.newPage();
  const response = await plain.goto('/dashboard?range=medium_term');
  expect(response?.status()).toBe(200);
  expect(await plain.getByTestId('top-artists').locator('li').count()).toBeGreaterThanOrEqual(20);
  await expect(plain.locator('[data-range="medium_term"]')).toHaveAttribute('aria-current', 'page');
  await noJs.close();
});

test('an unknown range is a friendly 400', async ({ page }) => {
  await signIn(page);
  const response = await page.goto('/dashboard?range=forever');
  expect(response?.status()).toBe(400);
  await expect(page.getByTestId('bad-range')).toContainText('Unknown time range');
});

test('on a phone, a bar at the bottom jumps between the lists', async ({ page }, testInfo) => {
  test.skip(!testInfo.project.use.hasTouch, 'phones only: on a desktop the lists are side by side');
  await signIn(page);
  const jump = page.getByTestId('jump');
  // At the top the bar stays down, covering none of the first list's links; it comes up
  // once the page scrolls.
  await expect(jump).toHaveCSS('visibility', 'hidden');
  await page.evaluate(() => window.scrollBy(0, 400));
  await expect(jump).toBeVisible();
  await expect(jump).toBeInViewport();
  await jump.getByRole('link', { name: 'Genres' }).tap();
  await expect(page.locator('#genres-title')).toBeInViewport();
  // The range switch stays in reach, the bar too.
  await expect(page.locator('[data-range="medium_term"]')).toBeInViewport();
  await expect(jump).toBeInViewport();
  await jump.getByRole('link', { name: 'Tracks' }).tap();
  await expect(page.locator('#tracks-title')).toBeInViewport();
});
