#!/usr/bin/env node
// Generates TypeScript for proto/*.proto into src/proto/gen with ts-proto, using the protoc binary that the
// npm "protoc" package ships (no download). Run: npm run proto
import { spawnSync } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

const require = createRequire(import.meta.url);
const out = 'src/proto/gen';
rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
const plugin = join(dirname(require.resolve('ts-proto/package.json')), 'protoc-gen-ts_proto');
const opts = [
  'outputServices=grpc-js',
  'esModuleInterop=true',
  'importSuffix=.js',
  'forceLong=number',
  'useDate=false',
  'env=node',
  'outputJsonMethods=true',
  'outputPartialMethods=true',
].join(',');
const protoc = require.resolve('protoc/protoc.cjs');
const r = spawnSync(process.execPath, [
  protoc,
  `--plugin=protoc-gen-ts_proto=${plugin}`,
  `--ts_proto_out=${out}`,
  `--ts_proto_opt=${opts}`,
  '-Iproto',
  'proto/management.proto',
  'proto/signalexchange.proto',
  'proto/flow.proto',
], { stdio: 'inherit' });
if (r.status !== 0) {
  console.error('protoc failed; is `npm ci` complete (packages protoc and ts-proto)?');
  process.exit(r.status ?? 1);
}
console.log(`generated TypeScript from proto/ into ${out}`);
