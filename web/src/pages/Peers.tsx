import { type FormEvent, type ReactNode, useState } from 'react';
import { type Peer, api } from '../api.js';
import { DataTable, ConfirmButton, Chips, Empty, Field, FormError, LoadError, PageHeader, StatusDot, Switch, ago, dnsName, errorFor, fullTime, useDnsDomain, useResource, useSubmit } from '../ui.js';
import { Link } from '../router.js';

export function peerState(p: Peer): { state: 'online' | 'offline' | 'warn'; label: string } {
  if (p.approval_required) return { state: 'warn', label: 'Needs approval' };
  if (p.login_expired) return { state: 'warn', label: 'Login expired' };
  return p.connected ? { state: 'online', label: 'Online' } : { state: 'offline', label: 'Offline' };
}

export function peerBody(p: Peer, change: Partial<Peer>): Record<string, unknown> {
  const n = { ...p, ...change };
  return {
    name: n.name,
    ssh_enabled: n.ssh_enabled,
    login_expiration_enabled: n.login_expiration_enabled,
    inactivity_expiration_enabled: n.inactivity_expiration_enabled,
    approval_required: n.approval_required,
  };
}

function RenameForm({ peer, onDone }: { peer: Peer; onDone: (changed: boolean) => void }): ReactNode {
  const [name, setName] = useState(peer.name);
  const { busy, error, run } = useSubmit();
  const submit = async (e: FormEvent): Promise<void> => {
    e.preventDefault();
    const r = await run(() => api.put<Peer>(`/api/peers/${peer.id}`, peerBody(peer, { name: name.trim() })));
    if (r) onDone(true);
  };
  return (
    <form noValidate className="inline-form" onSubmit={(e) => void submit(e)} aria-label={`Rename ${peer.name}`}>
      <Field label="New name" error={errorFor(error, 'name')}>
        {(p) => <input {...p} autoFocus value={name} onChange={(e) => setName(e.target.value)} onKeyDown={(e) => e.key === 'Escape' && onDone(false)} />}
      </Field>
      <FormError error={error} fields={['name']} />
      <div className="row-actions">
        <button className="btn primary small" type="submit" disabled={busy}>
          Save
        </button>
        <button className="btn ghost small" type="button" onClick={() => onDone(false)}>
          Cancel
        </button>
      </div>
    </form>
  );
}

export function PeersPage(): ReactNode {
  const { data, error, reload } = useResource<Peer[]>('/api/peers', 5000);
  const [renaming, setRenaming] = useState<string | undefined>(undefined);
  const [filter, setFilter] = useState('');
  const domain = useDnsDomain();
  const action = useSubmit();
  const peers = (data ?? []).filter((p) => {
    const f = filter.trim().toLowerCase();
    return f === '' || p.name.toLowerCase().includes(f) || p.ip.includes(f) || p.dns_label.toLowerCase().includes(f);
  });
  const online = (data ?? []).filter((p) => p.connected).length;

  const update = async (p: Peer, change: Partial<Peer>): Promise<void> => {
    const r = await action.run(() => api.put<Peer>(`/api/peers/${p.id}`, peerBody(p, change)));
    if (r) await reload();
  };

  return (
    <section aria-labelledby="page-title">
      <PageHeader title="Peers">
        {data && (
          <p>
            <strong>{online}</strong> of <strong>{data.length}</strong> peers online.
          </p>
        )}
      </PageHeader>
      <LoadError error={error} />
      <FormError error={action.error} fields={[]} />
      {data && data.length === 0 && (
        <Empty title="No peers yet">
          <p>
            Create a key under <Link to="/setup-keys">Setup keys</Link> and run <code>netbird up --management-url {location.origin} --setup-key &lt;KEY&gt;</code> on a machine.
          </p>
        </Empty>
      )}
      {data && data.length > 0 && (
        <>
          <div className="toolbar">
            <Field label="Search peers" className="compact">
              {(p) => <input {...p} type="search" placeholder="name, IP or DNS name" value={filter} onChange={(e) => setFilter(e.target.value)} />}
            </Field>
          </div>
          <DataTable columns={['Name', 'Status', 'Address', 'OS / version', 'Groups', 'Last seen', 'Login expiration']} actions>
                {peers.map((p) => {
                  const st = peerState(p);
                  return (
                    <tr key={p.id} data-peer={p.name}>
                      <td data-label="Name">
                        {renaming === p.id ? (
                          <RenameForm
                            peer={p}
                            onDone={(changed) => {
                              setRenaming(undefined);
                              if (changed) void reload();
                            }}
                          />
                        ) : (
                          <div className="name-cell">
                            <Link to={`/peers/${p.id}`} className="strong-link">
                              {p.name}
                            </Link>
                            <span className="muted mono">{dnsName(p.dns_label, domain)}</span>
                          </div>
                        )}
                      </td>
                      <td data-label="Status">
                        <StatusDot state={st.state} label={st.label} />
                      </td>
                      <td data-label="Address">
                        <span className="mono">{p.ip}</span>
                        {p.connection_ip && <span className="muted mono block">{p.connection_ip}</span>}
                      </td>
                      <td data-label="OS / version">
                        {p.os || '—'}
                        {p.version && <span className="muted block">NetBird {p.version}</span>}
                      </td>
                      <td data-label="Groups">
                        <Chips items={p.groups.map((g) => g.name)} />
                      </td>
                      <td data-label="Last seen" title={fullTime(p.last_seen)}>
                        {p.connected ? 'now' : ago(p.last_seen)}
                      </td>
                      <td data-label="Login expiration">
                        <Switch label={`Login expiration for ${p.name}`} checked={p.login_expiration_enabled} onChange={(v) => void update(p, { login_expiration_enabled: v })} />
                      </td>
                      <td className="actions">
                        {p.approval_required && (
                          <button type="button" className="btn primary small" onClick={() => void update(p, { approval_required: false })}>
                            Approve
                          </button>
                        )}
                        <button type="button" className="btn ghost small" onClick={() => setRenaming(p.id)} aria-label={`Rename ${p.name}`}>
                          Rename
                        </button>
                        <ConfirmButton
                          className="small"
                          label="Delete"
                          confirmLabel={`Delete ${p.name}?`}
                          onConfirm={async () => {
                            const r = await action.run(() => api.del(`/api/peers/${p.id}`));
                            if (r) await reload();
                          }}
                        />
                      </td>
                    </tr>
                  );
                })}
          </DataTable>
        </>
      )}
    </section>
  );
}
