import { type FormEvent, type ReactNode, useState } from 'react';
import { type Group, type SetupKey, api } from '../api.js';
import { SubmitRow, DataTable, Chips, CommandText, ConfirmButton, CopyButton, Empty, Field, FormError, GroupPicker, LoadError, PageHeader, StatusDot, ago, errorFor, fullTime, useResource, useSubmit } from '../ui.js';
import { upCommand } from './Onboarding.js';

const FIELDS = ['name', 'type', 'expires_in', 'usage_limit', 'auto_groups'];

function CreateKey({ groups, onCreated }: { groups: Group[]; onCreated: (k: SetupKey) => void }): ReactNode {
  const [name, setName] = useState('');
  const [type, setType] = useState<'reusable' | 'one-off'>('reusable');
  const [days, setDays] = useState('30');
  const [limit, setLimit] = useState('0');
  const [autoGroups, setAutoGroups] = useState<string[]>([]);
  const [ephemeral, setEphemeral] = useState(false);
  const { busy, error, run } = useSubmit();
  const submit = async (e: FormEvent): Promise<void> => {
    e.preventDefault();
    const k = await run(() =>
      api.post<SetupKey>('/api/setup-keys', {
        name: name.trim(),
        type,
        expires_in: Math.round(Number(days) * 86400),
        usage_limit: type === 'one-off' ? 1 : Math.round(Number(limit)),
        auto_groups: autoGroups,
        ephemeral,
      }),
    );
    if (k) {
      setName('');
      onCreated(k);
    }
  };
  return (
    <form noValidate className="card form-grid" onSubmit={(e) => void submit(e)} aria-labelledby="new-key">
      <h2 id="new-key">Create a setup key</h2>
      <Field label="Name" error={errorFor(error, 'name')}>
        {(p) => <input {...p} required value={name} onChange={(e) => setName(e.target.value)} placeholder="e.g. Office laptops" />}
      </Field>
      <Field label="Type" error={errorFor(error, 'type')}>
        {(p) => (
          <select {...p} value={type} onChange={(e) => setType(e.target.value as 'reusable' | 'one-off')}>
            <option value="reusable">Reusable</option>
            <option value="one-off">One-off</option>
          </select>
        )}
      </Field>
      <Field label="Expires in (days)" hint="0 = never" error={errorFor(error, 'expires_in')}>
        {(p) => <input {...p} type="number" min={0} max={365} value={days} onChange={(e) => setDays(e.target.value)} />}
      </Field>
      {type === 'reusable' && (
        <Field label="Usage limit" hint="0 = unlimited" error={errorFor(error, 'usage_limit')}>
          {(p) => <input {...p} type="number" min={0} value={limit} onChange={(e) => setLimit(e.target.value)} />}
        </Field>
      )}
      <GroupPicker name="auto_groups" label="Auto-assigned groups" groups={groups} value={autoGroups} onChange={setAutoGroups} error={errorFor(error, 'auto_groups')} />
      <label className="check">
        <input type="checkbox" checked={ephemeral} onChange={(e) => setEphemeral(e.target.checked)} /> Ephemeral peers (removed after 10 minutes offline)
      </label>
      <FormError error={error} fields={FIELDS} />
      <SubmitRow label="Create key" busy={busy} />
    </form>
  );
}

export function SetupKeysPage(): ReactNode {
  const keys = useResource<SetupKey[]>('/api/setup-keys');
  const groups = useResource<Group[]>('/api/groups');
  const [created, setCreated] = useState<SetupKey | undefined>(undefined);
  const action = useSubmit();
  const groupName = (id: string): string => groups.data?.find((g) => g.id === id)?.name ?? id;

  return (
    <section aria-labelledby="page-title">
      <PageHeader title="Setup keys">
        <p>A setup key lets a machine join the network without signing in. Anyone holding it can add peers, so keep it secret.</p>
      </PageHeader>
      <CreateKey
        groups={groups.data ?? []}
        onCreated={(k) => {
          setCreated(k);
          void keys.reload();
        }}
      />
      {created && (
        <div className="card highlight" role="status" aria-labelledby="created-key">
          <h2 id="created-key">Key “{created.name}” created</h2>
          <p>Copy it now: it is shown only once.</p>
          <div className="command">
            <code data-testid="new-setup-key">{created.key}</code>
            <CopyButton text={created.key} label="Copy key" />
          </div>
          <p>To add a peer with it:</p>
          <div className="command">
            <CommandText text={upCommand(created.key)} />
            <CopyButton text={upCommand(created.key)} label="Copy command" />
          </div>
          <button type="button" className="btn ghost small" onClick={() => setCreated(undefined)}>
            Done
          </button>
        </div>
      )}
      <LoadError error={keys.error} />
      <FormError error={action.error} fields={[]} />
      {keys.data && keys.data.length === 0 && <Empty title="No setup keys yet" />}
      {keys.data && keys.data.length > 0 && (
        <DataTable columns={['Name', 'Key', 'State', 'Type', 'Used', 'Expires', 'Groups']} actions>
              {keys.data.map((k) => (
                <tr key={k.id}>
                  <td data-label="Name">
                    <strong>{k.name}</strong>
                  </td>
                  <td data-label="Key" className="mono">
                    {k.key}
                  </td>
                  <td data-label="State">
                    <StatusDot state={k.valid ? 'online' : k.revoked ? 'warn' : 'offline'} label={k.state} />
                  </td>
                  <td data-label="Type">{k.type}</td>
                  <td data-label="Used">
                    {k.used_times}
                    {k.usage_limit > 0 ? ` / ${k.usage_limit}` : ''}
                    <span className="muted block">{k.used_times > 0 ? `last ${ago(k.last_used)}` : ''}</span>
                  </td>
                  <td data-label="Expires" title={fullTime(k.expires)}>
                    {ago(k.expires) === 'never' ? 'never' : ago(k.expires)}
                  </td>
                  <td data-label="Groups">
                    <Chips items={k.auto_groups.map(groupName)} />
                  </td>
                  <td className="actions">
                    {!k.revoked && (
                      <ConfirmButton
                        className="small"
                        label="Revoke"
                        confirmLabel={`Revoke ${k.name}?`}
                        onConfirm={async () => {
                          if (await action.run(() => api.put(`/api/setup-keys/${k.id}`, { revoked: true, auto_groups: k.auto_groups }))) await keys.reload();
                        }}
                      />
                    )}
                    <ConfirmButton
                      className="small"
                      label="Delete"
                      confirmLabel={`Delete ${k.name}?`}
                      onConfirm={async () => {
                        if (await action.run(() => api.del(`/api/setup-keys/${k.id}`))) await keys.reload();
                      }}
                    />
                  </td>
                </tr>
              ))}
        </DataTable>
      )}
    </section>
  );
}
