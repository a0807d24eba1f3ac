import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Lab, waitUntil } from '../lab/index.js';
import { watchHostAddresses } from '../../src/ice/index.js';
import { openSide } from './helpers.js';

test('address changes in the namespace are noticed; host candidates come from the namespace interfaces minus excluded ones', async (t) => {
  const lab = await Lab.create({ prefix: 'nbic' });
  t.after(() => lab.cleanup());
  const a = await lab.ns('wa');
  const b = await lab.ns('wb');
  await lab.link(a, 'eth0', ['10.31.0.1/24'], b, 'eth0', ['10.31.0.2/24']);
  await lab.link(a, 'wt0', ['100.64.0.1/16'], b, 'wt0', []);
  let changes = 0;
  const stop = watchHostAddresses(() => changes++, { intervalMs: 100, netns: a.name, excludeInterfaces: ['wt0'] });
  t.after(stop);
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(changes, 0);
  await a.addr('wt0', '100.64.0.9/16');
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(changes, 0, 'the excluded (WireGuard) interface does not count');
  await a.addr('eth0', '10.31.0.7/24');
  assert.ok(await waitUntil(() => changes === 1, 2000), 'new address noticed');

  const side = await openSide({ netns: a.name, excludeInterfaces: ['wt0'] });
  t.after(() => side.close());
  await side.agent.gather();
  assert.deepEqual(side.agent.localCandidates.map((c) => `${c.type} ${c.address}`).sort(), ['host 10.31.0.1', 'host 10.31.0.7']);
});
