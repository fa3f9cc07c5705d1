import { test, expect } from '@playwright/test';
import { expectAccessible, expectChartDrawn, expectNoHorizontalOverflow, press, screenshot, signIn } from './helpers';

test('the listening page shows plays, streaks, both heatmaps and top lists by minutes', async ({ page }, testInfo) => {
  await signIn(page);
  await press(page.getByRole('link', { name: 'Listening' }), testInfo);
  await expect(page).toHaveURL(/\/listening\?range=short_term$/);
  // A sign-in's first sync reads recently played right after it: the plays arrive in moments.
  await expect(async () => {
    await page.reload();
    await expect(page.getByTestId('listening-totals')).toBeVisible({ timeout: 1_000 });
  }).toPass({ timeout: 20_000 });
  await expect(page.getByTestId('listening-totals')).toContainText(/Plays\s*\d+/);
  await expectChartDrawn(page.getByTestId('days-chart'));
  await expectChartDrawn(page.getByTestId('week-chart'));
  await expect(page.getByTestId('artists-by-minutes').locator('ol.by-minutes li').first()).toContainText(/\d+ plays/);
  // The tables beside the charts.
  await page.getByText('As a table: minutes by weekday and hour').click();
  await expect(page.getByTestId('week-table').locator('tbody tr')).toHaveCount(7);
  await expectNoHorizontalOverflow(page);
  await screenshot(page, testInfo, 'listening');
  await expectAccessible(page, 'listening page');

  await page.locator('[data-range="long_term"]').click();
  await expect(page).toHaveURL(/\/listening\?range=long_term$/);
  await expect(page.getByRole('heading', { name: 'When you listen: the last 1 year' })).toBeVisible();
});

test('the distributed query page shows each query, its result and the SQL the analytics node runs', async ({ page }, testInfo) => {
  await signIn(page);
  await page.goto('/listening');
  await press(page.getByRole('link', { name: 'How these are queried' }), testInfo);
  await expect(page).toHaveURL(/\/distributed$/);
  await expect(page.getByTestId('foreign-server')).toContainText('analytics.plays');
  const totals = page.getByTestId('query-totals');
  await expect(totals.getByTestId('plan').locator('mark')).toContainText('Remote SQL: SELECT count(*)');
  await expect(totals.getByTestId('query-result')).toBeVisible();
  await expect(page.getByTestId('query-top_artists').getByTestId('plan').locator('mark')).toContainText('GROUP BY');
  await expectNoHorizontalOverflow(page);
  await screenshot(page, testInfo, 'distributed');
  await expectAccessible(page, 'distributed query page');
});
