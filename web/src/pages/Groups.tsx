import { type FormEvent, type ReactNode, useState } from 'react';
import { type Group, type Peer, api } from '../api.js';
import { SubmitRow, DataTable, Chips, ConfirmButton, Empty, Field, FormError, GroupPicker, LoadError, PageHeader, errorFor, useResource, useSubmit } from '../ui.js';

function GroupForm({ peers, group, onDone }: { peers: Peer[]; group?: Group; onDone: () => void }): ReactNode {
  const [name, setName] = useState(group?.name ?? '');
  const [members, setMembers] = useState<string[]>(group?.peers.map((p) => p.id) ?? []);
  const { busy, error, run } = useSubmit();
  const submit = async (e: FormEvent): Promise<void> => {
    e.preventDefault();
    const body = { name: name.trim(), peers: members };
    const r = await run(() => (group ? api.put<Group>(`/api/groups/${group.id}`, body) : api.post<Group>('/api/groups', body)));
    if (r) {
      if (!group) {
        setName('');
        setMembers([]);
      }
      onDone();
    }
  };
  const title = group ? `Edit ${group.name}` : 'Create a group';
  return (
    <form noValidate className="card form-grid" onSubmit={(e) => void submit(e)} aria-label={title}>
      <h2>{title}</h2>
      <Field label="Group name" error={errorFor(error, 'name')}>
        {(p) => <input {...p} required value={name} onChange={(e) => setName(e.target.value)} placeholder="e.g. servers" />}
      </Field>
      <GroupPicker name="peers" label="Peers" groups={peers} value={members} onChange={setMembers} error={errorFor(error, 'peers')} />
      <FormError error={error} fields={['name', 'peers']} />
      <SubmitRow label={group ? 'Save group' : 'Create group'} busy={busy}>
        {group && (
          <button type="button" className="btn ghost" onClick={onDone}>
            Cancel
          </button>
        )}
      </SubmitRow>
    </form>
  );
}

export function GroupsPage(): ReactNode {
  const groups = useResource<Group[]>('/api/groups');
  const peers = useResource<Peer[]>('/api/peers');
  const [editing, setEditing] = useState<string | undefined>(undefined);
  const action = useSubmit();
  const editGroup = groups.data?.find((g) => g.id === editing);
  return (
    <section aria-labelledby="page-title">
      <PageHeader title="Groups">
        <p>Groups collect peers; access-control policies, routes and DNS settings refer to groups.</p>
      </PageHeader>
      {editGroup ? (
        <GroupForm
          key={editGroup.id}
          peers={peers.data ?? []}
          group={editGroup}
          onDone={() => {
            setEditing(undefined);
            void groups.reload();
          }}
        />
      ) : (
        <GroupForm peers={peers.data ?? []} onDone={() => void groups.reload()} />
      )}
      <LoadError error={groups.error} />
      <FormError error={action.error} fields={[]} />
      {groups.data && groups.data.length === 0 && <Empty title="No groups" />}
      {groups.data && groups.data.length > 0 && (
        <DataTable columns={['Name', 'Peers', 'Members']} actions>
              {groups.data.map((g) => (
                <tr key={g.id}>
                  <td data-label="Name">
                    <strong>{g.name}</strong>
                  </td>
                  <td data-label="Peers">{g.peers_count}</td>
                  <td data-label="Members">
                    <Chips items={g.peers.map((p) => p.name).slice(0, 12)} />
                  </td>
                  <td className="actions">
                    {g.name !== 'All' && (
                      <>
                        <button type="button" className="btn ghost small" onClick={() => setEditing(g.id)} aria-label={`Edit ${g.name}`}>
                          Edit
                        </button>
                        <ConfirmButton
                          className="small"
                          label="Delete"
                          confirmLabel={`Delete ${g.name}?`}
                          onConfirm={async () => {
                            if (await action.run(() => api.del(`/api/groups/${g.id}`))) await groups.reload();
                          }}
                        />
                      </>
                    )}
                  </td>
                </tr>
              ))}
        </DataTable>
      )}
    </section>
  );
}
