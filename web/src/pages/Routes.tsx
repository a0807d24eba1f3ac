import { type FormEvent, type ReactNode, useState } from 'react';
import { type Group, type Peer, type Route, api } from '../api.js';
import { SubmitRow, DataTable, Chips, ConfirmButton, Empty, Field, FormError, GroupPicker, LoadError, PageHeader, PeerSelect, Switch, errorFor, useResource, useSubmit } from '../ui.js';
import { Link } from '../router.js';

const ROUTE_FIELDS = ['network_id', 'network', 'domains', 'peer', 'peer_groups', 'groups', 'metric', 'description'];

function routeBody(r: Route, change: Partial<Route> = {}): Record<string, unknown> {
  const n = { ...r, ...change };
  const out: Record<string, unknown> = {
    description: n.description,
    network_id: n.network_id,
    enabled: n.enabled,
    metric: n.metric,
    masquerade: n.masquerade,
    groups: n.groups,
    keep_route: n.keep_route,
  };
  if (n.peer) out.peer = n.peer;
  else out.peer_groups = n.peer_groups ?? [];
  if (n.network_type === 'Domain') out.domains = n.domains ?? [];
  else out.network = n.network;
  return out;
}

function CreateRoute({ peers, groups, onCreated }: { peers: Peer[]; groups: Group[]; onCreated: () => void }): ReactNode {
  const [networkId, setNetworkId] = useState('');
  const [network, setNetwork] = useState('');
  const [peer, setPeer] = useState('');
  const [dist, setDist] = useState<string[]>([]);
  const [description, setDescription] = useState('');
  const { busy, error, run } = useSubmit();
  const submit = async (e: FormEvent): Promise<void> => {
    e.preventDefault();
    const r = await run(() =>
      api.post<Route>('/api/routes', {
        network_id: networkId.trim(),
        description: description.trim(),
        network: network.trim(),
        peer,
        enabled: true,
        metric: 9999,
        masquerade: true,
        keep_route: true,
        groups: dist,
      }),
    );
    if (r) {
      setNetworkId('');
      setNetwork('');
      onCreated();
    }
  };
  return (
    <form noValidate className="card form-grid" onSubmit={(e) => void submit(e)} aria-labelledby="new-route">
      <h2 id="new-route">Add a route</h2>
      <Field label="Route name" error={errorFor(error, 'network_id')}>
        {(p) => <input {...p} value={networkId} onChange={(e) => setNetworkId(e.target.value)} placeholder="e.g. office-lan" />}
      </Field>
      <Field label="Network (CIDR)" error={errorFor(error, 'network')}>
        {(p) => <input {...p} value={network} onChange={(e) => setNetwork(e.target.value)} placeholder="192.168.10.0/24" className="mono" />}
      </Field>
      <PeerSelect label="Routing peer" peers={peers} value={peer} onChange={setPeer} error={errorFor(error, 'peer')} />
      <Field label="Description" error={errorFor(error, 'description')}>
        {(p) => <input {...p} value={description} onChange={(e) => setDescription(e.target.value)} />}
      </Field>
      <GroupPicker name="groups" label="Distribution groups" groups={groups} value={dist} onChange={setDist} error={errorFor(error, 'groups')} />
      <FormError error={error} fields={ROUTE_FIELDS} />
      <SubmitRow label="Add route" busy={busy} />
    </form>
  );
}

export function RoutesPage(): ReactNode {
  const routes = useResource<Route[]>('/api/routes');
  const peers = useResource<Peer[]>('/api/peers');
  const groups = useResource<Group[]>('/api/groups');
  const action = useSubmit();
  const peerName = (id: string): string => peers.data?.find((p) => p.id === id)?.name ?? id;
  const groupName = (id: string): string => groups.data?.find((g) => g.id === id)?.name ?? id;
  return (
    <section aria-labelledby="page-title">
      <PageHeader title="Routes">
        <p>
          Routes let peers reach networks behind a routing peer. For resources with access control, use <Link to="/networks">Networks</Link>.
        </p>
      </PageHeader>
      <FormError error={action.error} fields={[]} />
      <h2 className="section-title">Network routes</h2>
      <CreateRoute peers={peers.data ?? []} groups={groups.data ?? []} onCreated={() => void routes.reload()} />
      <LoadError error={routes.error} />
      {routes.data && routes.data.length === 0 && <Empty title="No routes" />}
      {routes.data && routes.data.length > 0 && (
        <DataTable columns={['Name', 'Destination', 'Routing peer', 'Distribution', 'Enabled']} actions>
              {routes.data.map((r) => (
                <tr key={r.id}>
                  <td data-label="Name">
                    <strong>{r.network_id}</strong>
                    {r.description && <span className="muted block">{r.description}</span>}
                  </td>
                  <td data-label="Destination" className="mono">
                    {r.network ?? r.domains?.join(', ')}
                  </td>
                  <td data-label="Routing peer">{r.peer ? peerName(r.peer) : <Chips items={(r.peer_groups ?? []).map(groupName)} />}</td>
                  <td data-label="Distribution">
                    <Chips items={r.groups.map(groupName)} />
                  </td>
                  <td data-label="Enabled">
                    <Switch
                      label={`Route ${r.network_id} enabled`}
                      checked={r.enabled}
                      onChange={async (v) => {
                        if (await action.run(() => api.put(`/api/routes/${r.id}`, routeBody(r, { enabled: v })))) await routes.reload();
                      }}
                    />
                  </td>
                  <td className="actions">
                    <ConfirmButton
                      className="small"
                      label="Delete"
                      onConfirm={async () => {
                        if (await action.run(() => api.del(`/api/routes/${r.id}`))) await routes.reload();
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
