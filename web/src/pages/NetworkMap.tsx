import { type ReactNode, useEffect, useMemo, useState } from 'react';
import type { GroupMinimum, Peer, Policy, RuleResource } from '../api.js';
import { Empty, LoadError, PageHeader, StatusDot, ago, dnsName, useDnsDomain, useResource } from '../ui.js';
import { peerState } from './Peers.js';
import { portsText } from './Policies.js';

interface Edge {
  a: string;
  b: string;
  /** a -> b only (false: both ways). */
  oneWay: boolean;
  drop: boolean;
  labels: string[];
}

const MAX_EDGES = 600;

/** Peer pairs that some enabled rule connects (sources x destinations), merged per pair. */
export function policyEdges(peers: Peer[], policies: Policy[]): Edge[] {
  const byGroup = new Map<string, string[]>();
  for (const p of peers) for (const g of p.groups) byGroup.set(g.id, [...(byGroup.get(g.id) ?? []), p.id]);
  const edges = new Map<string, Edge>();
  for (const pol of policies) {
    if (!pol.enabled) continue;
    for (const r of pol.rules) {
      if (!r.enabled) continue;
      // A peer resource is that peer; a network resource is no peer (no edge between peers).
      const side = (groups: GroupMinimum[], res: RuleResource | undefined): Set<string> =>
        res ? new Set(res.type === 'peer' ? [res.id] : []) : new Set(groups.flatMap((g) => byGroup.get(g.id) ?? []));
      const src = side(r.sources, r.sourceResource);
      const dst = side(r.destinations, r.destinationResource);
      for (const s of src) {
        for (const d of dst) {
          if (s === d) continue;
          const [a, b] = s < d ? [s, d] : [d, s];
          const key = `${a}|${b}`;
          let e = edges.get(key);
          if (!e) {
            if (edges.size >= MAX_EDGES) continue;
            e = { a: s, b: d, oneWay: !r.bidirectional, drop: r.action === 'drop', labels: [] };
            edges.set(key, e);
          } else if (r.bidirectional || e.a !== s) {
            e.oneWay = false;
          }
          const label = `${pol.name}: ${portsText(r)}`;
          if (!e.labels.includes(label)) e.labels.push(label);
        }
      }
    }
  }
  return [...edges.values()];
}

/** Drawing sizes: a wide canvas, or a narrow one on phones so labels stay readable. */
function useCanvas(): { W: number; H: number } {
  const query = '(max-width: 760px)';
  const [narrow, setNarrow] = useState(() => window.matchMedia(query).matches);
  useEffect(() => {
    const m = window.matchMedia(query);
    const on = (): void => setNarrow(m.matches);
    m.addEventListener('change', on);
    return () => m.removeEventListener('change', on);
  }, []);
  return narrow ? { W: 440, H: 520 } : { W: 900, H: 620 };
}

function layout(peers: Peer[], W: number, H: number): Map<string, { x: number; y: number }> {
  // Members of a group sit next to each other on the ring, so rule bundles stay short.
  const sorted = [...peers].sort((p, q) => {
    const gp = p.groups.filter((g) => g.name !== 'All').map((g) => g.name).sort()[0] ?? '~';
    const gq = q.groups.filter((g) => g.name !== 'All').map((g) => g.name).sort()[0] ?? '~';
    return gp === gq ? p.name.localeCompare(q.name) : gp.localeCompare(gq);
  });
  const pos = new Map<string, { x: number; y: number }>();
  const n = sorted.length;
  const r = Math.min(W, H) / 2 - 75;
  const stretch = W > H ? 1.45 : 1;
  sorted.forEach((p, i) => {
    if (n === 1) pos.set(p.id, { x: W / 2, y: H / 2 });
    else {
      const t = (2 * Math.PI * i) / n - Math.PI / 2;
      pos.set(p.id, { x: W / 2 + r * Math.cos(t) * stretch, y: H / 2 + r * Math.sin(t) });
    }
  });
  return pos;
}

const LINUX = /linux|debian|ubuntu|fedora|centos|rhel|red hat|arch|alpine|suse|mint|rocky|alma|nixos|raspbian/;

function osInitial(os: string): string {
  const o = os.toLowerCase();
  if (o.includes('darwin') || o.includes('mac')) return 'M';
  if (o.includes('windows')) return 'W';
  if (o.includes('android')) return 'A';
  if (o.includes('ios')) return 'i';
  if (o.includes('freebsd')) return 'B';
  if (LINUX.test(o)) return 'L';
  return '?';
}

export function NetworkMapPage(): ReactNode {
  const peers = useResource<Peer[]>('/api/peers', 5000);
  const policies = useResource<Policy[]>('/api/policies', 15_000);
  const [selected, setSelected] = useState<string | undefined>(undefined);
  const domain = useDnsDomain();
  const list = peers.data ?? [];
  const edges = useMemo(() => policyEdges(list, policies.data ?? []), [list, policies.data]);
  const { W, H } = useCanvas();
  // Crowded rings get smaller nodes so neighbours do not overlap.
  const nodeScale = list.length > 24 ? 0.6 : list.length > 12 ? 0.8 : 1;
  const pos = useMemo(() => layout(list, W, H), [list, W, H]);
  const byId = new Map(list.map((p) => [p.id, p] as const));
  const sel = selected ? byId.get(selected) : undefined;
  const selEdges = sel ? edges.filter((e) => e.a === sel.id || e.b === sel.id) : [];
  const online = list.filter((p) => p.connected).length;

  return (
    <section aria-labelledby="page-title">
      <PageHeader title="Network map">
        <p>
          Peers and the access policies between them. {online} of {list.length} peers online, {edges.length} allowed connection{edges.length === 1 ? '' : 's'}.
        </p>
      </PageHeader>
      <LoadError error={peers.error ?? policies.error} />
      {peers.data && list.length === 0 && <Empty title="No peers to draw yet" />}
      {list.length > 0 && (
        <div className="map-layout">
          <figure className="map card">
            <svg viewBox={`0 0 ${W} ${H}`} role="group" aria-label="Network graph: peers and policy connections" className="graph">
              <defs>
                <radialGradient id="bg" cx="50%" cy="45%" r="70%">
                  <stop offset="0%" stopColor="#1d2b4a" />
                  <stop offset="100%" stopColor="#0f172a" />
                </radialGradient>
                <marker id="arrow" viewBox="0 0 10 10" refX="34" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse">
                  <path d="M0,0 L10,5 L0,10 z" fill="#94a3b8" />
                </marker>
                <filter id="glow" x="-50%" y="-50%" width="200%" height="200%">
                  <feGaussianBlur stdDeviation="5" result="b" />
                  <feMerge>
                    <feMergeNode in="b" />
                    <feMergeNode in="SourceGraphic" />
                  </feMerge>
                </filter>
              </defs>
              <rect width={W} height={H} rx="16" fill="url(#bg)" />
              <g className={`edges ${edges.length > 30 ? 'dense' : ''}`}>
                {edges.map((e) => {
                  const a = pos.get(e.a)!;
                  const b = pos.get(e.b)!;
                  const pa = byId.get(e.a)!;
                  const pb = byId.get(e.b)!;
                  const live = pa.connected && pb.connected;
                  const dim = sel !== undefined && e.a !== sel.id && e.b !== sel.id;
                  // A gentle curve towards the centre keeps parallel bundles readable.
                  const mx = (a.x + b.x) / 2 + (W / 2 - (a.x + b.x) / 2) * 0.25;
                  const my = (a.y + b.y) / 2 + (H / 2 - (a.y + b.y) / 2) * 0.25;
                  return (
                    <path
                      key={`${e.a}|${e.b}`}
                      d={`M${a.x},${a.y} Q${mx},${my} ${b.x},${b.y}`}
                      className={`edge ${live ? 'live' : 'idle'} ${e.drop ? 'drop' : ''} ${dim ? 'dim' : ''} ${sel && !dim ? 'hot' : ''}`}
                      markerEnd={e.oneWay ? 'url(#arrow)' : undefined}
                    >
                      <title>{`${pa.name} ${e.oneWay ? '→' : '↔'} ${pb.name}\n${e.labels.join('\n')}`}</title>
                    </path>
                  );
                })}
              </g>
              <g className="nodes">
                {list.map((p) => {
                  const { x, y } = pos.get(p.id)!;
                  const st = peerState(p);
                  const isSel = p.id === selected;
                  return (
                    <g
                      key={p.id}
                      className={`node node-${st.state} ${isSel ? 'selected' : ''}`}
                      transform={`translate(${x},${y}) scale(${nodeScale})`}
                      tabIndex={0}
                      role="button"
                      aria-pressed={isSel}
                      aria-label={`${p.name}, ${st.label}, ${p.ip}`}
                      data-peer={p.name}
                      onClick={() => setSelected(isSel ? undefined : p.id)}
                      onKeyDown={(e) => {
                        if (e.key === 'Enter' || e.key === ' ') {
                          e.preventDefault();
                          setSelected(isSel ? undefined : p.id);
                        }
                      }}
                    >
                      {p.connected && <circle r="30" className="halo" filter="url(#glow)" />}
                      <circle r="24" className="disc" />
                      <text className="os" dy="6" textAnchor="middle" aria-hidden="true">
                        {osInitial(p.os)}
                      </text>
                      <text className="label" y="46" textAnchor="middle">
                        {p.name}
                      </text>
                      {list.length <= 16 && (
                        <text className="sublabel" y="63" textAnchor="middle">
                          {p.ip}
                        </text>
                      )}
                    </g>
                  );
                })}
              </g>
            </svg>
            <figcaption className="legend">
              <span>
                <span className="swatch online" /> online
              </span>
              <span>
                <span className="swatch offline" /> offline
              </span>
              <span>
                <span className="swatch warn" /> needs attention
              </span>
              <span>
                <span className="line live" /> allowed, both ends online
              </span>
              <span>
                <span className="line idle" /> allowed, an end offline
              </span>
              <span>
                <span className="line drop" /> dropped
              </span>
            </figcaption>
          </figure>
          <aside className="card map-side" aria-live="polite">
            {sel ? (
              <>
                <h2>{sel.name}</h2>
                <StatusDot state={peerState(sel).state} label={peerState(sel).label} />
                <dl className="facts">
                  <dt>Overlay IP</dt>
                  <dd className="mono">{sel.ip}</dd>
                  <dt>DNS name</dt>
                  <dd className="mono">{dnsName(sel.dns_label, domain)}</dd>
                  <dt>OS</dt>
                  <dd>{sel.os}</dd>
                  <dt>Last seen</dt>
                  <dd>{sel.connected ? 'now' : ago(sel.last_seen)}</dd>
                </dl>
                <h3>Can talk to</h3>
                {selEdges.length === 0 ? (
                  <p className="muted">No policy lets this peer reach another.</p>
                ) : (
                  <ul className="conn-list">
                    {selEdges.map((e) => {
                      const other = byId.get(e.a === sel.id ? e.b : e.a)!;
                      const dir = !e.oneWay ? '↔' : e.a === sel.id ? '→' : '←';
                      return (
                        <li key={other.id}>
                          <strong>
                            {dir} {other.name}
                          </strong>
                          <span className="muted block">{e.labels.join('; ')}</span>
                        </li>
                      );
                    })}
                  </ul>
                )}
              </>
            ) : (
              <>
                <h2>Connections</h2>
                <p className="muted">Select a peer to see what it can reach.</p>
                <ul className="conn-list">
                  {edges.slice(0, 12).map((e) => (
                    <li key={`${e.a}|${e.b}`}>
                      {byId.get(e.a)!.name} {e.oneWay ? '→' : '↔'} {byId.get(e.b)!.name}
                    </li>
                  ))}
                  {edges.length > 12 && <li className="muted">and {edges.length - 12} more; select a peer for its own</li>}
                </ul>
              </>
            )}
          </aside>
        </div>
      )}
    </section>
  );
}
