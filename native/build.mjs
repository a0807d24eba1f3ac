#!/usr/bin/env node
// Builds the native addon with node-gyp WITHOUT downloading Node headers:
// uses the headers installed next to the running node (<prefix>/include/node),
// which Debian/NodeSource/official tarballs all ship. Run from the repo root:
//   node native/build.mjs        (what `npm install` runs)
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const prefix = resolve(dirname(process.execPath), '..');
const args = ['rebuild'];
if (existsSync(join(prefix, 'include', 'node', 'node_api.h'))) args.push(`--nodedir=${prefix}`);
else console.error(`native/build.mjs: no Node headers under ${prefix}/include/node; node-gyp may try to download them`);
const require = createRequire(import.meta.url);
const gyp = require.resolve('node-gyp/bin/node-gyp.js', { paths: [root] });
const r = spawnSync(process.execPath, [gyp, ...args], { cwd: root, stdio: 'inherit' });
process.exit(r.status ?? 1);
