import { type ChildProcess, spawn } from 'node:child_process';
import { join, resolve } from 'node:path';
import { type BrowserContext, type Page, chromium } from 'playwright-core';
import { build } from 'vite';

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
export async function startServer(dataDir: string, webDir: string, extraArgs: string[] = []): Promise<{ proc: ChildProcess; url: string; port: number }> {
  const proc = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'test/server/run-cli.ts'), '--data-dir', dataDir, '--listen', '127.0.0.1:0', ...extraArgs], {
    cwd: ROOT,
    env: { ...process.env, NB_DASHBOARD_DIR: webDir },
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

/** Headless Chromium with a fresh profile directory (playwright-core owns --user-data-dir). */
export function launchChromium(profileDir: string): Promise<BrowserContext> {
  return chromium.launchPersistentContext(profileDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: { width: 1360, height: 860 },
  });
}

export async function shot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}
