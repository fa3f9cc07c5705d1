import { test, expect } from '@playwright/test';
import { expectAccessible, expectChartDrawn, expectNoHorizontalOverflow, screenshot, signIn } from './helpers';

test('the start page is accessible', async ({ page }) => {
  await page.goto('/');
  await expect(page.getByTestId('range-preview')).toHaveAttribute('data-hydrated', 'true');
  await expectAccessible(page, 'start page');
});

test('the dashboard is accessible', async ({ page }) => {
  await signIn(page);
  await expectChartDrawn(page.getByTestId('genre-chart'));
  await expectAccessible(page, 'dashboard');
});

test('the not-found page is accessible', async ({ page }, testInfo) => {
  const response = await page.goto('/no/such/page');
  expect(response?.status()).toBe(404);
  await screenshot(page, testInfo, 'not-found');
  await expectAccessible(page, '404 page');
});

test('the history page is accessible and shows the rank tables', async ({ page }) => {
  await signIn(page);
  await page.getByRole('link', { name: 'History' }).click();
  await expect(page).toHaveURL(/\/history\?range=short_term$/);
  await expect(page.getByTestId('rank-table')).toHaveCount(2);
  await expectChartDrawn(page.getByTestId('artists-rank-chart'));
  await expectAccessible(page, 'history page');
  await expectNoHorizontalOverflow(page);
});
