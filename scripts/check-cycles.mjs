#!/usr/bin/env node
// Fails when the relative imports under a source folder (default src/) form a cycle.
// Usage: node scripts/check-cycles.mjs [dir ...] [--runtime-only]
//
// Every static `import … from`, `export … from`, side-effect `import '…'` and dynamic `import('…')`
// with a relative specifier is an edge; `.js` specifiers resolve to the `.ts` file (or the folder's
// index.ts). Type-only imports count too (a cycle of types still ties the modules together);
// `--runtime-only` ignores them. Cycles are found as strongly connected components (Tarjan), and one
// concrete cycle of each component is printed.
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

const args = process.argv.slice(2);
const runtimeOnly = args.includes('--runtime-only');
const roots = args.filter((a) => !a.startsWith('--'));
if (roots.length === 0) roots.push('src');

function walk(dir) {
  const out = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...walk(p));
    else if (/\.(ts|tsx|mts)$/.test(name) && !name.endsWith('.d.ts')) out.push(resolve(p));
  }
  return out;
}

function resolveSpecifier(from, spec) {
  const base = resolve(dirname(from), spec);
  const stem = base.replace(/\.(js|mjs|jsx)$/, '');
  for (const c of [base, `${stem}.ts`, `${stem}.tsx`, `${stem}.mts`, join(base, 'index.ts'), join(stem, 'index.ts')]) {
    if (existsSync(c) && statSync(c).isFile()) return c;
  }
  return undefined;
}

/** True when every binding of an import/export clause is type-only. */
function typeOnly(clause) {
  if (/^\s*(import|export)\s+type\b/.test(clause)) return true;
  const braces = clause.match(/\{([^}]*)\}/);
  if (!braces) return false;
  // A default or namespace binding next to the braces is a value import.
  if (/^\s*import\s+[\w$]+\s*,/.test(clause) || /\*\s+as\s+/.test(clause)) return false;
  const names = braces[1].split(',').map((s) => s.trim()).filter(Boolean);
  return names.length > 0 && names.every((n) => n.startsWith('type '));
}

// Statements start a line (the code is formatted); comment lines start with // or *, so they never match.
const STATIC = /^[ \t]*((?:import|export)\b[^;'"`]*?\bfrom\s*)(['"])(\.{1,2}\/[^'"]+)\2/gm;
const BARE = /^[ \t]*import\s*(['"])(\.{1,2}\/[^'"]+)\1/gm;
const DYNAMIC = /\bimport\(\s*(['"])(\.{1,2}\/[^'"]+)\1\s*\)/g;

const files = roots.flatMap((r) => walk(r));
const graph = new Map();
const problems = [];
for (const file of files) {
  const text = readFileSync(file, 'utf8');
  const edges = new Map();
  const add = (spec, isType) => {
    const target = resolveSpecifier(file, spec);
    if (!target) {
      problems.push(`${relative('.', file)}: cannot resolve ${spec}`);
      return;
    }
    if (isType && runtimeOnly) return;
    // A file imported both ways keeps its value edge.
    edges.set(target, (edges.get(target) ?? true) && isType);
  };
  for (const m of text.matchAll(STATIC)) add(m[3], typeOnly(m[1]));
  for (const m of text.matchAll(BARE)) add(m[2], false);
  for (const m of text.matchAll(DYNAMIC)) add(m[2], false);
  graph.set(file, edges);
}

// Tarjan's strongly connected components.
let counter = 0;
const index = new Map();
const low = new Map();
const stack = [];
const onStack = new Set();
const components = [];
function connect(v) {
  index.set(v, counter);
  low.set(v, counter);
  counter++;
  stack.push(v);
  onStack.add(v);
  for (const w of graph.get(v)?.keys() ?? []) {
    if (!graph.has(w)) continue;
    if (!index.has(w)) {
      connect(w);
      low.set(v, Math.min(low.get(v), low.get(w)));
    } else if (onStack.has(w)) low.set(v, Math.min(low.get(v), index.get(w)));
  }
  if (low.get(v) === index.get(v)) {
    const comp = [];
    let w;
    do {
      w = stack.pop();
      onStack.delete(w);
      comp.push(w);
    } while (w !== v);
    if (comp.length > 1 || graph.get(v)?.has(v)) components.push(comp);
  }
}
for (const v of graph.keys()) if (!index.has(v)) connect(v);

/** One concrete cycle through `start` inside `comp` (breadth-first, so it is a shortest one). */
function cycleThrough(start, comp) {
  const inComp = new Set(comp);
  const prev = new Map([[start, undefined]]);
  const queue = [start];
  while (queue.length > 0) {
    const v = queue.shift();
    for (const w of graph.get(v).keys()) {
      if (w === start) {
        const path = [v];
        for (let p = prev.get(v); p !== undefined; p = prev.get(p)) path.unshift(p);
        return [...path, start];
      }
      if (inComp.has(w) && !prev.has(w)) {
        prev.set(w, v);
        queue.push(w);
      }
    }
  }
  return [start];
}

for (const p of problems) console.error(p);
if (components.length === 0) {
  console.log(`no import cycles in ${roots.join(', ')} (${files.length} files${runtimeOnly ? ', type-only imports ignored' : ''})`);
  process.exit(problems.length > 0 ? 1 : 0);
}
for (const comp of components) {
  const start = comp.sort()[0];
  const cycle = cycleThrough(start, comp);
  const hops = cycle.slice(1).map((f, i) => `${relative('.', f)}${graph.get(cycle[i]).get(f) ? ' (type)' : ''}`);
  console.error(`import cycle (${comp.length} files): ${relative('.', start)} -> ${hops.join(' -> ')}`);
}
console.error(`${components.length} import cycle(s); move the shared declarations into a module both sides import`);
process.exit(1);
