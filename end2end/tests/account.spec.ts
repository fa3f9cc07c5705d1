import { test, expect } from '@playwright/test';
import { readFile } from 'node:fs/promises';
import { expectAccessible, signIn } from './helpers';

test('your data: download everything, then delete the account', async ({ page }) => {
  await signIn(page, 'demo-kenji');
  await page.getByTestId('your-data').click();
  await expect(page).toHaveURL(/\/settings$/);
  await expect(page.getByRole('heading', { name: 'Your data' })).toBeVisible();
  await expectAccessible(page, 'settings');

  const [download] = await Promise.all([
    page.waitForEvent('download'),
    page.getByTestId('export').click(),
  ]);
  expect(download.suggestedFilename()).toMatch(/^personalify-demo-kenji-\d{4}-\d{2}-\d{2}\.json$/);
  const data = JSON.parse(await readFile(await download.path(), 'utf8'));
  expect(data.profile.spotify_id).toBe('demo-kenji');
  expect(data.top_lists.length).toBe(3);

  // The form refuses without the word, in the browser already.
  await page.getByTestId('delete-account').click();
  await expect(page).toHaveURL(/\/settings$/);
  await page.getByTestId('confirm-delete').fill('delete');
  await page.getByTestId('delete-account').click();
  await expect(page.getByRole('heading', { name: 'Your account is deleted' })).toBeVisible();
  const cookies = await page.context().cookies();
  expect(cookies.find((c) => c.name.endsWith('pfy_session'))).toBeUndefined();
  await page.goto('/dashboard');
  await expect(page.getByRole('heading', { name: "You're not signed in" })).toBeVisible();
});
