import { test, expect } from '@playwright/test';
import { expectAccessible, expectChartDrawn, screenshot, signIn } from './helpers';

test('the dashboard draws its genre chart and redraws it on a range switch', async ({ page }) => {
  await signIn(page);
  const chart = page.getByTestId('genre-chart');
  await expectChartDrawn(chart);
  // The chart shows the genres the text list shows.
  const topGenre = (await page.getByTestId('genres').locator('.genres__name').first().textContent())!.trim();
  await expect(chart.locator('svg')).toContainText(topGenre);
  await expect(chart).toHaveAttribute('aria-label', new RegExp(`^Genre chart: ${topGenre} `));

  const before = await chart.getAttribute('data-chart-src');
  await page.locator('[data-range="long_term"]').click();
  await expect(page).toHaveURL(/\?range=long_term$/);
  await expect.poll(() => page.getByTestId('genre-chart').getAttribute('data-chart-src')).not.toBe(before);
  await expectChartDrawn(page.getByTestId('genre-chart'));
  // The redrawn chart shows the new list's top genre.
  const longTopGenre = (await page.getByTestId('genres').locator('.genres__name').first().textContent())!.trim();
  await expect(page.getByTestId('genre-chart').locator('svg')).toContainText(longTopGenre);
});

test('charts draw from the server alone, before and without hydration', async ({ page }) => {
  await signIn(page);
  // No WASM at all: the page never hydrates, yet ECharts draws the server-built option.
  // The page names each chart's URL; the option itself is not in the page.
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

test('a chart whose data cannot be fetched says so in its box', async ({ page }) => {
  await signIn(page);
  await page.route('**/charts/**', (route) => route.fulfill({ status: 503, body: 'down' }));
  await page.goto('/history?range=medium_term');
  const chart = page.getByTestId('artists-rank-chart');
  await chart.scrollIntoViewIfNeeded();
  await expect(chart).toHaveAttribute('data-chart-failed', '');
  await expect(chart).toContainText('This chart is unavailable right now.');
  // The table beside it has the same numbers, and the page is otherwise whole.
  await expect(page.getByTestId('rank-table').first()).toBeVisible();
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

test('on a phone, ECharts waits until the reader scrolls to the genre chart', async ({ page }, testInfo) => {
  test.skip(!testInfo.project.use.hasTouch, 'phones only: on a desktop the genre chart is in view at once');
  const loaded: string[] = [];
  page.on('request', (request) => {
    if (request.url().endsWith('/echarts.js')) loaded.push(request.url());
  });
  await signIn(page);
  await page.waitForLoadState('networkidle');
  const chart = page.getByTestId('genre-chart');
  await expect(chart).not.toBeInViewport();
  expect(loaded, 'echarts.js fetched for a chart far below the fold').toEqual([]);
  await expect(chart).not.toHaveAttribute('data-chart-drawn', '');
  await expectChartDrawn(chart);
  expect(loaded.length).toBe(1);
});

test('charts follow the viewport and the dark theme', async ({ page }, testInfo) => {
  await signIn(page);
  const chart = page.getByTestId('genre-chart');
  await expectChartDrawn(chart);
  const width = async () => Number(await chart.locator('svg').first().getAttribute('width'));
  const before = await width();
  const viewport = page.viewportSize()!;
  await page.setViewportSize({ width: 360, height: viewport.height });
  await expect.poll(width).toBeLessThan(Math.min(before, 360));
  await page.setViewportSize(viewport);
  await expect.poll(width).toBe(before);

  // Dark: the page and ECharts' own dark theme (light legend text on the dark page).
  const legendFill = () => chart.locator('svg text').last().evaluate((t) => getComputedStyle(t).fill || t.getAttribute('fill'));
  const light = await legendFill();
  await page.emulateMedia({ colorScheme: 'dark' });
  await expect.poll(legendFill).not.toBe(light);
  await expectAccessible(page, 'dashboard, dark theme');
  await screenshot(page, testInfo, 'dashboard-dark');
});
