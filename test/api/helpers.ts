import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Api, type ApiOptions, createApi } from '../../src/api/index.js';
import { AccountManager, Store, type StoreOptions } from '../../src/management/index.js';

/** An API on a fresh SQLite store, driven through Fastify inject() (no socket). */
export interface TestApi {
  api: Api;
  manager: AccountManager;
  store: Store;
  dir: string;
  call(method: string, url: string, opts?: { token?: string; bearer?: string; body?: unknown; headers?: Record<string, string>; remoteAddress?: string }): Promise<{ status: number; body: any; headers: Record<string, unknown> }>;
  close(): Promise<void>;
}

export async function startApi(opts: Partial<ApiOptions> = {}, now?: () => number, storeOptions?: StoreOptions): Promise<TestApi> {
  const dir = mkdtempSync(join(tmpdir(), 'nbap-'));
  const store = await Store.open(storeOptions ?? { kind: 'sqlite', path: join(dir, 'management.db') });
  const manager = await AccountManager.open({ store, dnsDomain: 'netbird.selfhosted', now });
  const api = await createApi({ manager, publicUrl: 'http://127.0.0.1:33073', ...opts });
  return {
    api,
    manager,
    store,
    dir,
    async call(method, url, o = {}) {
      const headers: Record<string, string> = { ...(o.headers ?? {}) };
      if (o.token) headers.authorization = `Token ${o.token}`;
      if (o.bearer) headers.authorization = `Bearer ${o.bearer}`;
      if (o.body !== undefined && !headers['content-type']) headers['content-type'] = 'application/json';
      const res = await api.app.inject({ method: method as 'GET', url, headers, remoteAddress: o.remoteAddress, payload: o.body === undefined ? undefined : typeof o.body === 'string' ? o.body : JSON.stringify(o.body) });
      let body: unknown = res.body;
      try {
        body = JSON.parse(res.body);
      } catch {
        /* not JSON */
      }
      return { status: res.statusCode, body, headers: res.headers as Record<string, unknown> };
    },
    async close() {
      await api.close();
      manager.close();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Runs POST /api/setup and returns the owner's PAT. */
export async function setupOwner(t: TestApi, email = 'owner@example.com'): Promise<{ token: string; userId: string; accountId: string }> {
  const r = await t.call('POST', '/api/setup', { body: { email, password: 'correct horse', name: 'Owner', create_pat: true, pat_expire_in: 30 } });
  if (r.status !== 200) throw new Error(`setup failed: ${r.status} ${JSON.stringify(r.body)}`);
  const acc = await t.call('GET', '/api/accounts', { token: r.body.personal_access_token });
  return { token: r.body.personal_access_token, userId: r.body.user_id, accountId: acc.body[0].id };
}
