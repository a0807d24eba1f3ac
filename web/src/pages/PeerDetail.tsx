import { type FormEvent, type ReactNode, useEffect, useState } from 'react';
import { type Group, type Peer, api } from '../api.js';
import { DetailPending, ConfirmButton, Field, FormError, GroupPicker, LoadError, PageHeader, StatusDot, SubmitRow, Switch, ago, dnsName, errorFor, fullTime, useDnsDomain, useResource, useSubmit } from '../ui.js';
import { Link, navigate } from '../router.js';
import { peerBody, peerState } from './Peers.js';

interface AccessiblePeer {
  id: string;
  name: string;
  ip: string;
  dns_label: string;
  connected: boolean;
}

function when(iso: string | undefined): string {
  const full = fullTime(iso);
  return full ? `${full} (${ago(iso)})` : 'never';
}

function NameForm({ peer, onSaved }: { peer: Peer; onSaved: () => void }): ReactNode {
  const [name, setName] = useState(peer.name);
  const [saved, setSaved] = useState(false);
  const { busy, error, run } = useSubmit();
  useEffect(() => setName(peer.name), [peer.name]);
  const submit = async (e: FormEvent): Promise<void> => {
    e.preventDefault();
    setSaved(false);
    if (await run(() => api.put<Peer>(`/api/peers/${peer.id}`, peerBody(peer, { name: name.trim() })))) {
      setSaved(true);
      onSaved();
    }
  };
  return (
    <form noValidate className="card form-row" onSubmit={(e) => void submit(e)} aria-labelledby="peer-name-title">
      <h2 id="peer-name-title">Name</h2>
      <Field label="Peer name" hint="The DNS label follows the name." error={errorFor(error, 'name')}>
        {(p) => <input {...p} value={name} onChange={(e) => setName(e.target.value)} />}
      </Field>
      <FormError error={error} fields={['name']} />
      <SubmitRow label="Save name" busy={busy} saved={saved} />
    </form>
  );
}

/** The peer's groups; membership lives on the group, so each changed group is saved with its new peer list. */
function PeerGroups({ peer, onSaved }: { peer: Peer; onSaved: () => void }): ReactNode {
  const groups = useResource<Group[]>('/api/groups');
  const editable = (groups.data ?? []).filter((g) => g.name !== 'All' && (g.issued === undefined || g.issued === 'api'));
  const current = peer.groups.map((g) => g.id);
  const [value, setValue] = useState<string[]>(current);
  const [saved, setSaved] = useState(false);
  const { busy, error, run } = useSubmit();
  useEffect(() => setValue(peer.groups.map((g) => g.id)), [peer.groups]);
  const submit = async (e: FormEvent): Promise<void> => {
    e.preventDefault();
    setSaved(false);
    const changed = editable.filter((g) => value.includes(g.id) !== current.includes(g.id));
    const ok = await run(async () => {
      for (const g of changed) {
        const ids = g.peers.map((p) => p.id).filter((id) => id !== peer.id);
        if (value.includes(g.id)) ids.push(peer.id);
        await api.put(`/api/groups/${g.id}`, { name: g.name, peers: ids });
      }
      return true;
    });
    await groups.reload();
    if (ok) {
      setSaved(true);
      onSaved();
    }
  };
  return (
    <form noValidate className="card form-grid" onSubmit={(e) => void submit(e)} aria-labelledby="peer-groups-title">
      <h2 id="peer-groups-title">Groups</h2>
      <LoadError error={groups.error} />
      <GroupPicker name="peer-groups" label="Assigned groups (every peer is in All)" groups={editable} value={value.filter((id) => editable.some((g) => g.id === id))} onChange={setValue} error={errorFor(error, 'peers')} />
      <FormError error={error} fields={['peers']} />
      <SubmitRow label="Save groups" busy={busy} saved={saved} />
    </form>
  );
}

export function PeerDetailPage({ id }: { id: string }): ReactNode {
  const { data: peer, error, reload } = useResource<Peer>(`/api/peers/${encodeURIComponent(id)}`, 5000);
  const accessible = useResource<AccessiblePeer[]>(`/api/peers/${encodeURIComponent(id)}/accessible-peers`, 15000);
  const domain = useDnsDomain();
  const action = useSubmit();
  const update = async (change: Partial<Peer>): Promise<void> => {
    if (!peer) return;
    if (await action.run(() => api.put<Peer>(`/api/peers/${peer.id}`, peerBody(peer, change)))) await reload();
  };

  if (!peer) {
    return <DetailPending title="Peer" back="/peers" backLabel="All peers" error={error} />;
  }
  const st = peerState(peer);
  const place = [peer.city_name, peer.country_code].filter(Boolean).join(', ');
  return (
    <section aria-labelledby="page-title" data-peer-detail={peer.name}>
      <PageHeader title={peer.name}>
        <p>
          <Link to="/peers">All peers</Link> · <StatusDot state={st.state} label={st.label} />
        </p>
      </PageHeader>
      <LoadError error={error} />
      <FormError error={action.error} fields={[]} />
      <div className="card">
        <h2>Details</h2>
        <dl className="facts" aria-label="Peer details">
          <dt>NetBird IP</dt>
          <dd className="mono">{peer.ip}</dd>
          <dt>Public IP</dt>
          <dd className="mono">{peer.connection_ip || '—'}</dd>
          <dt>DNS name</dt>
          <dd className="mono">
            {dnsName(peer.dns_label, domain)}
            {(peer.extra_dns_labels ?? []).map((l) => (
              <span key={l} className="block">
                {dnsName(l, domain)}
              </span>
            ))}
          </dd>
          <dt>Hostname</dt>
          <dd>{peer.hostname || '—'}</dd>
          <dt>Location</dt>
          <dd>{place || 'unknown'}</dd>
          <dt>Operating system</dt>
          <dd>
            {peer.os || '—'}
            {peer.kernel_version && <span className="muted block">kernel {peer.kernel_version}</span>}
          </dd>
          {peer.serial_number && (
            <>
              <dt>Serial number</dt>
              <dd>{peer.serial_number}</dd>
            </>
          )}
          <dt>NetBird version</dt>
          <dd>{peer.version || '—'}</dd>
          {peer.ui_version && (
            <>
              <dt>UI version</dt>
              <dd>{peer.ui_version.replace('netbird-desktop-ui/', '')}</dd>
            </>
          )}
          <dt>Registered</dt>
          <dd>{when(peer.created_at)}</dd>
          <dt>Last seen</dt>
          <dd>{peer.connected ? 'online now' : when(peer.last_seen)}</dd>
          <dt>Last login</dt>
          <dd>{when(peer.last_login)}</dd>
          <dt>Login</dt>
          <dd>{peer.login_expired ? 'expired: the peer must log in again' : 'valid'}</dd>
          {peer.ephemeral && (
            <>
              <dt>Ephemeral</dt>
              <dd>yes: removed after it has been offline for a while</dd>
            </>
          )}
        </dl>
      </div>
      <NameForm peer={peer} onSaved={() => void reload()} />
      <div className="card">
        <h2>Settings</h2>
        <ul className="settings-list">
          <li>
            <span>
              <strong>Login expiration</strong>
              <span className="muted block">The peer must log in again when the account&apos;s login expiration runs out.</span>
            </span>
            <Switch label="Login expiration" checked={peer.login_expiration_enabled} onChange={(v) => void update({ login_expiration_enabled: v })} />
          </li>
          <li>
            <span>
              <strong>Inactivity expiration</strong>
              <span className="muted block">The login also expires after the account&apos;s inactivity period.</span>
            </span>
            <Switch label="Inactivity expiration" checked={peer.inactivity_expiration_enabled} onChange={(v) => void update({ inactivity_expiration_enabled: v })} />
          </li>
          <li>
            <span>
              <strong>SSH access</strong>
              <span className="muted block">The peer&apos;s NetBird SSH server accepts connections allowed by policies.</span>
            </span>
            <Switch label="SSH access" checked={peer.ssh_enabled} onChange={(v) => void update({ ssh_enabled: v })} />
          </li>
          <li>
            <span>
              <strong>Approval</strong>
              <span className="muted block">{peer.approval_required ? 'This peer waits for an administrator’s approval.' : 'Approved.'}</span>
            </span>
            {peer.approval_required && (
              <button type="button" className="btn primary small" onClick={() => void update({ approval_required: false })}>
                Approve
              </button>
            )}
          </li>
        </ul>
      </div>
      <PeerGroups peer={peer} onSaved={() => void reload()} />
      <div className="card">
        <h2>Accessible peers</h2>
        <LoadError error={accessible.error} />
        {accessible.data && accessible.data.length === 0 && <p className="muted">No policy lets this peer reach another peer.</p>}
        {accessible.data && accessible.data.length > 0 && (
          <ul className="conn-list">
            {accessible.data.map((a) => (
              <li key={a.id}>
                <Link to={`/peers/${a.id}`}>{a.name}</Link> <span className="mono muted">{a.ip}</span>{' '}
                <StatusDot state={a.connected ? 'online' : 'offline'} label={a.connected ? 'Online' : 'Offline'} />
              </li>
            ))}
          </ul>
        )}
      </div>
      <div className="form-actions">
        <ConfirmButton
          label="Delete peer"
          confirmLabel={`Delete ${peer.name}?`}
          onConfirm={async () => {
            if (await action.run(() => api.del(`/api/peers/${peer.id}`))) navigate('/peers');
          }}
        />
      </div>
    </section>
  );
}
