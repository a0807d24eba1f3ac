import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { once } from 'node:events';
import { TurnClient } from '../../src/stun/index.js';
import { startCoturn } from './coturn.js';

test('TURN client: allocate on coturn, channel-bind a peer and carry data both ways', async (t) => {
  const turn = await startCoturn();
  t.after(() => turn.stop());
  const peer = createSocket('udp4');
  await new Promise<void>((r) => peer.bind(0, '127.0.0.1', r));
  t.after(() => peer.close());
  const cl = new TurnClient({ host: '127.0.0.1', port: turn.port, username: turn.username, password: turn.password });
  t.after(() => cl.close());
  const relayed = await cl.allocate();
  assert.equal(relayed.address, '127.0.0.1');
  assert.ok(relayed.port >= 50000);
  assert.equal(cl.mapped?.address, '127.0.0.1');
  await cl.channelBind(0x4001, { address: '127.0.0.1', port: peer.address().port });

  const atPeer = once(peer, 'message');
  cl.sendChannelData(0x4001, Buffer.from('via coturn'));
  const [msg, rinfo] = (await atPeer) as [Buffer, { port: number }];
  assert.equal(msg.toString(), 'via coturn');
  assert.equal(rinfo.port, relayed.port, 'arrives from the relayed address');

  const back = new Promise<string>((resolve) => cl.onChannelData((ch, data) => resolve(`${ch}:${data.toString()}`)));
  peer.send(Buffer.from('reply'), relayed.port, '127.0.0.1');
  assert.equal(await back, `${0x4001}:reply`);
});

test('TURN client: wrong password is reported', async (t) => {
  const turn = await startCoturn();
  t.after(() => turn.stop());
  const cl = new TurnClient({ host: '127.0.0.1', port: turn.port, username: turn.username, password: 'wrong' });
  t.after(() => cl.close());
  await assert.rejects(cl.allocate(), /authentication failed|401/);
});
