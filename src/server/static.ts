import { existsSync, readFileSync, statSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { dirname, extname, join, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import type { OidcIssuerConfig } from '../api/index.js';

/**
 * Serves the built web dashboard (web/dist, made by `npm run build:web`) on netbird-server's port.
 * GET/HEAD outside the server's own prefixes (/api, /oauth2, /relay, /ws-proxy, /health, /metrics)
 * is the dashboard's: a file of the build if one matches; `/` and any other extension-less path a
 * browser navigates to (Accept: text/html) get index.html (the SPA routes client-side); anything
 * else falls through to the REST app's JSON 404. Hashed files under /assets/ are cached for a year; index.html is revalidated
 * every time so a new build is picked up at once. Files are read once and kept in memory with a gzip
 * copy (the whole build is a few hundred KiB).
 */

/** Paths that belong to the server itself and never fall back to the dashboard. */
export const RESERVED_PREFIXES: readonly string[] = ['/api', '/oauth2', '/relay', '/ws-proxy', '/health', '/metrics'];

/** Environment variable naming another build directory (tests build into a temporary one). */
export const DASHBOARD_DIR_ENV = 'NB_DASHBOARD_DIR';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.webp': 'image/webp',
  '.woff2': 'font/woff2',
  '.txt': 'text/plain; charset=utf-8',
  '.webmanifest': 'application/manifest+json',
};
const COMPRESSIBLE = new Set(['.html', '.js', '.mjs', '.css', '.json', '.svg', '.txt', '.map', '.webmanifest']);

// The dashboard talks only to its own origin (and an external identity provider's discovery and
// token endpoints when one is configured); inline style attributes are React's `style` props.
const csp = (connect: string[]): string =>
  `default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src ${["'self'", ...connect].join(' ')}; frame-ancestors 'none'; base-uri 'self'; form-action 'self'`;

/** Served at /dashboard-config.json: what the app needs to know before anyone signs in. */
export const CONFIG_PATH = '/dashboard-config.json';

export interface DashboardOptions {
  /** External OIDC issuers of the server: the first one becomes the dashboard's "Sign in with ..." (client id = its first audience). */
  oidc?: readonly OidcIssuerConfig[];
}

interface CachedFile {
  body: Buffer;
  gzip: Buffer | undefined;
  type: string;
  mtimeMs: number;
}

export interface Dashboard {
  /** The build directory served (it may not exist). */
  readonly dir: string;
  /** Whether the build (index.html) is present. */
  built(): boolean;
  /** Serves `req` when it is the dashboard's; false when the caller should route it elsewhere. */
  handle(req: IncomingMessage, res: ServerResponse): boolean;
}

/** Where the build is looked for: $NB_DASHBOARD_DIR, else web/dist of this checkout (from src/ or dist/src/). */
export function defaultDashboardDir(): string {
  const env = process.env[DASHBOARD_DIR_ENV];
  if (env) return resolve(env);
  const here = dirname(fileURLToPath(import.meta.url));
  const candidates = [resolve(here, '../../web/dist'), resolve(here, '../../../web/dist')];
  return candidates.find((c) => existsSync(join(c, 'index.html'))) ?? candidates[0]!;
}

function isReserved(path: string): boolean {
  return RESERVED_PREFIXES.some((p) => path === p || path.startsWith(p + '/'));
}

const NOT_BUILT = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>NetBird dashboard not built</title></head>
<body style="font-family:sans-serif;max-width:40rem;margin:3rem auto;line-height:1.5">
<h1>The web dashboard is not built</h1>
<p>This netbird-server runs fine (the REST API is at <code>/api</code>), but the dashboard files were not found in <code>DIR</code>.</p>
<p>Build them from the source tree with <code>npm run build:web</code> (or <code>npm run build</code>) and reload this page,
or point <code>${DASHBOARD_DIR_ENV}</code> at a directory holding a build.</p></body></html>`;

export function createDashboard(dir: string = defaultDashboardDir(), opts: DashboardOptions = {}): Dashboard {
  const root = resolve(dir);
  const cache = new Map<string, CachedFile>();
  const ext = opts.oidc?.[0];
  const oidc = ext ? { issuer: ext.issuer.replace(/\/$/, ''), clientId: [ext.audience].flat()[0] ?? '', scope: 'openid profile email' } : null;
  const connect: string[] = [];
  if (oidc) {
    try {
      connect.push(new URL(oidc.issuer).origin);
    } catch {
      // an unparsable issuer fails at sign-in with a clear error; the CSP just stays strict
    }
  }
  const CSP = csp(connect);
  const configBody = Buffer.from(JSON.stringify({ oidc }));

  /** A file of the build by URL path, or undefined (never outside `root`). */
  const load = (urlPath: string): CachedFile | undefined => {
    const file = resolve(root, '.' + urlPath);
    if (file !== root && !file.startsWith(root + sep)) return undefined;
    let st;
    try {
      st = statSync(file);
    } catch {
      return undefined;
    }
    if (!st.isFile()) return undefined;
    const hit = cache.get(file);
    if (hit && hit.mtimeMs === st.mtimeMs) return hit;
    const ext = extname(file).toLowerCase();
    const body = readFileSync(file);
    const entry: CachedFile = {
      body,
      gzip: COMPRESSIBLE.has(ext) && body.length > 1024 ? gzipSync(body) : undefined,
      type: TYPES[ext] ?? 'application/octet-stream',
      mtimeMs: st.mtimeMs,
    };
    cache.set(file, entry);
    return entry;
  };

  const send = (req: IncomingMessage, res: ServerResponse, f: CachedFile, cacheControl: string, html: boolean): void => {
    const useGzip = f.gzip !== undefined && /\bgzip\b/.test(String(req.headers['accept-encoding'] ?? ''));
    const body = useGzip ? f.gzip! : f.body;
    res.statusCode = 200;
    res.setHeader('content-type', f.type);
    res.setHeader('content-length', body.length);
    res.setHeader('cache-control', cacheControl);
    res.setHeader('x-content-type-options', 'nosniff');
    if (f.gzip) res.setHeader('vary', 'accept-encoding');
    if (useGzip) res.setHeader('content-encoding', 'gzip');
    if (html) {
      res.setHeader('content-security-policy', CSP);
      res.setHeader('referrer-policy', 'no-referrer');
    }
    res.end(req.method === 'HEAD' ? undefined : body);
  };

  return {
    dir: root,
    built: () => existsSync(join(root, 'index.html')),
    handle(req, res): boolean {
      if (req.method !== 'GET' && req.method !== 'HEAD') return false;
      let path: string;
      try {
        path = decodeURIComponent((req.url ?? '/').split('?')[0]!.split('#')[0]!);
      } catch {
        return false;
      }
      if (!path.startsWith('/') || isReserved(path) || path.includes('\0')) return false;
      if (path === CONFIG_PATH) {
        res.statusCode = 200;
        res.setHeader('content-type', 'application/json; charset=utf-8');
        res.setHeader('cache-control', 'no-cache');
        res.setHeader('content-length', configBody.length);
        res.end(req.method === 'HEAD' ? undefined : configBody);
        return true;
      }
      const isIndex = path === '/' || path === '/index.html';
      // Only a browser navigating (Accept: text/html) gets the app shell for an unknown path; API
      // clients and scripts asking for something that is not there get the server's JSON 404.
      const navigation = /\btext\/html\b/.test(String(req.headers.accept ?? ''));
      const index = load('/index.html');
      if (!index) {
        if (!isIndex && !navigation) return false;
        res.statusCode = 503;
        res.setHeader('content-type', 'text/html; charset=utf-8');
        res.setHeader('cache-control', 'no-store');
        res.end(req.method === 'HEAD' ? undefined : NOT_BUILT.replace('DIR', root.replace(/[&<>]/g, '')));
        return true;
      }
      if (!isIndex) {
        const f = load(path);
        if (f) {
          // Vite puts content-hashed names under /assets/: they never change, so cache them for good.
          send(req, res, f, path.startsWith('/assets/') ? 'public, max-age=31536000, immutable' : 'no-cache', f.type.startsWith('text/html'));
          return true;
        }
        // A missing file (a stale page asking for an old hash) is a real 404, not the SPA shell.
        if (!navigation || extname(path) !== '') return false;
      }
      send(req, res, index, 'no-cache', true);
      return true;
    },
  };
}
