import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CHROMIUM, a11yIssues, launchChromium } from './helpers.js';

// The accessibility audit the dashboard test runs on every page must itself catch problems.
test('the accessibility audit flags unnamed controls and low-contrast text, and passes good markup', { skip: existsSync(CHROMIUM) ? undefined : `${CHROMIUM} missing` }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'nbwb-a11y-'));
  const ctx = await launchChromium(dir);
  t.after(async () => {
    await ctx.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const page = ctx.pages()[0] ?? (await ctx.newPage());
  await page.setContent('<p style="color:#aaa;background:#fff">faint text</p><input id="x"><button></button><div style="background:#111"><span style="color:#333">dark on dark</span></div>');
  const bad = await a11yIssues(page);
  assert.equal(bad.filter((x) => x.startsWith('no accessible name')).length, 2, bad.join('\n'));
  assert.equal(bad.filter((x) => x.startsWith('contrast')).length, 2, bad.join('\n'));
  await page.setContent('<p style="color:#111">fine</p><label>Name <input></label><label for="e">E-mail</label><input id="e"><button>Go</button><button aria-label="Close"></button><h1 style="color:#767676">large grey heading</h1>');
  assert.deepEqual(await a11yIssues(page), []);
});
