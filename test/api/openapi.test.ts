import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startApi } from './helpers.js';

/** /api/openapi.json matches the routes Fastify really serves, and covers NetBird's endpoint list. */

// NetBird endpoints (management-api.md §8) this server implements.
const SPEC: string[] = [
  'GET /api/instance', 'GET /api/instance/version', 'POST /api/setup',
  'GET /api/accounts', 'DELETE /api/accounts/{accountId}', 'PUT /api/accounts/{accountId}',
  'GET /api/users', 'POST /api/users', 'PUT /api/users/{userId}', 'DELETE /api/users/{userId}',
  'GET /api/users/{userId}/tokens', 'POST /api/users/{userId}/tokens', 'GET /api/users/{userId}/tokens/{tokenId}', 'DELETE /api/users/{userId}/tokens/{tokenId}',
  'PUT /api/users/{userId}/password', 'GET /api/users/current', 'POST /api/users/{userId}/approve', 'DELETE /api/users/{userId}/reject',
  'GET /api/users/invites', 'POST /api/users/invites', 'DELETE /api/users/invites/{inviteId}', 'POST /api/users/invites/{inviteId}/regenerate',
  'GET /api/users/invites/{token}', 'POST /api/users/invites/{token}/accept',
  'GET /api/peers', 'GET /api/peers/{peerId}', 'PUT /api/peers/{peerId}', 'DELETE /api/peers/{peerId}', 'GET /api/peers/{peerId}/accessible-peers',
  'GET /api/setup-keys', 'POST /api/setup-keys', 'GET /api/setup-keys/{keyId}', 'PUT /api/setup-keys/{keyId}', 'DELETE /api/setup-keys/{keyId}',
  'GET /api/groups', 'POST /api/groups', 'GET /api/groups/{groupId}', 'PUT /api/groups/{groupId}', 'DELETE /api/groups/{groupId}',
  'GET /api/policies', 'POST /api/policies', 'GET /api/policies/{policyId}', 'PUT /api/policies/{policyId}', 'DELETE /api/policies/{policyId}',
  'GET /api/routes', 'POST /api/routes', 'GET /api/routes/{routeId}', 'PUT /api/routes/{routeId}', 'DELETE /api/routes/{routeId}',
  'GET /api/networks', 'POST /api/networks', 'GET /api/networks/{networkId}', 'PUT /api/networks/{networkId}', 'DELETE /api/networks/{networkId}',
  'GET /api/networks/{networkId}/resources', 'POST /api/networks/{networkId}/resources', 'GET /api/networks/{networkId}/resources/{resourceId}',
  'PUT /api/networks/{networkId}/resources/{resourceId}', 'DELETE /api/networks/{networkId}/resources/{resourceId}',
  'GET /api/networks/{networkId}/routers', 'POST /api/networks/{networkId}/routers', 'GET /api/networks/{networkId}/routers/{routerId}',
  'PUT /api/networks/{networkId}/routers/{routerId}', 'DELETE /api/networks/{networkId}/routers/{routerId}', 'GET /api/networks/routers',
  'GET /api/dns/nameservers', 'POST /api/dns/nameservers', 'GET /api/dns/nameservers/{nsgroupId}', 'PUT /api/dns/nameservers/{nsgroupId}', 'DELETE /api/dns/nameservers/{nsgroupId}',
  'GET /api/dns/settings', 'PUT /api/dns/settings',
  'GET /api/dns/zones', 'POST /api/dns/zones', 'GET /api/dns/zones/{zoneId}', 'PUT /api/dns/zones/{zoneId}', 'DELETE /api/dns/zones/{zoneId}',
  'GET /api/dns/zones/{zoneId}/records', 'POST /api/dns/zones/{zoneId}/records', 'GET /api/dns/zones/{zoneId}/records/{recordId}',
  'PUT /api/dns/zones/{zoneId}/records/{recordId}', 'DELETE /api/dns/zones/{zoneId}/records/{recordId}',
  'GET /api/events/audit', 'GET /api/events/network-traffic',
  'GET /api/networks/resources', 'GET /api/identity-providers', 'GET /api/identity-providers/{idpId}',
  'GET /api/locations/countries', 'GET /api/locations/countries/{country}/cities', 'GET /api/integrations/event-streaming',
  'GET /api/integrations/notifications/types', 'GET /api/integrations/notifications/channels', 'GET /api/peers/edr/bypassed', 'GET /api/peers/{peerId}/jobs',
  'GET /api/posture-checks', 'POST /api/posture-checks', 'GET /api/posture-checks/{postureCheckId}', 'PUT /api/posture-checks/{postureCheckId}', 'DELETE /api/posture-checks/{postureCheckId}',
];

test('OpenAPI document lists exactly the /api routes that exist', async (t) => {
  const a = await startApi();
  t.after(() => a.close());
  const r = await a.call('GET', '/api/openapi.json');
  assert.equal(r.status, 200);
  assert.equal(r.body.openapi, '3.1.0');
  const documented = new Set<string>();
  for (const [path, ops] of Object.entries(r.body.paths as Record<string, Record<string, unknown>>)) {
    for (const method of Object.keys(ops)) documented.add(`${method.toUpperCase()} ${path}`);
  }
  const routed = new Set(a.api.routes.filter((x) => x.url.startsWith('/api/')).map((x) => `${x.method} ${x.url.replace(/:(\w+)/g, '{$1}')}`));
  assert.deepEqual([...documented].filter((x) => !routed.has(x)), [], 'documented but not routed');
  assert.deepEqual([...routed].filter((x) => !documented.has(x)), [], 'routed but not documented');
  assert.deepEqual(SPEC.filter((x) => !documented.has(x)), [], 'NetBird endpoints missing');

  // Each documented operation answers through the router (401 without credentials, not 404), and
  // write operations declare their request body schema.
  for (const op of documented) {
    const [method, path] = op.split(' ') as [string, string];
    const res = await a.call(method, path.replace(/\{\w+\}/g, 'x'), method === 'GET' || method === 'DELETE' ? {} : { body: {} });
    assert.ok(!(res.status === 404 && /no such endpoint/.test(res.body.message)), `${op} is routed`);
    const spec = r.body.paths[path][method.toLowerCase()];
    if ((method === 'POST' || method === 'PUT') && !op.endsWith('/approve') && !op.endsWith('/regenerate')) assert.ok(spec.requestBody, `${op} has a request body schema`);
  }
});
