import { test, expect, type Page } from '@playwright/test';
import AxeBuilder from '@axe-core/playwright';

// WCAG 2.1 A/AA rules; a page passes with no serious or critical violation.
async function expectAccessible(page: Page, what: string) {
  const results = await new AxeBuilder({ page }).withTags(['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']).analyze();
  const severe = results.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  const summary = severe.map((v) => `${v.id} (${v.impact}): ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
  expect(summary, `${what}: serious or critical accessibility violations`).toEqual([]);
}

test('the start page is accessible', async ({ page }) => {
  await page.goto('/');
  await expect(page.getByTestId('range-preview')).toHaveAttribute('data-hydrated', 'true');
  await expectAccessible(page, 'start page');
});

test('the dashboard is accessible', async ({ page }) => {
  await page.goto('/');
  await page.getByRole('link', { name: 'Try the demo' }).click();
  await expect(page.getByTestId('top-artists').locator('li').first()).toBeVisible({ timeout: 20_000 });
  await expectAccessible(page, 'dashboard');
});

test('the not-found page is accessible', async ({ page }) => {
  await page.goto('/no/such/page');
  await expectAccessible(page, '404 page');
});

test('the history page is accessible and shows the rank tables', async ({ page }) => {
  await page.goto('/');
  await page.getByRole('link', { name: 'Try the demo' }).click();
  await expect(page.getByTestId('top-artists').locator('li').first()).toBeVisible({ timeout: 20_000 });
  await page.getByRole('link', { name: 'History' }).click();
  await expect(page).toHaveURL(/\/history\?range=short_term$/);
  await expect(page.getByTestId('rank-table')).toHaveCount(2);
  await expectAccessible(page, 'history page');
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  expect(overflow).toBeLessThanOrEqual(0);
});
