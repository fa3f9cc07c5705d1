import { test, expect } from '@playwright/test';

// The server runs in demo mode (no Spotify app configured): sign-in goes through the
// built-in Spotify simulator with the same OAuth code path as real Spotify.

test('demo sign-in shows the demo listener, sign-out ends the session', async ({ page, context }, testInfo) => {
  await page.goto('/');
  await page.getByRole('link', { name: 'Try the demo' }).click();

  await expect(page).toHaveURL(/\/dashboard$/);
  await expect(page.getByTestId('viewer-name')).toHaveText('Alex Rivera');
  await expect(page.getByTestId('demo-mode')).toBeVisible();
  await page.screenshot({ path: `screenshots/dashboard-${testInfo.project.name}.png`, fullPage: true });

  // The session cookie is HttpOnly and holds no Spotify token.
  const cookies = await context.cookies();
  const session = cookies.find((c) => c.name === 'pfy_session');
  expect(session?.httpOnly).toBe(true);
  expect(session?.sameSite).toBe('Lax');
  expect(cookies.find((c) => c.name === 'pfy_oauth')).toBeUndefined();

  await page.getByRole('button', { name: 'Sign out' }).click();
  await expect(page).toHaveURL(/\/$/);
  expect((await context.cookies()).find((c) => c.name === 'pfy_session')).toBeUndefined();

  await page.goto('/dashboard');
  await expect(page.getByRole('heading', { level: 1 })).toHaveText("You're not signed in");
});

test('declining access lands on a friendly page', async ({ page }) => {
  // A callback with Spotify's error but no sign-in started in this browser.
  const response = await page.goto('/auth/callback?error=access_denied&state=nope');
  expect(response?.status()).toBe(400);
  await expect(page.getByRole('heading', { level: 1 })).toHaveText('This sign-in did not start here');
  await page.getByRole('link', { name: 'Back to the start page' }).click();
  await expect(page).toHaveURL(/\/$/);
});
