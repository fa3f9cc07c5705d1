import { test, expect } from '@playwright/test';
import {
  artists, expectAccessible, expectChartDrawn, expectNoHorizontalOverflow, press, screenshot, signIn,
} from './helpers';

test('the history page shows charts and tables of rank over time', async ({ page }, testInfo) => {
  await signIn(page);
  await page.getByTestId('sync-now').click();
  await expect(page.getByTestId('sync-state')).toContainText(/Synced \d+ artists/, { timeout: 20_000 });
  await press(page.getByRole('link', { name: 'History' }), testInfo);
  await expect(page).toHaveURL(/\/history\?range=short_term$/);
  await expect(page.getByTestId('rank-table')).toHaveCount(2);
  // At least the two syncs of this test (the demo listener is shared): a column each.
  expect(await page.getByTestId('rank-table').first().locator('thead time').count()).toBeGreaterThanOrEqual(2);
  await expectChartDrawn(page.getByTestId('artists-rank-chart'));
  await expectChartDrawn(page.getByTestId('tracks-rank-chart'));
  await expect(page.getByTestId('entered-left')).toBeVisible();
  await expectNoHorizontalOverflow(page);
  await screenshot(page, testInfo, 'history');

  await page.locator('[data-range="medium_term"]').click();
  await expect(page).toHaveURL(/\/history\?range=medium_term$/);
  await expectChartDrawn(page.getByTestId('artists-rank-chart'));
});

test('the artist page gathers ranks, history, tracks and server figures', async ({ page }, testInfo) => {
  await signIn(page);
  const first = artists(page).first().locator('a.ranked__title');
  const name = (await first.textContent())!.trim();
  await press(first, testInfo);
  await expect(page).toHaveURL(/\/artist\/[0-9A-Za-z]{22}$/);
  await expect(page.getByTestId('artist-name')).toHaveText(name);
  await expect(page.getByTestId('artist-ranks')).toContainText('#1');
  await expectChartDrawn(page.getByTestId('artist-rank-chart'));
  await expect(page.getByTestId('artist-rank-table').locator('tbody tr')).toHaveCount(3);
  await expect(page.getByTestId('artist-views')).toContainText(/opened \d+ times? on this server/);
  // The first sync read recently played: the top artist's plays are there.
  await expect(page.getByTestId('artist-plays')).toContainText(/You played .+ since \d{4}-\d{2}-\d{2}\.|No plays of/);
  await expect(page.getByTestId('artist-instance-listeners')).toBeVisible();
  await expectNoHorizontalOverflow(page);
  await screenshot(page, testInfo, 'artist');
  await expectAccessible(page, 'artist page');

  await page.goBack();
  await expect(page).toHaveURL(/\/dashboard$/);
  await expect(artists(page).first()).toBeVisible();
});

test('unknown and other people\'s artists are a friendly 404', async ({ page, browser }, testInfo) => {
  await signIn(page);
  const unknown = await page.goto('/artist/0000000000000000000000');
  expect(unknown?.status()).toBe(404);
  await expect(page.getByTestId('artist-not-found')).toContainText('Artist not found');
  await screenshot(page, testInfo, 'artist-not-found');
  await expectAccessible(page, 'artist 404');

  // Alex's artists, tried as Sari: at least one of them is not hers, and that is a 404.
  const hrefs = new Set<string>();
  for (const range of ['short_term', 'medium_term', 'long_term']) {
    await page.goto(`/dashboard?range=${range}`);
    for (const href of await artists(page).locator('a.ranked__title').evaluateAll((as) => as.map((a) => a.getAttribute('href')!))) {
      hrefs.add(href);
    }
  }
  const sari = await browser.newContext();
  const sariPage = await sari.newPage();
  await signIn(sariPage, 'demo-sari');
  let notHers: string | undefined;
  for (const href of hrefs) {
    const response = await sariPage.request.get(href);
    if (response.status() === 404) {
      notHers = href;
      break;
    }
    expect(response.status()).toBe(200);
  }
  expect(notHers, 'one of Alex\'s artists is not in Sari\'s lists').toBeDefined();
  const response = await sariPage.goto(notHers!);
  expect(response?.status()).toBe(404);
  await expect(sariPage.getByTestId('artist-not-found')).toContainText('not in your top artists or top tracks');
  await sari.close();
});
