import { expect, type Page, type TestInfo, type Locator } from '@playwright/test';
import AxeBuilder from '@axe-core/playwright';

export const artists = (page: Page) => page.getByTestId('top-artists').locator('li');

/** Demo sign-in from the start page; waits for the first sync to fill the dashboard. */
export async function signIn(page: Page, user?: string) {
  if (user) {
    await page.goto(`/auth/demo?user=${user}`);
  } else {
    await page.goto('/');
    await page.getByRole('link', { name: 'Try the demo' }).click();
  }
  await expect(page).toHaveURL(/\/dashboard$/);
  await expect(artists(page).first()).toBeVisible({ timeout: 20_000 });
}

/** WCAG 2.1 A/AA rules; a page passes with no serious or critical violation. */
export async function expectAccessible(page: Page, what: string) {
  // Check the settled page, not lists dimmed while new ones load.
  await expect(page.locator('[aria-busy="true"]')).toHaveCount(0);
  const results = await new AxeBuilder({ page }).withTags(['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa']).analyze();
  const severe = results.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  const summary = severe.map((v) => `${v.id} (${v.impact}): ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
  expect(summary, `${what}: serious or critical accessibility violations`).toEqual([]);
}

export async function expectNoHorizontalOverflow(page: Page) {
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  expect(overflow, 'page wider than the viewport').toBeLessThanOrEqual(0);
}

/** A full-page screenshot per page and viewport, in end2end/screenshots/. */
export async function screenshot(page: Page, testInfo: TestInfo, name: string) {
  // Charts draw when they come near the viewport: bring each into view so the picture has them.
  for (const chart of await page.locator('[data-chart-src]').all()) {
    await chart.scrollIntoViewIfNeeded();
    await expect(chart).toHaveAttribute('data-chart-drawn', '');
  }
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: `screenshots/${name}-${testInfo.project.name}.png`, fullPage: true });
}

/** ECharts has drawn into the chart box: an SVG with some shapes in it. */
export async function expectChartDrawn(chart: Locator) {
  await chart.scrollIntoViewIfNeeded();
  await expect(chart).toHaveAttribute('data-chart-drawn', '');
  await expect(chart.locator('svg')).toBeVisible();
  // ECharts paints on the next animation frame: wait for the shapes, don't count them once.
  await expect(chart.locator('svg path').first()).toBeAttached();
}

/** Tap on touch devices, click elsewhere. */
export async function press(target: Locator, testInfo: TestInfo) {
  if (testInfo.project.use.hasTouch) {
    await target.tap();
  } else {
    await target.click();
  }
}

/**
 * The per-day calendar is drawn: as many painted day cells (the scale's green) as the
 * chart's label says days with plays, at least `atLeast`; every label (months, weekdays)
 * inside the SVG's box; no two month labels on top of each other. Returns the days count.
 */
export async function expectCalendarDrawn(chart: Locator, atLeast = 1): Promise<number> {
  await expectChartDrawn(chart);
  const label = (await chart.getAttribute('aria-label')) ?? '';
  const said = /in that time, (\d+) days? with plays/.exec(label);
  expect(said, `the chart says how many days: ${label}`).not.toBeNull();
  const days = Number(said![1]);
  expect(days).toBeGreaterThanOrEqual(atLeast);
  // ECharts paints on the next animation frame: poll until the cells are there.
  await expect
    .poll(() =>
      chart.evaluate((el) =>
        [...el.querySelectorAll('svg path')].filter((p) => {
          const box = (p as SVGGraphicsElement).getBBox();
          return /^(rgba?\(29,\s*185,\s*84|#1db954)/i.test(p.getAttribute('fill') ?? '') && box.width > 0 && box.height > 0;
        }).length,
      ),
    )
    .toBe(days);
  const labels = await chart.evaluate((el) => {
    const svg = el.querySelector('svg')!.getBoundingClientRect();
    return [...el.querySelectorAll('svg text')].map((t) => {
      const r = t.getBoundingClientRect();
      return { text: t.textContent ?? '', left: r.left - svg.left, right: r.right - svg.left, top: r.top - svg.top, bottom: r.bottom - svg.top, width: svg.width, height: svg.height };
    });
  });
  expect(labels.length, 'month and weekday labels').toBeGreaterThan(12);
  for (const l of labels) {
    expect(l.left >= 0 && l.top >= 0 && l.right <= l.width + 0.5 && l.bottom <= l.height + 0.5, `label ${JSON.stringify(l)} inside the chart`).toBe(true);
  }
  // Month labels share the top row: each ends before the next begins.
  const top = Math.min(...labels.map((l) => l.top));
  const months = labels.filter((l) => Math.abs(l.top - top) < 2).sort((a, b) => a.left - b.left);
  expect(months.length, 'a label per month').toBeGreaterThanOrEqual(12);
  for (let i = 1; i < months.length; i++) {
    expect(months[i].left, `"${months[i - 1].text}" and "${months[i].text}" overlap`).toBeGreaterThanOrEqual(months[i - 1].right);
  }
  return days;
}

/**
 * In each table: name cells (class "name") read from the cell's left edge, numbers end at
 * its right edge (measured on the rendered text, not the CSS).
 */
export async function expectNamesLeftNumbersRight(tables: Locator) {
  const cells = await tables.evaluateAll((all) =>
    all.flatMap((table) =>
      [...table.querySelectorAll('tbody td')].map((td) => {
        const cell = td.getBoundingClientRect();
        const style = getComputedStyle(td);
        const range = document.createRange();
        range.selectNodeContents(td);
        const text = range.getBoundingClientRect();
        return {
          text: td.textContent ?? '',
          name: td.classList.contains('name'),
          fromLeft: text.left - cell.left - parseFloat(style.paddingLeft),
          fromRight: cell.right - parseFloat(style.paddingRight) - text.right,
        };
      }),
    ),
  );
  expect(cells.length).toBeGreaterThan(0);
  for (const c of cells) {
    if (c.name) {
      expect(Math.abs(c.fromLeft), `name "${c.text}" starts at its cell's left`).toBeLessThanOrEqual(1);
    } else {
      expect(c.text, 'a cell not marked as a name holds a number').toMatch(/^(-?[\d,.]+|NULL)$/);
      expect(Math.abs(c.fromRight), `number ${c.text} ends at its cell's right`).toBeLessThanOrEqual(1);
    }
  }
}
