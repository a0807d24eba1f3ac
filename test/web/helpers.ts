import { type ChildProcess, spawn } from 'node:child_process';
import { join, resolve } from 'node:path';
import { type BrowserContext, type Page, chromium } from 'playwright-core';
import { build } from 'vite';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import type { TestPeer } from '../management/helpers.js';

/** Shared parts of the browser tests: a dashboard build, a real netbird-server, Debian's Chromium. */

export const CHROMIUM = '/usr/bin/chromium';
export const ROOT = resolve(import.meta.dirname, '../..');
export const SHOTS = join(ROOT, 'artifacts/web');

/** Builds web/ into `outDir` (the current source, never a stale web/dist). */
export async function buildDashboard(outDir: string): Promise<string> {
  await build({ configFile: join(ROOT, 'web/vite.config.ts'), logLevel: 'warn', build: { outDir, emptyOutDir: true } });
  return outDir;
}

/** Starts the netbird-server CLI on a free loopback port, serving the dashboard from `webDir`. */
export async function startServer(dataDir: string, webDir: string, extraArgs: string[] = [], env: Record<string, string> = {}): Promise<{ proc: ChildProcess; url: string; port: number }> {
  const proc = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'test/server/run-cli.ts'), '--data-dir', dataDir, '--listen', '127.0.0.1:0', ...extraArgs], {
    cwd: ROOT,
    env: { ...process.env, NB_DASHBOARD_DIR: webDir, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  proc.stderr!.on('data', (c: Buffer) => (out += c.toString()));
  try {
    const port = await new Promise<number>((res, rej) => {
      const timer = setTimeout(() => rej(new Error(`netbird-server did not start:\n${out}`)), 30_000);
      proc.stdout!.on('data', (c: Buffer) => {
        out += c.toString();
        const m = /listening on 127\.0\.0\.1:(\d+)/.exec(out);
        if (m) {
          clearTimeout(timer);
          res(Number(m[1]));
        }
      });
      proc.once('exit', (code) => {
        clearTimeout(timer);
        rej(new Error(`netbird-server exited with ${code}:\n${out}`));
      });
    });
    return { proc, url: `http://127.0.0.1:${port}`, port };
  } catch (err) {
    await stopServer(proc);
    throw err;
  }
}

/** SIGTERM, then SIGKILL after 5 s: the server process never outlives the test. */
export async function stopServer(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise((r) => proc.once('exit', r));
  proc.kill('SIGTERM');
  await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
  if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
}

/**
 * Headless Chromium with a fresh profile directory (playwright-core owns --user-data-dir).
 * `executablePath` may be a wrapper (e.g. one that enters a lab namespace); `ignoreHTTPSErrors` for labs'
 * self-made CAs.
 */
export function launchChromium(profileDir: string, opts: { executablePath?: string; ignoreHTTPSErrors?: boolean } = {}): Promise<BrowserContext> {
  return chromium.launchPersistentContext(profileDir, {
    executablePath: opts.executablePath ?? CHROMIUM,
    ignoreHTTPSErrors: opts.ignoreHTTPSErrors ?? false,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: { width: 1360, height: 860 },
  });
}

export async function shot(page: Page, name: string): Promise<void> {
  // From the top: the sticky sidebar would otherwise be drawn where the last scroll left it.
  await page.evaluate('window.scrollTo(0, 0)');
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}

/**
 * Runs in the page (as a string, so the test needs no DOM typings): form controls and links
 * without an accessible name, and text whose contrast with its background is below WCAG AA
 * (4.5:1, or 3:1 for large text). Backgrounds are read up the tree to the first opaque colour;
 * text over images or gradients, inside SVG or hidden is skipped.
 */
const AUDIT = `(() => {
  const issues = [];
  const nameOf = (el) => {
    const lb = el.getAttribute('aria-labelledby');
    const byId = lb ? lb.split(/\\s+/).map((i) => document.getElementById(i)?.textContent || '').join(' ') : '';
    const labels = el.labels ? [...el.labels].map((l) => l.textContent).join(' ') : '';
    return (el.getAttribute('aria-label') || byId || labels || (el.tagName === 'INPUT' ? '' : el.textContent) || el.getAttribute('title') || '').trim();
  };
  for (const el of document.querySelectorAll('input:not([type=hidden]), select, textarea, button, a[href], [role=switch], [role=button]')) {
    if (!nameOf(el)) issues.push('no accessible name: ' + el.outerHTML.slice(0, 100));
  }
  const rgb = (s) => { const m = s.match(/[\\d.]+/g) || []; return m.map(Number); };
  const lum = ([r, g, b]) => { const f = (c) => { c /= 255; return c <= 0.03928 ? c / 12.92 : Math.pow((c + 0.055) / 1.055, 2.4); }; return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b); };
  const bgOf = (el) => {
    for (let e = el; e; e = e.parentElement) {
      const cs = getComputedStyle(e);
      if (cs.backgroundImage && cs.backgroundImage !== 'none') return null;
      const c = rgb(cs.backgroundColor);
      if (c.length >= 3 && (c.length === 3 || c[3] === 1)) return c;
    }
    return [255, 255, 255];
  };
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const seen = new Set();
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const el = n.parentElement;
    if (!el || seen.has(el) || !n.textContent.trim() || el.closest('svg')) continue;
    seen.add(el);
    const cs = getComputedStyle(el);
    if (cs.visibility === 'hidden' || cs.display === 'none' || el.getClientRects().length === 0) continue;
    if (el.closest('[disabled]') || el.closest('.sr-only')) continue;
    const bg = bgOf(el);
    if (!bg) continue;
    const fg = rgb(cs.color);
    let opacity = 1;
    for (let e = el; e; e = e.parentElement) opacity *= Number(getComputedStyle(e).opacity);
    const mix = fg.slice(0, 3).map((c, i) => c * (fg[3] ?? 1) * opacity + bg[i] * (1 - (fg[3] ?? 1) * opacity));
    const [a, b] = [lum(mix), lum(bg)];
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    const size = parseFloat(cs.fontSize);
    const large = size >= 24 || (size >= 18.66 && Number(cs.fontWeight) >= 700);
    if (ratio < (large ? 3 : 4.5)) issues.push('contrast ' + ratio.toFixed(2) + ': "' + n.textContent.trim().slice(0, 40) + '" (' + cs.color + ' on rgb(' + bg.join(',') + '))');
  }
  return issues;
})()`;

export async function a11yIssues(page: Page): Promise<string[]> {
  return (await page.evaluate(AUDIT)) as string[];
}

/**
 * A dashboard test's world: a fresh build of web/, a real server on it, Chromium with its own
 * profile, and gRPC test peers; all of it is stopped and removed when the test ends.
 */
export async function dashboardWorld(
  t: { after(fn: () => unknown): void; test(name: string, fn: () => Promise<void>): Promise<void> },
  prefix: string,
  shotPrefix: string,
): Promise<{ tmp: string; url: string; port: number; peers: TestPeer[]; context: BrowserContext; page: Page; consoleErrors: string[]; step: (name: string, fn: () => Promise<void>) => Promise<void> }> {
  mkdirSync(SHOTS, { recursive: true });
  const tmp = mkdtempSync(join(tmpdir(), prefix));
  const peers: TestPeer[] = [];
  let proc: ChildProcess | undefined;
  let context: BrowserContext | undefined;
  t.after(async () => {
    for (const p of peers) p.close();
    await context?.close().catch(() => {});
    if (proc) await stopServer(proc);
    rmSync(tmp, { recursive: true, force: true });
  });
  // A fresh build of the current source, so the test never checks a stale web/dist.
  const webDir = await buildDashboard(join(tmp, 'web'));
  const server = await startServer(join(tmp, 'data'), webDir);
  proc = server.proc;
  context = await launchChromium(join(tmp, 'profile'));
  const page = context.pages()[0] ?? (await context.newPage());
  const consoleErrors: string[] = [];
  page.on('console', (m) => {
    // 4xx answers a test provokes on purpose show up as resource errors; anything else is a bug.
    if (m.type() === 'error' && !/status of 4\d\d/.test(m.text())) consoleErrors.push(m.text());
  });
  page.on('pageerror', (e) => consoleErrors.push(String(e)));
  page.setDefaultTimeout(8_000);
  // A failing step leaves a picture of what the browser showed.
  const step = (name: string, fn: () => Promise<void>): Promise<void> =>
    t.test(name, async () => {
      try {
        await fn();
      } catch (err) {
        await shot(page, `${shotPrefix}${name.split(':')[0]!.replace(/\W+/g, '-')}`).catch(() => {});
        throw err;
      }
    });
  return { tmp, url: server.url, port: server.port, peers, context, page, consoleErrors, step };
}
