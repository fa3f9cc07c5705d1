import { test, expect } from '@playwright/test';
import { expectAccessible, expectCalendarDrawn, expectChartDrawn, expectNamesLeftNumbersRight, expectNoHorizontalOverflow, press, screenshot, signIn } from './helpers';

test('the listening page shows plays, streaks, both heatmaps and top lists by minutes', async ({ page }, testInfo) => {
  await signIn(page);
  await press(page.getByRole('link', { name: 'Listening' }), testInfo);
  await expect(page).toHaveURL(/\/listening\?range=short_term$/);
  // A sign-in's first sync reads recently played right after it: the plays arrive in moments.
  await expect(async () => {
    await page.reload();
    await expect(page.getByTestId('listening-totals')).toBeVisible({ timeout: 1_000 });
  }).toPass({ timeout: 20_000 });
  await expect(page.getByTestId('listening-totals')).toContainText(/Plays\s*\d+/);
  // The calendar paints a cell per day with plays, its labels inside it and apart.
  await expectCalendarDrawn(page.getByTestId('days-chart'));
  await expectChartDrawn(page.getByTestId('week-chart'));
  await expect(page.getByTestId('artists-by-minutes').locator('ol.by-minutes li').first()).toContainText(/\d+ plays/);
  // The tables beside the charts.
  await page.getByText('As a table: minutes by weekday and hour').click();
  await expect(page.getByTestId('week-table').locator('tbody tr')).toHaveCount(7);
  // Trending on this instance: everyone's plays of the last 7 days, counted in Redis.
  const week = page.getByTestId('trending-week');
  await expect(week.getByRole('table').first().locator('tbody tr').first()).toContainText(/\d+$/);
  // Names read from the left, play counts line up on the right.
  await expectNamesLeftNumbersRight(page.getByTestId('trending').getByRole('table'));
  // This instance in numbers, from the nodes' per-listener rollup.
  await expect(page.getByTestId('instance-totals')).toContainText(/[1-9][\d,]* listeners? · [1-9][\d,]* plays? · [\d,]+ hours? listened on this instance/);
  await expectNoHorizontalOverflow(page);
  await screenshot(page, testInfo, 'listening');
  await expectAccessible(page, 'listening page');

  await page.locator('[data-range="long_term"]').click();
  await expect(page).toHaveURL(/\/listening\?range=long_term$/);
  await expect(page.getByRole('heading', { name: 'When you listen: the last 1 year' })).toBeVisible();
});

test('the distributed query page shows each query, its result and the SQL the analytics node runs', async ({ page }, testInfo) => {
  await signIn(page);
  await page.goto('/listening');
  await press(page.getByRole('link', { name: 'How these are queried' }), testInfo);
  await expect(page).toHaveURL(/\/distributed$/);
  await expect(page.getByTestId('foreign-server')).toContainText('analytics.plays');
  const totals = page.getByTestId('query-totals');
  // Totals read the rollups the analytics node keeps: counted there, one row back.
  await expect(totals.getByTestId('plan').locator('mark', { hasText: 'plays_by_track' })).toContainText('Remote SQL: SELECT count(*)');
  await expect(totals.getByTestId('query-result')).toBeVisible();
  await expect(page.getByTestId('query-top_artists').getByTestId('plan').locator('mark')).toContainText('GROUP BY');
  // Sharded: your query reads your one partition on one node; the instance-wide one reads
  // every partition, on both nodes.
  await expect(page.getByTestId('placements')).toContainText('(yours)');
  const days = page.getByTestId('query-days').getByTestId('ran-on');
  await expect(days).toContainText(/analytics(-2)?: plays_by_hour_p\d$/);
  // Every partition, each under the node the Shards panel places it on (on a fresh
  // instance half on each node; an upgraded one keeps its partitions where its rows were).
  const instance = page.getByTestId('query-instance').getByTestId('ran-on');
  const placements = await page.getByTestId('placements').locator('tbody tr').allInnerTexts();
  expect(placements).toHaveLength(8);
  const ranOn = await instance.innerText();
  for (const row of placements) {
    const [part, node] = row.split('\t').map((cell) => cell.replace(' (yours)', '').trim());
    const onNode = ranOn.split(';').find((group) => group.includes(`${node}: `)) ?? '';
    expect(onNode, `${part} on ${node}: ${ranOn}`).toMatch(new RegExp(`\\bplays_${part}\\b`));
  }
  // The server's options: each name and value on one line, no value squeezed narrower
  // than its text (they once wrapped letter by letter); also on a 1440-pixel screen.
  const sizes = testInfo.project.name === 'desktop' ? [null, { width: 1440, height: 900 }] : [null];
  for (const size of sizes) {
    if (size) await page.setViewportSize(size);
    const options = await page.getByTestId('foreign-server').locator('dl.options > div').evaluateAll((items) =>
      items.map((item) => {
        const dd = item.querySelector('dd')!;
        return {
          name: item.querySelector('dt')!.textContent,
          value: dd.textContent,
          nameLines: item.querySelector('dt code')!.getClientRects().length,
          valueLines: dd.querySelector('code')!.getClientRects().length,
          squeezed: dd.scrollWidth > dd.clientWidth,
        };
      }),
    );
    expect(options.map((o) => o.name)).toContain('use_remote_estimate');
    for (const o of options) {
      expect(o, `${o.name} = ${o.value} at ${page.viewportSize()!.width} px`).toMatchObject({ nameLines: 1, valueLines: 1, squeezed: false });
    }
  }
  await expectNamesLeftNumbersRight(page.getByTestId('placements').getByRole('table'));
  await expectNamesLeftNumbersRight(page.getByTestId('query-result'));
  await expectNoHorizontalOverflow(page);
  await screenshot(page, testInfo, 'distributed');
  await expectAccessible(page, 'distributed query page');
});

test.describe('in a browser in Auckland', () => {
  test.use({ timezoneId: 'Pacific/Auckland' });

  test("days and hours are in the browser's time zone, and another can be chosen", async ({ page, baseURL }, testInfo) => {
    const user = testInfo.project.name === 'desktop' ? 'demo-crowd-101' : 'demo-crowd-102';
    // A listener who never chose a zone: delete what an earlier run left, sign in anew.
    await signIn(page, user);
    // A sync started by the sign-in may still run: deletion then answers 409 and changes
    // nothing, and a person tries again a moment later.
    await expect(async () => {
      const gone = await page.request.post('/account/delete', { form: { confirm: 'delete' }, headers: { origin: baseURL! } });
      expect(gone.status()).toBe(200);
    }).toPass({ timeout: 30_000 });
    await signIn(page, user);
    await page.goto('/listening');
    // The browser's zone is saved on the first visit and the page shows it.
    await expect(page.getByTestId('zone-form')).toHaveAttribute('data-zone-set', 'true', { timeout: 15_000 });
    await expect(page.getByTestId('time-zone')).toHaveValue('Pacific/Auckland');
    // A name the server does not know: refused beside the form, nothing changed.
    await page.getByTestId('time-zone').fill('Mars/Olympus');
    await page.getByRole('button', { name: 'Change' }).click();
    await expect(page.locator('#zone-message')).toContainText('not a time zone this server knows');
    await page.reload();
    await expect(page.getByTestId('time-zone')).toHaveValue('Pacific/Auckland');
    // Another zone: saved, and the page reloads in it.
    await page.getByTestId('time-zone').fill('Europe/Lisbon');
    const reloaded = page.waitForEvent('framenavigated');
    await page.getByRole('button', { name: 'Change' }).click();
    await reloaded;
    await expect(page.getByTestId('zone-form')).toHaveAttribute('data-zone-set', 'true');
    await expect(page.getByTestId('time-zone')).toHaveValue('Europe/Lisbon');
    await expectAccessible(page, 'listening page with its time zone');
  });
});
