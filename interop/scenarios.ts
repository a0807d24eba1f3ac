// The interop scenario matrix (issue 14). Each scenario builds its own lab and returns result rows;
// a thrown error fails the scenario's current case.
import { formatKey, generateKeyPair, publicKeyFromPrivate, parseKey } from '../src/crypto/index.js';
import { OfficialClient, type LabClient } from './official.js';
import { ADMIN, InteropLab, browserIn, overlayIp, peerStatus, pings, sleep, tcpConnects, waitConnection, waitUntil, type Binaries, type Kind } from './lab.js';

export interface Row {
  scenario: string;
  case: string;
  ok: boolean;
  /** Measured time for the case (ms), when it has one. */
  ms?: number;
  detail: string;
}

export interface Scenario {
  id: string;
  title: string;
  run(bins: Binaries, rec: Recorder): Promise<void>;
}

/** Collects rows; `check` turns a condition into a row and never throws. */
export class Recorder {
  readonly rows: Row[] = [];
  /** Server and client logs of every lab the scenario built. */
  readonly logs: string[] = [];
  constructor(private readonly scenario: string, private readonly onRow: (r: Row) => void) {}

  add(c: string, ok: boolean, detail = '', ms?: number): boolean {
    const r: Row = { scenario: this.scenario, case: c, ok, detail, ...(ms !== undefined ? { ms } : {}) };
    this.rows.push(r);
    this.onRow(r);
    return ok;
  }

  /** A timed wait: ok when it happened (`ms >= 0`) within `boundMs`, if given. */
  timed(c: string, ms: number, detail = '', boundMs?: number): boolean {
    if (ms < 0) return this.add(c, false, `timed out${detail ? `: ${detail}` : ''}`);
    const late = boundMs !== undefined && ms > boundMs;
    return this.add(boundMs !== undefined ? `${c} (bound ${boundMs / 1000} s)` : c, !late, late ? `over the bound${detail ? `; ${detail}` : ''}` : detail, ms);
  }
}

/** A private key whose public key sorts above (or below) `other` — NetBird's rule for who controls ICE. */
function keyAgainst(other: string, above: boolean): string {
  for (;;) {
    const priv = formatKey(generateKeyPair().privateKey);
    const pub = formatKey(publicKeyFromPrivate(parseKey(priv)));
    if ((pub > other) === above) return priv;
  }
}

async function withLab(serverKind: Kind, bins: Binaries, rec: Recorder, fn: (lab: InteropLab) => Promise<void>, opts: Parameters<typeof InteropLab.create>[2] = {}): Promise<InteropLab | undefined> {
  let lab: InteropLab | undefined;
  try {
    lab = await InteropLab.create(serverKind, bins, opts);
    await fn(lab);
  } catch (e) {
    rec.add('scenario error', false, (e as Error).message.split('\n').slice(0, 3).join(' '));
    rec.logs.push(`--- error\n${(e as Error).stack ?? String(e)}`);
  } finally {
    if (lab) {
      rec.logs.push(lab.logs());
      await lab.cleanup();
    }
  }
  return lab;
}

/** Drops UDP between two public addresses on the lab's internet (the switch), or lifts it. */
async function cutDirect(lab: InteropLab, a: LabClient, b: LabClient, cut: boolean): Promise<void> {
  const pub = (await lab.lab.internet()).ns;
  if (cut) {
    // The internet is a bridge: filter in the bridge family (routers' WAN ports are bridged, not routed).
    await pub.nft([
      'table bridge cut {',
      '  chain forward {',
      '    type filter hook forward priority 0; policy accept;',
      `    ip saddr ${a.nat.publicIp} ip daddr ${b.nat.publicIp} meta l4proto udp drop`,
      `    ip saddr ${b.nat.publicIp} ip daddr ${a.nat.publicIp} meta l4proto udp drop`,
      '  }',
      '}',
    ].join('\n'));
  } else {
    await pub.exec('nft', ['delete', 'table', 'bridge', 'cut'], { check: false });
  }
}

/** NetBird's ICE declares a path dead after 6 s without answers; the relay must carry traffic soon after. */
const RELAY_FALLBACK_BOUND_MS = 15_000;
/** Both sides retry ICE with backoff; a restored path must be found again within this. */
const P2P_RECOVERY_BOUND_MS = 60_000;

/** P2P behind cone NATs, relayed behind symmetric ones, fall back when the direct path is cut, recover. */
async function pairMatrix(lab: InteropLab, rec: Recorder, label: string, a: LabClient, b: LabClient): Promise<void> {
  const t = await waitConnection(a, b, 'P2P', 45_000);
  const ab = await peerStatus(a, b).catch(() => undefined);
  rec.timed(`${label}: P2P behind cone NATs`, t, ab ? `${ab.iceCandidateType.local}/${ab.iceCandidateType.remote}` : '');
  if (t < 0) return;
  const ipb = await overlayIp(b);
  const ipa = await overlayIp(a);
  rec.add(`${label}: ping both ways over P2P`, (await pings(a, ipb)) && (await pings(b, ipa)));
  await cutDirect(lab, a, b, true);
  const tr = await waitConnection(a, b, 'Relayed', 60_000);
  rec.timed(`${label}: direct path cut -> Relayed`, tr, '', RELAY_FALLBACK_BOUND_MS);
  if (tr >= 0) rec.add(`${label}: ping both ways while relayed`, (await pings(a, ipb)) && (await pings(b, ipa)));
  await cutDirect(lab, a, b, false);
  const tp = await waitConnection(a, b, 'P2P', 90_000);
  rec.timed(`${label}: path restored -> P2P`, tp, '', P2P_RECOVERY_BOUND_MS);
}

/** Signs in to our dashboard as the owner, in a browser inside the client's namespace, and reads the peer's row. */
async function dashboardShowsOnline(lab: InteropLab, from: LabClient, name: string, ip: string): Promise<[boolean, string]> {
  const browser = await browserIn(lab, from.nat.host.name);
  try {
    const page = await browser.newPage();
    await page.goto(lab.url);
    await page.getByLabel('E-mail').fill(ADMIN.email);
    await page.getByLabel('Password').fill(ADMIN.password);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('button', { name: 'Sign out' }).waitFor();
    await page.getByRole('link', { name: 'Peers' }).click();
    await page.getByRole('heading', { level: 1, name: 'Peers' }).waitFor();
    const row = page.locator(`tr[data-peer="${name}"]`);
    await row.getByText('Online').waitFor({ timeout: 20_000 });
    const text = (await row.textContent()) ?? '';
    return [text.includes(ip), text.replace(/\s+/g, ' ').trim().slice(0, 120)];
  } catch (err) {
    const page = browser.pages()[0];
    if (page) await page.screenshot({ path: 'artifacts/interop/dashboard-failure.png' }).catch(() => undefined);
    return [false, `${(err as Error).message.split('\n')[0] ?? ''} (${page ? page.url() : 'no page'})`];
  } finally {
    await browser.close();
  }
}

const scenario1: Scenario = {
  id: '1',
  title: 'official client joins our netbird-server',
  async run(bins, rec) {
    await withLab('ours', bins, rec, async (lab) => {
      const off = await lab.addClient('official', 'off1', 'cone');
      const t0 = Date.now();
      await lab.up(off);
      const connected = await waitUntil(async () => (await off.status().catch(() => undefined))?.management.connected === true, 30_000, 250);
      rec.add('netbird up --setup-key', connected, '', Date.now() - t0);
      const st = await off.status();
      rec.add('status: management, signal, relay connected', st.management.connected && st.signal.connected && st.relays.available > 0,
        `mgmt=${st.management.connected} signal=${st.signal.connected} relays=${st.relays.available}/${st.relays.total}`);
      const peers = await lab.api<{ name: string; ip: string; connected: boolean; version: string; dns_label: string; os: string }[]>('GET', '/api/peers');
      const p = peers.find((x) => x.name === 'off1');
      rec.add('REST: peer online with its IP and version', !!p && p.connected && `${p.ip}/16` === st.netbirdIp.replace(/\/\d+$/, '/16') && p.version === st.daemonVersion,
        p ? `connected=${p.connected} ip=${p.ip} version=${p.version} os=${p.os}` : 'peer not listed');
      rec.add('status: FQDN is the account DNS name', !!p && st.fqdn === `${p.dns_label}.netbird.cloud`, `${st.fqdn}`);
      rec.add('our dashboard (Chromium): peer row Online with its IP', ...(await dashboardShowsOnline(lab, off, 'off1', p?.ip ?? '?')));
      const ours = await lab.addClient('ours', 'ours1', 'cone');
      await lab.up(ours);
      const t = await waitConnection(off, ours, '', 45_000);
      rec.timed('status -d: our peer listed Connected', t);
      const detail = await peerStatus(off, ours);
      rec.add('status -d: truthful peer fields (IP, FQDN, handshake, bytes)', !!detail && detail.netbirdIp === (await overlayIp(ours)) && detail.fqdn === 'ours1.netbird.cloud' && detail.lastWireguardHandshake !== '0001-01-01T00:00:00Z' && detail.transferReceived > 0,
        detail ? `${detail.netbirdIp} ${detail.fqdn} ${detail.connectionType} hs=${detail.lastWireguardHandshake} rx=${detail.transferReceived}` : 'missing');
      await off.down();
      const offline = await waitUntil(async () => (await lab.api<{ name: string; connected: boolean }[]>('GET', '/api/peers')).find((x) => x.name === 'off1')?.connected === false, 30_000, 500);
      rec.add('netbird down: REST shows the peer offline', offline);
    });
  },
};

const scenario2: Scenario = {
  id: '2',
  title: 'official client <-> our client (cone: P2P, symmetric: relayed, cut/restore)',
  async run(bins, rec) {
    for (const oursControls of [true, false]) {
      const label = oursControls ? 'ours controls' : 'official controls';
      await withLab('ours', bins, rec, async (lab) => {
        const off = await lab.addClient('official', 'off', 'cone');
        await lab.up(off);
        const offKey = (await off.status()).publicKey;
        const ours = await lab.addClient('ours', 'ours', 'cone', { privateKey: keyAgainst(offKey, oursControls) });
        await lab.up(ours);
        await pairMatrix(lab, rec, label, off, ours);
      });
    }
    await withLab('ours', bins, rec, async (lab) => {
      const off = await lab.addClient('official', 'off', 'symmetric');
      const ours = await lab.addClient('ours', 'ours', 'symmetric');
      await lab.up(off);
      await lab.up(ours);
      const t = await waitConnection(off, ours, 'Relayed', 45_000);
      rec.timed('symmetric NATs: Relayed', t);
      if (t >= 0) rec.add('symmetric NATs: ping both ways', (await pings(off, await overlayIp(ours))) && (await pings(ours, await overlayIp(off))));
    });
  },
};

/** Replaces the account's policies with one rule; returns its id. */
async function onlyPolicy(lab: InteropLab, rule: Record<string, unknown>): Promise<string> {
  for (const p of await lab.api<{ id: string }[]>('GET', '/api/policies')) await lab.api('DELETE', `/api/policies/${p.id}`);
  const created = await lab.api<{ id: string }>('POST', '/api/policies', {
    name: 'interop', enabled: true, description: '',
    rules: [{ name: 'interop', enabled: true, action: 'accept', description: '', ...rule }],
  });
  return created.id;
}

async function groupOf(lab: InteropLab, name: string, peerNames: string[]): Promise<string> {
  const peers = await lab.api<{ id: string; name: string }[]>('GET', '/api/peers');
  const ids = peerNames.map((n) => peers.find((p) => p.name === n)?.id).filter((x): x is string => !!x);
  const g = await lab.api<{ id: string }>('POST', '/api/groups', { name, peers: ids });
  return g.id;
}

/** Policy "only TCP 22 from a to b", enforced, then changed live to all traffic. */
async function policyMatrix(lab: InteropLab, rec: Recorder, a: LabClient, b: LabClient, label: string): Promise<void> {
  const ga = await groupOf(lab, `${label}-src`, [a.name]);
  const gb = await groupOf(lab, `${label}-dst`, [b.name]);
  const ipb = await overlayIp(b);
  const ipa = await overlayIp(a);
  // Listeners on b: TCP 22 and 80.
  for (const port of [22, 80]) b.nat.host.spawn('socat', [`TCP-LISTEN:${port},fork,reuseaddr`, 'EXEC:/bin/true']);
  const id = await onlyPolicy(lab, { sources: [ga], destinations: [gb], bidirectional: false, protocol: 'tcp', ports: ['22'] });
  // Servers push the change asynchronously: wait for its effect (TCP 80 closing), then check the rest.
  const t0 = Date.now();
  const closed = await waitUntil(async () => !(await tcpConnects(a, ipb, 80, 2000)), 30_000, 250);
  rec.add(`${label}: policy "only TCP 22 a->b" takes effect: TCP 80 a->b refused`, closed, '', Date.now() - t0);
  rec.add(`${label}: TCP 22 a->b allowed`, await waitUntil(() => tcpConnects(a, ipb, 22), 10_000, 500));
  rec.add(`${label}: ping a->b refused`, !(await pings(a, ipb, 3000)));
  rec.add(`${label}: TCP 22 b->a refused (one-way)`, !(await tcpConnects(b, ipa, 22)));
  await lab.api('PUT', `/api/policies/${id}`, {
    name: 'interop', enabled: true, description: '',
    rules: [{ name: 'interop', enabled: true, action: 'accept', description: '', sources: [ga], destinations: [gb], bidirectional: true, protocol: 'all' }],
  });
  const t1 = Date.now();
  const opened = await waitUntil(async () => (await tcpConnects(a, ipb, 80)) && (await pings(a, ipb, 2000)), 30_000, 500);
  rec.add(`${label}: policy changed live to all traffic: TCP 80 and ping pass`, opened, '', Date.now() - t1);
}

/** The official client resolves peer names through its own DNS resolver. */
async function dnsMatrix(rec: Recorder, from: LabClient, to: LabClient, label: string): Promise<void> {
  const ip = await overlayIp(to);
  const name = (await to.status()).fqdn;
  let got = '';
  const ok = await waitUntil(async () => {
    const r = await from.exec('getent', ['hosts', name], { check: false });
    got = r.stdout.trim();
    return got.split(/\s+/)[0] === ip;
  }, 30_000, 500);
  rec.add(`${label}: ${from.kind} client resolves ${name}`, ok, got || 'no answer');
  if (ok) rec.add(`${label}: ping by name`, (await from.exec('ping', ['-c1', '-W2', name], { check: false })).code === 0);
}

const scenario3: Scenario = {
  id: '3',
  title: 'two official clients through our server (P2P, relayed, policies, DNS)',
  async run(bins, rec) {
    await withLab('ours', bins, rec, async (lab) => {
      const a = await lab.addClient('official', 'offa', 'cone');
      const b = await lab.addClient('official', 'offb', 'cone');
      await lab.up(a);
      await lab.up(b);
      const t = await waitConnection(a, b, 'P2P', 45_000);
      rec.timed('cone NATs: P2P', t);
      await dnsMatrix(rec, a, b, 'DNS');
      await policyMatrix(lab, rec, a, b, 'policy');
    });
    await withLab('ours', bins, rec, async (lab) => {
      const a = await lab.addClient('official', 'offa', 'symmetric');
      const b = await lab.addClient('official', 'offb', 'symmetric');
      await lab.up(a);
      await lab.up(b);
      const t = await waitConnection(a, b, 'Relayed', 45_000);
      rec.timed('symmetric NATs: Relayed', t);
      if (t >= 0) rec.add('symmetric NATs: ping', await pings(a, await overlayIp(b)));
    });
  },
};

const scenario6: Scenario = {
  id: '6',
  title: 'our client joins the official combined server',
  async run(bins, rec) {
    await withLab('official', bins, rec, async (lab) => {
      const ours = await lab.addClient('ours', 'ours', 'cone');
      const t0 = Date.now();
      await lab.up(ours);
      const st = await ours.status();
      rec.add('netbird up --setup-key: management, signal, relay connected', st.management.connected && st.signal.connected && st.relays.available > 0,
        `mgmt=${st.management.connected} signal=${st.signal.connected} relays=${st.relays.available}/${st.relays.total} ip=${st.netbirdIp}`, Date.now() - t0);
      const peers = await lab.api<{ name: string; connected: boolean; ip: string }[]>('GET', '/api/peers');
      rec.add('official REST: our peer online with our IP', peers.some((p) => p.name === 'ours' && p.connected && p.ip === st.netbirdIp.split('/')[0]));
      const off = await lab.addClient('official', 'off', 'cone');
      await lab.up(off);
      const t = await waitConnection(ours, off, 'P2P', 45_000);
      rec.timed('P2P with an official client', t);
      if (t >= 0) rec.add('ping both ways', (await pings(ours, await overlayIp(off))) && (await pings(off, await overlayIp(ours))));
      await dnsMatrix(rec, ours, off, 'DNS');
      await dnsMatrix(rec, off, ours, 'DNS');
      await policyMatrix(lab, rec, ours, off, 'policy ours->official');
      await policyMatrix(lab, rec, off, ours, 'policy official->ours');
    });
  },
};

const scenario5: Scenario = {
  id: '5',
  title: 'SSO: official netbird up without a setup key, device flow with our embedded IdP (HTTP, TLS)',
  async run(bins, rec) {
    for (const tls of [false, true]) {
      const label = tls ? 'TLS' : 'HTTP';
      await withLab('ours', bins, rec, async (lab) => {
        const off = (await lab.addClient('official', 'sso', 'cone')) as OfficialClient;
        const t0 = Date.now();
        const flow = off.upSso(lab.url);
        const url = await Promise.race([
          flow.url,
          flow.done.then((r) => Promise.reject(new Error(`netbird up exited (${r.code}) before printing a login URL: ${r.output}`))),
          new Promise<never>((_r, reject) => setTimeout(() => reject(new Error('no login URL within 60 s')), 60_000)),
        ]);
        rec.add(`${label}: netbird up prints the device login URL`, url.startsWith(`${lab.url}/oauth2/`), url);
        const browser = await browserIn(lab, off.nat.host.name);
        try {
          const page = await browser.newPage();
          await page.goto(url);
          const proto = await page.evaluate<string>("performance.getEntriesByType('navigation')[0].nextHopProtocol");
          await page.getByLabel('E-mail').fill(ADMIN.email);
          await page.getByLabel('Password').fill(ADMIN.password);
          await page.getByRole('button', { name: 'Approve' }).click();
          await page.waitForLoadState();
          rec.add(`${label}: the user approves the code in a browser`, true, `browser spoke ${proto}`);
          if (tls) {
            // Browsers negotiate HTTP/2 over TLS: the REST API and the IdP must answer it too.
            const calls = await page.evaluate(async (token) => {
              const out: string[] = [];
              for (const [path, auth] of [['/api/users/current', true], ['/oauth2/.well-known/openid-configuration', false], ['/api/instance', false]] as const) {
                const r = await fetch(path, auth ? { headers: { Authorization: `Token ${token}` } } : {});
                out.push(`${path} ${r.status}`);
              }
              return out;
            }, lab.token);
            const h2 = (await page.evaluate<string[]>("performance.getEntriesByType('resource').map((e) => e.nextHopProtocol)")).every((p) => p === 'h2');
            rec.add('TLS: browser over HTTP/2: /api and /oauth2 answer', calls.every((c) => c.endsWith(' 200')) && proto === 'h2' && h2, calls.join(', '));
          }
        } finally {
          await browser.close();
        }
        const done = await flow.done;
        rec.add(`${label}: netbird up completes`, done.code === 0, done.code === 0 ? '' : done.output.slice(-300), Date.now() - t0);
        const st = await off.status();
        const peers = await lab.api<{ name: string; connected: boolean; user_id: string }[]>('GET', '/api/peers');
        const me = await lab.api<{ id: string }>('GET', '/api/users/current');
        const p = peers.find((x) => x.name === 'sso');
        rec.add(`${label}: peer registered to the user, connected`, st.management.connected && !!p && p.connected && p.user_id === me.id, p ? `user_id=${p.user_id}` : 'not listed');
        const relayUp = await waitUntil(async () => (await off.status()).relays.details.some((r) => r.uri.startsWith(tls ? 'rels://' : 'rel://') && r.available), 20_000, 500);
        rec.add(`${label}: signal and relay (${tls ? 'rels' : 'rel'}://) connected`, st.signal.connected && relayUp, (await off.status()).relays.details.map((r) => `${r.uri}=${r.available}`).join(' '));
      }, { tls });
    }
  },
};

interface FlowEvent {
  reporter_id: string;
  protocol: number;
  direction: string;
  source: { address: string };
  destination: { address: string };
  tx_bytes: number;
  rx_bytes: number;
  num_of_drops: number;
}

const scenario7: Scenario = {
  id: '7',
  title: 'traffic events from the official client reach our collector',
  async run(bins, rec) {
    await withLab('ours', bins, rec, async (lab) => {
      // With userspace WireGuard (no kernel module here) the official Linux client records flows only in
      // its userspace firewall; with the nftables one it relies on kernel conntrack of a kernel interface.
      const off = await lab.addClient('official', 'offflow', 'cone', { env: { NB_FORCE_USERSPACE_FIREWALL: 'true' } });
      const ours = await lab.addClient('ours', 'oursflow', 'cone');
      await lab.up(off);
      await lab.up(ours);
      rec.timed('peers connected', await waitConnection(off, ours, '', 45_000));
      const [account] = await lab.api<{ id: string; settings: { extra?: Record<string, unknown> } }[]>('GET', '/api/accounts');
      await lab.api('PUT', `/api/accounts/${account!.id}`, {
        settings: { ...account!.settings, extra: { ...(account!.settings.extra ?? {}), network_traffic_logs_enabled: true, network_traffic_packet_counter_enabled: true } },
      });
      const peers = await lab.api<{ id: string; name: string }[]>('GET', '/api/peers');
      const offId = peers.find((p) => p.name === 'offflow')!.id;
      const ipOff = await overlayIp(off);
      const ipOurs = await overlayIp(ours);
      ours.nat.host.spawn('socat', ['TCP-LISTEN:8080,reuseaddr,fork', 'SYSTEM:head -c 20000 /dev/zero']);
      const t0 = Date.now();
      // Until the official client has its FlowConfig, connections are not reported: repeat the transfer.
      let events: FlowEvent[] = [];
      const found = await waitUntil(async () => {
        await off.exec('socat', ['-T3', '-u', `TCP:${ipOurs}:8080,connect-timeout=3`, 'STDOUT'], { check: false, timeoutMs: 8000 });
        await off.exec('ping', ['-c1', '-W1', ipOurs], { check: false });
        events = (await lab.api<{ data: FlowEvent[] }>('GET', '/api/events/network-traffic?page_size=500')).data;
        return events.some((e) => e.reporter_id === offId && e.protocol === 6 && e.destination.address === `${ipOurs}:8080`);
      }, 120_000, 2000);
      rec.add('official client reports its TCP connection (egress, right endpoints)', found, `${events.filter((e) => e.reporter_id === offId).length} events from it`, Date.now() - t0);
      const tcp = events.find((e) => e.reporter_id === offId && e.protocol === 6 && e.destination.address === `${ipOurs}:8080`);
      if (tcp) rec.add('event fields: direction, source address, byte counters', tcp.direction === 'EGRESS' && tcp.source.address.split(':')[0] === ipOff && tcp.rx_bytes + tcp.tx_bytes > 0, JSON.stringify(tcp).slice(0, 200));
      rec.add('official client reports ICMP', events.some((e) => e.reporter_id === offId && e.protocol === 1));
      if (!found) rec.logs.push(`--- events\n${JSON.stringify(events, null, 1)}`);
    }, { args: ['--flow-interval', '5'] });
  },
};

const LAN_HOST = '10.99.0.10';

/** A LAN behind `router` (10.99.0.0/24) with one host answering ping and TCP 80. */
async function lanBehind(lab: InteropLab, router: LabClient): Promise<void> {
  const lan = await lab.lab.ns(`lan-${router.name}`);
  await lab.lab.link(router.nat.host, 'lan0', ['10.99.0.1/24'], lan, 'eth0', [`${LAN_HOST}/24`]);
  lan.spawn('socat', ['TCP-LISTEN:80,fork,reuseaddr', 'EXEC:/bin/true']);
}

async function peerId(lab: InteropLab, name: string): Promise<string> {
  const p = (await lab.api<{ id: string; name: string }[]>('GET', '/api/peers')).find((x) => x.name === name);
  if (!p) throw new Error(`peer ${name} is not registered`);
  return p.id;
}

/** Whether `c` reaches the LAN host: [ping, TCP 80], each within the wait (positive cases wait for propagation). */
async function reachLan(c: LabClient, expectPing: boolean, expectTcp: boolean): Promise<{ ping: boolean; tcp: boolean }> {
  const ping = expectPing ? await pings(c, LAN_HOST, 30_000) : await pings(c, LAN_HOST, 3000);
  const tcp = expectTcp ? await waitUntil(() => tcpConnects(c, LAN_HOST, 80), 30_000, 500) : await tcpConnects(c, LAN_HOST, 80);
  return { ping, tcp };
}

function lanCase(rec: Recorder, label: string, got: { ping: boolean; tcp: boolean }, want: { ping: boolean; tcp: boolean }): void {
  rec.add(`${label}: ping ${want.ping ? 'allowed' : 'denied'}, TCP 80 ${want.tcp ? 'allowed' : 'denied'}`, got.ping === want.ping && got.tcp === want.tcp, `ping=${got.ping} tcp=${got.tcp}`);
}

/** Creates (no id) or replaces the LAN route 10.99.0.0/24 through `routerId` for `groups`, guarded by `acgs`. */
async function lanRoute(lab: InteropLab, routerId: string, groups: string[], acgs: string[], id?: string): Promise<string> {
  const body = {
    description: 'lan', network_id: 'lan', enabled: true, peer: routerId, network: '10.99.0.0/24', metric: 9999, masquerade: true,
    groups, keep_route: true, access_control_groups: acgs,
  };
  const r = await lab.api<{ id: string }>(id ? 'PUT' : 'POST', id ? `/api/routes/${id}` : '/api/routes', body);
  return r.id;
}

/** Adds a one-way "TCP 80 from `sources` to `destinations`" policy. */
async function tcp80Policy(lab: InteropLab, name: string, sources: string[], destinations: string[]): Promise<void> {
  await lab.api('POST', '/api/policies', {
    name, enabled: true, description: '',
    rules: [{ name, enabled: true, action: 'accept', bidirectional: false, protocol: 'tcp', ports: ['80'], sources, destinations, description: '' }],
  });
}

const scenario4: Scenario = {
  id: '4',
  title: 'network routes: official and our routing peers, route access control (groups, resources, policies)',
  async run(bins, rec) {
    // An official routing peer; clients: ours and official.
    await withLab('ours', bins, rec, async (lab) => {
      const router = await lab.addClient('official', 'offrouter', 'cone');
      const ours = await lab.addClient('ours', 'oursclient', 'cone');
      const off = await lab.addClient('official', 'offclient', 'cone');
      await lanBehind(lab, router);
      for (const c of [router, ours, off]) await lab.up(c);
      await waitConnection(ours, router, '', 45_000);
      await waitConnection(off, router, '', 45_000);
      const routerId = await peerId(lab, 'offrouter');
      const clients = await groupOf(lab, 'clients', ['oursclient', 'offclient']);
      // 1. A route without access-control groups: everyone it is distributed to gets through.
      const routeId = await lanRoute(lab, routerId, [clients], []);
      lanCase(rec, 'route, official router, our client', await reachLan(ours, true, true), { ping: true, tcp: true });
      lanCase(rec, 'route, official router, official client', await reachLan(off, true, true), { ping: true, tcp: true });
      // 2. Access-control group: only a policy to that group opens it, only for its sources and ports.
      const acg = await groupOf(lab, 'lan-acl', []);
      const oursOnly = await groupOf(lab, 'ours-only', ['oursclient']);
      await lanRoute(lab, routerId, [clients], [acg], routeId);
      await tcp80Policy(lab, 'lan-web', [oursOnly], [acg]);
      await sleep(3000);
      lanCase(rec, 'route ACL "TCP 80 from ours-only", our client', await reachLan(ours, false, true), { ping: false, tcp: true });
      lanCase(rec, 'route ACL "TCP 80 from ours-only", official client', await reachLan(off, false, false), { ping: false, tcp: false });
      await lab.api('DELETE', `/api/routes/${routeId}`);
      // 3. Networks: a resource in a group, a router, a policy to the group; no policy between the peers.
      for (const p of await lab.api<{ id: string }[]>('GET', '/api/policies')) await lab.api('DELETE', `/api/policies/${p.id}`);
      const resGroup = await groupOf(lab, 'lan-resource', []);
      const offOnly = await groupOf(lab, 'official-only', ['offclient']);
      const net = await lab.api<{ id: string }>('POST', '/api/networks', { name: 'office', description: '' });
      await lab.api('POST', `/api/networks/${net.id}/resources`, { name: 'lan-host', description: '', address: `${LAN_HOST}/32`, enabled: true, groups: [resGroup] });
      await lab.api('POST', `/api/networks/${net.id}/routers`, { peer: routerId, peer_groups: [], metric: 9999, masquerade: true, enabled: true });
      await tcp80Policy(lab, 'res-web', [offOnly], [resGroup]);
      lanCase(rec, 'network resource "TCP 80 from official-only", official client', await reachLan(off, false, true), { ping: false, tcp: true });
      lanCase(rec, 'network resource "TCP 80 from official-only", our client', await reachLan(ours, false, false), { ping: false, tcp: false });
    });
    // Our routing peer, an official client.
    await withLab('ours', bins, rec, async (lab) => {
      const router = await lab.addClient('ours', 'oursrouter', 'cone');
      const off = await lab.addClient('official', 'offclient', 'cone');
      await lanBehind(lab, router);
      for (const c of [router, off]) await lab.up(c);
      await waitConnection(off, router, '', 45_000);
      const routerId = await peerId(lab, 'oursrouter');
      const clients = await groupOf(lab, 'clients', ['offclient']);
      const routeId = await lanRoute(lab, routerId, [clients], []);
      lanCase(rec, 'route, our router, official client', await reachLan(off, true, true), { ping: true, tcp: true });
      const acg = await groupOf(lab, 'lan-acl', []);
      await lanRoute(lab, routerId, [clients], [acg], routeId);
      await tcp80Policy(lab, 'lan-web', [clients], [acg]);
      await sleep(3000);
      lanCase(rec, 'route ACL "TCP 80 from clients", our router, official client', await reachLan(off, false, true), { ping: false, tcp: true });
    });
  },
};

export const SCENARIOS: Scenario[] = [scenario1, scenario2, scenario3, scenario4, scenario5, scenario6, scenario7];
