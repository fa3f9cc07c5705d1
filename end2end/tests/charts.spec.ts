import { test, expect } from '@playwright/test';
import { expectChartDrawn, signIn } from './helpers';

test('the dashboard draws its genre chart and redraws it on a range switch', async ({ page }) => {
  await signIn(page);
  const chart = page.getByTestId('genre-chart');
  await expectChartDrawn(chart);
  // The chart shows the genres the text list shows.
  const topGenre = (await page.getByTestId('genres').locator('.genres__name').first().textContent())!.trim();
  await expect(chart.locator('svg')).toContainText(topGenre);
  await expect(chart).toHaveAttribute('aria-label', new RegExp(`^Genre chart: ${topGenre} `));

  const before = await chart.getAttribute('data-chart');
  await page.locator('[data-range="long_term"]').click();
  await expect(page).toHaveURL(/\?range=long_term$/);
  await expect.poll(() => page.getByTestId('genre-chart').getAttribute('data-chart')).not.toBe(before);
  await expectChartDrawn(page.getByTestId('genre-chart'));
});

test('charts draw from the server alone, before and without hydration', async ({ page }) => {
  await signIn(page);
  // No WASM at all: the page never hydrates, yet ECharts draws the server-built option.
  await page.route('**/*.wasm', (route) => route.abort());
  const echarts: string[] = [];
  page.on('request', (request) => {
    if (request.url().endsWith('/echarts.js')) echarts.push(request.url());
  });
  await page.goto('/history?range=short_term');
  await expectChartDrawn(page.getByTestId('artists-rank-chart'));
  await expectChartDrawn(page.getByTestId('tracks-rank-chart'));
  // Served by Personalify itself, never a CDN.
  expect(echarts.every((url) => url.startsWith(new URL(page.url()).origin))).toBe(true);
});

test('ECharts is loaded only on pages with charts', async ({ page }) => {
  const loaded: string[] = [];
  page.on('request', (request) => {
    if (request.url().endsWith('/echarts.js')) loaded.push(request.url());
  });
  await page.goto('/');
  await page.waitForLoadState('networkidle');
  expect(loaded).toEqual([]);
  await page.getByRole('link', { name: 'Try the demo' }).click();
  await expectChartDrawn(page.getByTestId('genre-chart'));
  expect(loaded.length).toBe(1);
});
