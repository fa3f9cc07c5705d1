import { test, expect } from '@playwright/test';

// Runs against the second server of `make test`, which keeps the default fair-use settings
// (SYNC_COOLDOWN_SECS=300, a Spotify budget, sign-in limits) on the same stores.
const fair = process.env.FAIR_BASE_URL ?? 'http://127.0.0.1:3101';

test('after a sync, "Sync now" counts down to when it may run again', async ({ page }) => {
  await page.goto(`${fair}/auth/demo?user=demo-amara`);
  await expect(page).toHaveURL(/\/dashboard$/);
  const button = page.getByTestId('sync-now');
  // The sign-in's sync (or one another test ran lately) starts the cooldown.
  await expect(button).toHaveText(/^Sync again in (\d+ min|\d+ s)$/, { timeout: 20_000 });
  await expect(button).toBeDisabled();
  // The server agrees, in words, with when to come back.
  const refused = await page.request.post(`${fair}/api/sync`);
  expect(refused.status()).toBe(429);
  expect(Number(refused.headers()['retry-after'])).toBeGreaterThan(0);
  expect(await refused.text()).toMatch(/You can sync again in \d+ (min|s)\./);
});
