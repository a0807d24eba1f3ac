import { type FormEvent, type ReactNode, useState } from 'react';
import { type Group, type Policy, type PolicyRule, type PostureCheck, type Protocol, api } from '../api.js';
import { SubmitRow, Chips, ConfirmButton, Empty, Field, FormError, GroupPicker, LoadError, PageHeader, Switch, errorFor, useResource, useSubmit } from '../ui.js';

const FIELDS = ['name', 'description', 'sources', 'destinations', 'protocol', 'ports', 'port_ranges', 'action', 'rules', 'source_posture_checks'];

/** A policy as a PUT/POST body (groups by id). */
export function policyBody(p: Policy, change: Partial<Policy> = {}): Record<string, unknown> {
  const n = { ...p, ...change };
  return {
    name: n.name,
    description: n.description,
    enabled: n.enabled,
    source_posture_checks: n.source_posture_checks,
    rules: n.rules.map((r) => ({
      id: r.id,
      name: r.name,
      description: r.description ?? '',
      enabled: r.enabled,
      action: r.action,
      bidirectional: r.bidirectional,
      protocol: r.protocol,
      ports: r.ports ?? [],
      port_ranges: r.port_ranges ?? [],
      sources: r.sources.map((g) => g.id),
      destinations: r.destinations.map((g) => g.id),
      // A side that is one resource (as the official dashboard's networks page makes) stays so.
      ...(r.sourceResource ? { sourceResource: r.sourceResource } : {}),
      ...(r.destinationResource ? { destinationResource: r.destinationResource } : {}),
    })),
  };
}

export function portsText(r: Pick<PolicyRule, 'protocol' | 'ports' | 'port_ranges'>): string {
  if (r.protocol === 'all' || r.protocol === 'icmp') return r.protocol === 'all' ? 'all traffic' : 'ICMP';
  const parts = [...(r.ports ?? []), ...(r.port_ranges ?? []).map((x) => `${x.start}-${x.end}`)];
  return `${r.protocol.toUpperCase()} ${parts.length ? parts.join(', ') : 'all ports'}`;
}

function CreatePolicy({ groups, checks, onCreated }: { groups: Group[]; checks: PostureCheck[]; onCreated: () => void }): ReactNode {
  const [name, setName] = useState('');
  const [description, setDescription] = useState('');
  const [sources, setSources] = useState<string[]>([]);
  const [destinations, setDestinations] = useState<string[]>([]);
  const [protocol, setProtocol] = useState<Protocol>('all');
  const [ports, setPorts] = useState('');
  const [bidirectional, setBidirectional] = useState(true);
  const [action, setAction] = useState<'accept' | 'drop'>('accept');
  const [posture, setPosture] = useState<string[]>([]);
  const { busy, error, run } = useSubmit();
  const portsEnabled = protocol === 'tcp' || protocol === 'udp';

  const submit = async (e: FormEvent): Promise<void> => {
    e.preventDefault();
    const list = ports
      .split(/[\s,]+/)
      .map((s) => s.trim())
      .filter(Boolean);
    const single = list.filter((x) => !x.includes('-'));
    const ranges = list.filter((x) => x.includes('-')).map((x) => {
      const [a, b] = x.split('-');
      return { start: Number(a), end: Number(b) };
    });
    const r = await run(() =>
      api.post<Policy>('/api/policies', {
        name: name.trim(),
        description: description.trim(),
        enabled: true,
        source_posture_checks: posture,
        rules: [
          {
            name: name.trim(),
            description: description.trim(),
            enabled: true,
            action,
            bidirectional,
            protocol,
            ports: portsEnabled ? single : [],
            port_ranges: portsEnabled ? ranges : [],
            sources,
            destinations,
          },
        ],
      }),
    );
    if (r) {
      setName('');
      setDescription('');
      setPorts('');
      setPosture([]);
      onCreated();
    }
  };

  return (
    <form noValidate className="card form-grid" onSubmit={(e) => void submit(e)} aria-labelledby="new-policy">
      <h2 id="new-policy">Create a policy</h2>
      <Field label="Policy name" error={errorFor(error, 'name')}>
        {(p) => <input {...p} required value={name} onChange={(e) => setName(e.target.value)} placeholder="e.g. Admins to servers (SSH)" />}
      </Field>
      <Field label="Description" error={errorFor(error, 'description')}>
        {(p) => <input {...p} value={description} onChange={(e) => setDescription(e.target.value)} />}
      </Field>
      <GroupPicker name="sources" label="Source groups" groups={groups} value={sources} onChange={setSources} error={errorFor(error, 'sources')} />
      <GroupPicker name="destinations" label="Destination groups" groups={groups} value={destinations} onChange={setDestinations} error={errorFor(error, 'destinations')} />
      <Field label="Protocol" error={errorFor(error, 'protocol')}>
        {(p) => (
          <select {...p} value={protocol} onChange={(e) => setProtocol(e.target.value as Protocol)}>
            <option value="all">All</option>
            <option value="tcp">TCP</option>
            <option value="udp">UDP</option>
            <option value="icmp">ICMP</option>
            <option value="netbird-ssh">NetBird SSH</option>
          </select>
        )}
      </Field>
      <Field label="Ports" hint={portsEnabled ? 'Comma-separated ports or ranges, e.g. 22, 8000-8080. Empty = all.' : 'Only for TCP and UDP.'} error={errorFor(error, 'ports', 'port_ranges')}>
        {(p) => <input {...p} disabled={!portsEnabled} value={ports} onChange={(e) => setPorts(e.target.value)} inputMode="numeric" />}
      </Field>
      <fieldset className="field">
        <legend>Direction</legend>
        <label className="check">
          <input type="radio" name="direction" checked={bidirectional} onChange={() => setBidirectional(true)} /> Both ways (sources ↔ destinations)
        </label>
        <label className="check">
          <input type="radio" name="direction" checked={!bidirectional} onChange={() => setBidirectional(false)} /> One way (sources → destinations)
        </label>
      </fieldset>
      <Field label="Action" error={errorFor(error, 'action')}>
        {(p) => (
          <select {...p} value={action} onChange={(e) => setAction(e.target.value as 'accept' | 'drop')}>
            <option value="accept">Accept</option>
            <option value="drop">Drop</option>
          </select>
        )}
      </Field>
      {checks.length > 0 && (
        <GroupPicker name="source_posture_checks" label="Posture checks (sources must pass them)" groups={checks} value={posture} onChange={setPosture} error={errorFor(error, 'source_posture_checks')} />
      )}
      <FormError error={error} fields={FIELDS} />
      <SubmitRow label="Create policy" busy={busy} />
    </form>
  );
}

/** Which posture checks a policy's sources must pass (source_posture_checks), edited in place. */
function PolicyPosture({ policy, checks, onSaved }: { policy: Policy; checks: PostureCheck[]; onSaved: () => void }): ReactNode {
  const [open, setOpen] = useState(false);
  const [value, setValue] = useState<string[]>(policy.source_posture_checks);
  const { busy, error, run } = useSubmit();
  const names = policy.source_posture_checks.map((id) => checks.find((c) => c.id === id)?.name ?? id);
  if (!open) {
    return (
      <div className="policy-posture">
        <span className="muted">Posture checks:</span> {names.length ? <Chips items={names} label="posture checks" /> : <span className="muted">none</span>}{' '}
        <button
          type="button"
          className="btn ghost small"
          aria-label={`Edit posture checks of ${policy.name}`}
          onClick={() => {
            setValue(policy.source_posture_checks);
            setOpen(true);
          }}
        >
          Edit
        </button>
      </div>
    );
  }
  const submit = async (e: FormEvent): Promise<void> => {
    e.preventDefault();
    if (await run(() => api.put(`/api/policies/${policy.id}`, policyBody(policy, { source_posture_checks: value })))) {
      setOpen(false);
      onSaved();
    }
  };
  return (
    <form noValidate className="inline-form" onSubmit={(e) => void submit(e)} aria-label={`Posture checks of ${policy.name}`}>
      <GroupPicker name={`posture-${policy.id}`} label={`Posture checks of ${policy.name}`} groups={checks} value={value} onChange={setValue} error={errorFor(error, 'source_posture_checks')} />
      {checks.length === 0 && <p className="hint">No posture checks yet: create them on the Posture checks page.</p>}
      <FormError error={error} fields={['source_posture_checks']} />
      <div className="row-actions">
        <button className="btn primary small" type="submit" disabled={busy}>
          Save posture checks
        </button>
        <button className="btn ghost small" type="button" onClick={() => setOpen(false)}>
          Cancel
        </button>
      </div>
    </form>
  );
}

export function PoliciesPage(): ReactNode {
  const policies = useResource<Policy[]>('/api/policies');
  const groups = useResource<Group[]>('/api/groups');
  const checks = useResource<PostureCheck[]>('/api/posture-checks');
  const action = useSubmit();
  return (
    <section aria-labelledby="page-title">
      <PageHeader title="Access control">
        <p>Peers can reach each other only where a policy allows it. Rules connect source groups to destination groups.</p>
      </PageHeader>
      <CreatePolicy groups={groups.data ?? []} checks={checks.data ?? []} onCreated={() => void policies.reload()} />
      <LoadError error={policies.error} />
      <FormError error={action.error} fields={[]} />
      {policies.data && policies.data.length === 0 && <Empty title="No policies: no peer can reach another" />}
      <ul className="policy-list">
        {policies.data?.map((p) => (
          <li key={p.id} className={`card policy ${p.enabled ? '' : 'disabled'}`} data-policy={p.name}>
            <div className="policy-head">
              <div>
                <h2 className="policy-name">{p.name}</h2>
                {p.description && <p className="muted">{p.description}</p>}
              </div>
              <div className="policy-controls">
                <span className="muted" aria-hidden="true">
                  {p.enabled ? 'Enabled' : 'Disabled'}
                </span>
                <Switch
                  label={`Policy ${p.name} enabled`}
                  checked={p.enabled}
                  onChange={async (v) => {
                    if (await action.run(() => api.put(`/api/policies/${p.id}`, policyBody(p, { enabled: v })))) await policies.reload();
                  }}
                />
                <ConfirmButton
                  className="small"
                  label="Delete"
                  confirmLabel={`Delete ${p.name}?`}
                  onConfirm={async () => {
                    if (await action.run(() => api.del(`/api/policies/${p.id}`))) await policies.reload();
                  }}
                />
              </div>
            </div>
            <ul className="rules">
              {p.rules.map((r, i) => (
                <li key={r.id ?? i} className="rule">
                  <Chips items={r.sources.map((g) => g.name)} />
                  <span className="arrow" aria-label={r.bidirectional ? 'both ways' : 'one way'}>
                    {r.bidirectional ? '⟷' : '⟶'}
                  </span>
                  <Chips items={r.destinations.map((g) => g.name)} />
                  <span className={`badge ${r.action === 'drop' ? 'badge-drop' : ''}`}>{r.action}</span>
                  <span className="badge">{portsText(r)}</span>
                </li>
              ))}
            </ul>
            <PolicyPosture key={p.source_posture_checks.join(',')} policy={p} checks={checks.data ?? []} onSaved={() => void policies.reload()} />
          </li>
        ))}
      </ul>
    </section>
  );
}
