import { test, expect } from '@playwright/test';
import { expectAccessible, expectCalendarDrawn, expectNoHorizontalOverflow, press, screenshot, signIn } from './helpers';

test('a newcomer imports the sample export, watches it progress, and sees a year of plays', async ({ page }, testInfo) => {
  test.setTimeout(120_000);
  await signIn(page);
  await page.goto('/listening');
  await press(page.getByRole('link', { name: 'Import your full history' }), testInfo);
  await expect(page).toHaveURL(/\/import$/);
  await expect(page.getByTestId('sample-export')).toBeVisible();
  await expectAccessible(page, 'import page');
  await expectNoHorizontalOverflow(page);

  // The demo listener is shared by the projects (and by earlier runs): note the newest
  // import shown, then wait for a newer one to be done.
  const newest = page.getByTestId('imports').locator('[data-import-id]').first();
  const before = (await newest.count()) ? await newest.getAttribute('data-import-id') : null;
  // The demo listener's own export, as Spotify would send it.
  const sample = await page.request.get('/import/sample.zip');
  expect(sample.status()).toBe(200);
  const buffer = await sample.body();
  await page.setInputFiles('#import-file', { name: 'my_spotify_data.zip', mimeType: 'application/zip', buffer });
  await press(page.getByRole('button', { name: 'Import' }), testInfo);
  // Uploaded, then read: the page follows the import until it is done.
  if (before) await expect(newest).not.toHaveAttribute('data-import-id', before, { timeout: 30_000 });
  await expect(newest).toHaveAttribute('data-testid', 'import-done', { timeout: 90_000 });
  await expect(newest).toContainText(/Done: \d+ new plays added/);
  await expect(newest).toContainText('podcast');
  await screenshot(page, testInfo, 'import');

  await page.goto('/listening?range=long_term');
  await expect(page.getByTestId('listening-totals')).toContainText(/Days with plays\s*(\d{3})/);
  // A year of plays: a painted cell for each of its days with plays, hundreds of them.
  await expectCalendarDrawn(page.getByTestId('days-chart'), 300);
});

test('a file that is no export is refused beside the form, with the reason', async ({ page }) => {
  await signIn(page);
  await page.goto('/import');
  await page.setInputFiles('#import-file', { name: 'notes.txt', mimeType: 'text/plain', buffer: Buffer.from('just some notes') });
  await page.getByRole('button', { name: 'Import' }).click();
  await expect(page.getByTestId('import-message')).toContainText('neither a ZIP nor a JSON file');
  await expect(page).toHaveURL(/\/import$/);
});
