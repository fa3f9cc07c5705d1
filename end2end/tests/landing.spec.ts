import { test, expect, type Page } from '@playwright/test';

const preview = (page: Page) => page.getByTestId('range-preview');
const tab = (page: Page, name: string) => page.getByRole('tab', { name });

test.describe('landing page', () => {
  test('is server-rendered: content is there and the switch is inert without JavaScript', async ({ browser }) => {
    const context = await browser.newContext({ javaScriptEnabled: false });
    const page = await context.newPage();
    const response = await page.goto('/');
    expect(response?.status()).toBe(200);
    await expect(page.getByRole('heading', { level: 1 })).toHaveText('Your listening, on your own server');
    await expect(page.getByRole('link', { name: 'Try the demo' })).toBeVisible();
    await expect(page.getByText('Log in with Spotify')).toBeVisible();
    await expect(preview(page)).toHaveAttribute('data-hydrated', 'false');

    // Without the WASM nothing reacts: the first range stays selected.
    await tab(page, '1 year').click();
    await expect(tab(page, '4 weeks')).toHaveAttribute('aria-selected', 'true');
    await expect(page.getByTestId('preview-list')).toContainText('Nova Lights');
    await context.close();
  });

  test('hydrates: the range switch changes state once the WASM runs', async ({ page }) => {
    await page.goto('/');
    await expect(preview(page)).toHaveAttribute('data-hydrated', 'true');

    const list = page.getByTestId('preview-list');
    await expect(list.locator('li').first()).toHaveText('Nova Lights');
    await tab(page, '1 year').click();
    await expect(tab(page, '1 year')).toHaveAttribute('aria-selected', 'true');
    await expect(tab(page, '4 weeks')).toHaveAttribute('aria-selected', 'false');
    await expect(list.locator('li').first()).toHaveText('Ruth Calder');
    await expect(page.getByText('Top artists, last 1 year (sample)')).toBeVisible();

    // Keyboard: arrows move between ranges (WAI-ARIA tabs).
    await tab(page, '1 year').focus();
    await page.keyboard.press('ArrowLeft');
    await expect(tab(page, '6 months')).toHaveAttribute('aria-selected', 'true');
    await expect(tab(page, '6 months')).toBeFocused();
  });

  test('says demo mode when no Spotify app is configured', async ({ page }) => {
    await page.goto('/');
    await expect(page.getByTestId('demo-mode')).toContainText('Demo mode.');
  });

  test('fits the viewport without horizontal scrolling, and is captured', async ({ page }, testInfo) => {
    await page.goto('/');
    await expect(preview(page)).toHaveAttribute('data-hydrated', 'true');
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    expect(overflow).toBeLessThanOrEqual(0);
    await page.screenshot({ path: `screenshots/landing-${testInfo.project.name}.png`, fullPage: true });
  });

  test('unknown pages get a friendly 404', async ({ page }) => {
    const response = await page.goto('/no/such/page');
    expect(response?.status()).toBe(404);
    await expect(page.getByRole('heading', { level: 1 })).toHaveText("This page doesn't exist");
    await page.getByRole('link', { name: 'Go to the start page' }).click();
    await expect(page).toHaveURL(/\/$/);
  });
});

test.describe('small screens', () => {
  test.use({ viewport: { width: 360, height: 740 } });
  test('360 px wide has no horizontal scrolling', async ({ page }) => {
    await page.goto('/');
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    expect(overflow).toBeLessThanOrEqual(0);
  });
});
