import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { createDashboard } from '../../src/server/static.js';

/** A dashboard in front of a stand-in REST handler (answers 404 "rest"), on a loopback port. */
async function serve(t: import('node:test').TestContext, dir: string): Promise<string> {
  const d = createDashboard(dir);
  const srv = createServer((req, res) => {
    if (d.handle(req, res)) return;
    res.statusCode = 404;
    res.setHeader('content-type', 'application/json');
    res.end('{"message":"rest","code":404}');
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  t.after(() => new Promise<void>((r) => srv.close(() => r())));
  return `http://127.0.0.1:${(srv.address() as AddressInfo).port}`;
}

function build(t: import('node:test').TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'nbwb-static-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(join(dir, 'assets'));
  writeFileSync(join(dir, 'index.html'), '<!doctype html><title>app</title><script src="/assets/app-abc123.js"></script>');
  writeFileSync(join(dir, 'assets/app-abc123.js'), 'console.log("x");'.repeat(200));
  writeFileSync(join(dir, 'assets/app-abc123.css'), 'body{}');
  writeFileSync(join(dir, 'favicon.svg'), '<svg xmlns="http://www.w3.org/2000/svg"/>');
  // A file next to the build dir that a path-traversal attempt would try to read.
  const secret = join(dir, '..', `${dir.split('/').at(-1)}-secret.txt`);
  writeFileSync(secret, 'secret');
  t.after(() => rmSync(secret, { force: true }));
  return dir;
}

const html = { accept: 'text/html,application/xhtml+xml' };

test('index, assets with types and cache headers, gzip', async (t) => {
  const url = await serve(t, build(t));
  const root = await fetch(url + '/');
  assert.equal(root.status, 200);
  assert.equal(root.headers.get('content-type'), 'text/html; charset=utf-8');
  assert.equal(root.headers.get('cache-control'), 'no-cache');
  assert.match(root.headers.get('content-security-policy') ?? '', /default-src 'self'/);
  assert.match(await root.text(), /<title>app<\/title>/);

  const js = await fetch(url + '/assets/app-abc123.js', { headers: { 'accept-encoding': 'gzip' } });
  assert.equal(js.status, 200);
  assert.equal(js.headers.get('content-type'), 'text/javascript; charset=utf-8');
  assert.equal(js.headers.get('cache-control'), 'public, max-age=31536000, immutable');
  assert.equal((await js.text()).length, 'console.log("x");'.length * 200); // fetch gunzips
  const raw = await new Promise<{ enc: string | undefined; body: Buffer }>((resolve, reject) => {
    import('node:http').then(({ get }) =>
      get(url + '/assets/app-abc123.js', { headers: { 'accept-encoding': 'gzip' } }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ enc: res.headers['content-encoding'], body: Buffer.concat(chunks) }));
      }).on('error', reject),
    );
  });
  assert.equal(raw.enc, 'gzip');
  assert.ok(raw.body.length < 200, `gzip shrinks the repetitive file (${raw.body.length} bytes)`);
  assert.equal(gunzipSync(raw.body).toString().length, 'console.log("x");'.length * 200);

  const css = await fetch(url + '/assets/app-abc123.css');
  assert.equal(css.headers.get('content-type'), 'text/css; charset=utf-8');
  const svg = await fetch(url + '/favicon.svg');
  assert.equal(svg.headers.get('content-type'), 'image/svg+xml');
  assert.equal(svg.headers.get('cache-control'), 'no-cache');

  const head = await fetch(url + '/', { method: 'HEAD' });
  assert.equal(head.status, 200);
  assert.equal(await head.text(), '');
});

test('SPA fallback for browser navigations only; server paths and missing files reach the REST handler', async (t) => {
  const dir = build(t);
  const url = await serve(t, dir);
  const deep = await fetch(url + '/peers', { headers: html });
  assert.equal(deep.status, 200);
  assert.match(await deep.text(), /<title>app<\/title>/);
  const deeper = await fetch(url + '/events/audit?x=1', { headers: html });
  assert.equal(deeper.status, 200);

  // Not a browser navigation: the JSON 404 of the REST app.
  assert.equal((await fetch(url + '/peers')).status, 404);
  // Server prefixes never get the app, even from a browser.
  for (const p of ['/api/peers', '/api', '/oauth2/token', '/relay', '/health', '/metrics', '/ws-proxy/management']) {
    const r = await fetch(url + p, { headers: html });
    assert.equal(r.status, 404, p);
    assert.equal(await r.text(), '{"message":"rest","code":404}', p);
  }
  // A stale asset is a 404, never the HTML shell (which a browser would try to run as a script).
  assert.equal((await fetch(url + '/assets/app-old999.js', { headers: html })).status, 404);
  // Other methods are the REST app's.
  assert.equal((await fetch(url + '/', { method: 'POST' })).status, 404);
  // No way out of the build directory.
  const secretName = `${dir.split('/').at(-1)}-secret.txt`;
  for (const p of [`/../${secretName}`, `/%2e%2e/${secretName}`, `/assets/..%2f..%2f${secretName}`, `/..%2f${secretName}`]) {
    const r = await fetch(url + p);
    assert.notEqual(await r.text(), 'secret', p);
  }
});

test('without a build, / explains how to build the dashboard and the API still answers', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'nbwb-empty-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const url = await serve(t, join(dir, 'missing'));
  const r = await fetch(url + '/');
  assert.equal(r.status, 503);
  assert.match(await r.text(), /npm run build:web/);
  assert.equal((await fetch(url + '/api/peers')).status, 404);
  assert.equal((await fetch(url + '/peers')).status, 404);
  assert.equal((await fetch(url + '/peers', { headers: html })).status, 503);
});
