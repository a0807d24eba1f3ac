import assert from 'node:assert/strict';
import { test } from 'node:test';
import sodium from 'sodium-native';
import { generateKeyPair, openEnvelope } from '../../src/crypto/index.js';
import { SYNC_HEADROOM, boxBeforeNm, withGrpcPrefix } from '../../src/management/index.js';
import { FramePool } from '../../src/management/frame-pool.js';
import { WorkerSealer } from '../../src/management/seal-worker.js';
import { management } from '../../src/proto/index.js';

const server = generateKeyPair();
const serverText = server.publicKey.toString('base64');

function frameWith(pool: FramePool | undefined, plain: Buffer): Buffer {
  const frame = pool ? pool.take(SYNC_HEADROOM + plain.length) : Buffer.allocUnsafe(SYNC_HEADROOM + plain.length);
  plain.copy(frame, SYNC_HEADROOM);
  return frame;
}

test('the seal worker encrypts shared frames in place; callbacks keep the order of seal calls, inline ones included', async () => {
  const sealer = new WorkerSealer(serverText, { minWorkerBytes: 1024, maxBatchBytes: 64 * 1024 });
  const pool = new FramePool(1 << 20, true);
  try {
    const peers = Array.from({ length: 8 }, () => generateKeyPair());
    const keys = peers.map((p) => boxBeforeNm(p.publicKey, server.privateKey));
    const order: number[] = [];
    const checks: Array<Promise<void>> = [];
    for (let i = 0; i < 300; i++) {
      // Shared frames of all sizes (past several batches), plus unshared ones that go inline.
      const shared = i % 7 !== 3;
      const plain = Buffer.alloc((i * 613) % 30000 + (i % 5));
      sodium.randombytes_buf(plain);
      const frame = frameWith(shared ? pool : undefined, plain);
      const peer = i % peers.length;
      checks.push(
        new Promise((resolve, reject) => {
          sealer.seal(frame, keys[peer]!, (sealed) => {
            try {
              order.push(i);
              assert.ok(sealed, `frame ${i} sealed`);
              assert.equal(sealed.buffer, frame.buffer, 'sealed in place');
              const msg = management.EncryptedMessage.decode(sealed);
              assert.equal(msg.wgPubKey, serverText);
              assert.deepEqual(openEnvelope(msg.body, server.publicKey, peers[peer]!.privateKey), plain);
              assert.equal(withGrpcPrefix(sealed).readUInt32BE(1), sealed.length);
              resolve();
            } catch (err) {
              reject(err as Error);
            }
          });
        }),
      );
      // Let some batches go out while more frames arrive.
      if (i % 50 === 49) await new Promise((r) => setImmediate(r));
    }
    await Promise.all(checks);
    assert.deepEqual(order, Array.from({ length: 300 }, (_, i) => i));
  } finally {
    await sealer.close();
  }
});

test('the frame pool hands written frames out again, by capacity class, within its bound', () => {
  const pool = new FramePool(64 * 1024);
  const a = pool.take(20_000);
  assert.equal(a.length, 20_000);
  assert.ok(a.buffer.byteLength >= 20_000 && a.buffer.byteLength <= 20_000 * 1.125);
  pool.give(a);
  const b = pool.take(19_000); // same class: the same memory
  assert.equal(b.buffer, a.buffer);
  assert.equal(b.length, 19_000);
  const c = pool.take(20_000); // the pool is empty now: fresh memory
  assert.notEqual(c.buffer, a.buffer);
  assert.equal(pool.stats.reused, 1);
  // Small frames come from Node's own pool and are never kept; nor is anything past the bound.
  const small = pool.take(100);
  pool.give(small);
  assert.equal(pool.stats.freeBytes, 0);
  const many = Array.from({ length: 10 }, (_, i) => pool.take(30_000 + i));
  for (const f of many) pool.give(f);
  assert.ok(pool.stats.freeBytes > 0 && pool.stats.freeBytes <= 64 * 1024, `kept ${pool.stats.freeBytes} bytes`);
  // Foreign buffers (other memory, views not at the start) are ignored.
  pool.give(Buffer.from(new ArrayBuffer(40_000), 8, 20_000));
  assert.ok(pool.stats.freeBytes <= 64 * 1024);
});
