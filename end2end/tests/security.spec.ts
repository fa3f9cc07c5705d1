import { test, expect } from '@playwright/test';
import { artists, signIn } from './helpers';

// The Content-Security-Policy allows only this server's scripts and the inline scripts the
// renderer emitted, by hash: every page must load, hydrate and draw its charts without a
// violation.
test('no page breaks its Content-Security-Policy, loaded directly or by a link', async ({ page }) => {
  const violations: string[] = [];
  await page.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => {
      (window as unknown as { cspViolations: string[] }).cspViolations ??= [];
      (window as unknown as { cspViolations: string[] }).cspViolations.push(`${e.violatedDirective} ${e.blockedURI}`);
    });
  });
  page.on('console', (message) => {
    if (/Content Security Policy/i.test(message.text())) violations.push(message.text().slice(0, 300));
  });
  const collect = async (where: string) => {
    const seen = await page.evaluate(() => (window as unknown as { cspViolations?: string[] }).cspViolations ?? []);
    violations.push(...seen.map((v) => `${where}: ${v}`));
  };

  const landing = await page.goto('/');
  const csp = landing!.headers()['content-security-policy'];
  expect(csp).toContain("script-src 'self' 'wasm-unsafe-eval' 'sha256-");
  expect(csp).toContain("frame-ancestors 'none'");
  expect(landing!.headers()['x-content-type-options']).toBe('nosniff');
  await collect('/');

  await signIn(page);
  await collect('/dashboard');
  await page.getByRole('link', { name: 'History' }).click();
  await expect(page.getByTestId('rank-table').first()).toBeVisible();
  await collect('/history by link');
  await page.getByRole('link', { name: 'Back to the dashboard' }).click();
  const href = await artists(page).first().locator('a.ranked__title').getAttribute('href');
  // Every page with charts, and the 404 page (rendered by the error handler).
  for (const path of ['/dashboard?range=long_term', '/history?range=medium_term', href!, '/listening?range=short_term', '/distributed', '/nowhere']) {
    const response = await page.goto(path);
    expect(response!.headers()['cache-control'], `${path} is personal`).toBe('no-store');
    await page.waitForLoadState('networkidle');
    for (const chart of await page.locator('[data-chart-src]').all()) {
      await chart.scrollIntoViewIfNeeded();
      await expect(chart).toHaveAttribute('data-chart-drawn', '');
    }
    await collect(path);
  }
  expect(violations).toEqual([]);
});

test('a state-changing request from another site is refused, and the session stays', async ({ page, request }) => {
  await signIn(page);
  const cookies = await page.context().cookies();
  const session = cookies.find((c) => c.name.endsWith('pfy_session'))!;
  const refused = await request.post('/auth/logout', {
    headers: { Origin: 'http://evil.example', Cookie: `${session.name}=${session.value}` },
    maxRedirects: 0,
  });
  expect(refused.status()).toBe(403);
  expect(await refused.text()).toContain('came from another site');
  await page.goto('/dashboard');
  await expect(artists(page).first()).toBeVisible();
  // The page's own sign-out still works.
  await page.getByRole('button', { name: /sign out/i }).click();
  await expect(page).toHaveURL(/\/$/);
});
