import { type FormEvent, type ReactNode, useState } from 'react';
import { type Group, type Network, type NetworkResource, type NetworkRouter, type Peer, api } from '../api.js';
import { DetailPending, Chips, ConfirmButton, DataTable, Empty, Field, FormError, GroupPicker, LoadError, PageHeader, PeerSelect, SubmitRow, Switch, errorFor, useResource, useSubmit } from '../ui.js';
import { Link, navigate } from '../router.js';

function NetworkForm({ network, onDone }: { network?: Network; onDone: (n?: Network) => void }): ReactNode {
  const [name, setName] = useState(network?.name ?? '');
  const [description, setDescription] = useState(network?.description ?? '');
  const { busy, error, run } = useSubmit();
  const submit = async (e: FormEvent): Promise<void> => {
    e.preventDefault();
    const body = { name: name.trim(), description: description.trim() };
    const r = await run(() => (network ? api.put<Network>(`/api/networks/${network.id}`, body) : api.post<Network>('/api/networks', body)));
    if (r) {
      if (!network) {
        setName('');
        setDescription('');
      }
      onDone(r);
    }
  };
  const title = network ? 'Name and description' : 'Add a network';
  return (
    <form noValidate className="card form-row" onSubmit={(e) => void submit(e)} aria-label={title}>
      <h2>{title}</h2>
      <Field label="Network name" error={errorFor(error, 'name')}>
        {(p) => <input {...p} value={name} onChange={(e) => setName(e.target.value)} placeholder="e.g. Office" />}
      </Field>
      <Field label="Description" error={errorFor(error, 'description')}>
        {(p) => <input {...p} value={description} onChange={(e) => setDescription(e.target.value)} />}
      </Field>
      <FormError error={error} fields={['name', 'description']} />
      <button type="submit" className="btn primary" disabled={busy}>
        {network ? 'Save network' : 'Add network'}
      </button>
    </form>
  );
}

export function NetworksPage(): ReactNode {
  const networks = useResource<Network[]>('/api/networks');
  const action = useSubmit();
  return (
    <section aria-labelledby="page-title">
      <PageHeader title="Networks">
        <p>A network holds resources (hosts, subnets, domains) that peers reach through its routing peers. Policies to the resources&apos; groups decide who may.</p>
      </PageHeader>
      <NetworkForm onDone={(n) => (n ? navigate(`/networks/${n.id}`) : void networks.reload())} />
      <LoadError error={networks.error} />
      <FormError error={action.error} fields={[]} />
      {networks.data && networks.data.length === 0 && <Empty title="No networks" />}
      {networks.data && networks.data.length > 0 && (
        <DataTable columns={['Name', 'Resources', 'Routing peers', 'Policies']} actions>
          {networks.data.map((n) => (
            <tr key={n.id} data-network={n.name}>
              <td data-label="Name">
                <Link to={`/networks/${n.id}`} className="strong-link">
                  {n.name}
                </Link>
                {n.description && <span className="muted block">{n.description}</span>}
              </td>
              <td data-label="Resources">{n.resources.length}</td>
              <td data-label="Routing peers">{n.routing_peers_count}</td>
              <td data-label="Policies">{n.policies.length}</td>
              <td className="actions">
                <ConfirmButton
                  className="small"
                  label="Delete"
                  confirmLabel={`Delete ${n.name}?`}
                  onConfirm={async () => {
                    if (await action.run(() => api.del(`/api/networks/${n.id}`))) await networks.reload();
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

const RESOURCE_FIELDS = ['name', 'description', 'address', 'groups', 'enabled'];

function resourceBody(r: { name: string; description: string; address: string; enabled: boolean; groups: string[] }): Record<string, unknown> {
  return { name: r.name.trim(), description: r.description.trim(), address: r.address.trim(), enabled: r.enabled, groups: r.groups };
}

function ResourceForm({ networkId, resource, groups, onDone }: { networkId: string; resource?: NetworkResource; groups: Group[]; onDone: () => void }): ReactNode {
  const [name, setName] = useState(resource?.name ?? '');
  const [address, setAddress] = useState(resource?.address ?? '');
  const [description, setDescription] = useState(resource?.description ?? '');
  const [members, setMembers] = useState<string[]>(resource?.groups.map((g) => g.id) ?? []);
  const { busy, error, run } = useSubmit();
  const submit = async (e: FormEvent): Promise<void> => {
    e.preventDefault();
    const body = resourceBody({ name, description, address, enabled: resource?.enabled ?? true, groups: members });
    const base = `/api/networks/${networkId}/resources`;
    const r = await run(() => (resource ? api.put<NetworkResource>(`${base}/${resource.id}`, body) : api.post<NetworkResource>(base, body)));
    if (r) {
      if (!resource) {
        setName('');
        setAddress('');
        setDescription('');
        setMembers([]);
      }
      onDone();
    }
  };
  const title = resource ? `Edit resource ${resource.name}` : 'Add a resource';
  return (
    <form noValidate className="card form-grid" onSubmit={(e) => void submit(e)} aria-label={title}>
      <h2>{title}</h2>
      <Field label="Resource name" error={errorFor(error, 'name')}>
        {(p) => <input {...p} value={name} onChange={(e) => setName(e.target.value)} placeholder="e.g. File server" />}
      </Field>
      <Field label="Address" hint="An IP, a CIDR subnet or a domain (*.example.com allowed)." error={errorFor(error, 'address')}>
        {(p) => <input {...p} value={address} onChange={(e) => setAddress(e.target.value)} placeholder="10.0.0.5, 10.0.0.0/24 or db.internal" className="mono" />}
      </Field>
      <Field label="Resource description" error={errorFor(error, 'description')}>
        {(p) => <input {...p} value={description} onChange={(e) => setDescription(e.target.value)} />}
      </Field>
      <GroupPicker name="resource-groups" label="Resource groups (policies to these groups grant access)" groups={groups.filter((g) => g.name !== 'All')} value={members} onChange={setMembers} error={errorFor(error, 'groups')} />
      <FormError error={error} fields={RESOURCE_FIELDS} />
      <SubmitRow label={resource ? 'Save resource' : 'Add resource'} busy={busy}>
        {resource && (
          <button type="button" className="btn ghost" onClick={onDone}>
            Cancel
          </button>
        )}
      </SubmitRow>
    </form>
  );
}

const ROUTER_FIELDS = ['peer', 'peer_groups', 'metric', 'masquerade', 'enabled'];

function RouterForm({ networkId, router, peers, groups, onDone }: { networkId: string; router?: NetworkRouter; peers: Peer[]; groups: Group[]; onDone: () => void }): ReactNode {
  const [mode, setMode] = useState<'peer' | 'groups'>(router?.peer_groups && router.peer_groups.length > 0 ? 'groups' : 'peer');
  const [peer, setPeer] = useState(router?.peer ?? '');
  const [peerGroups, setPeerGroups] = useState<string[]>(router?.peer_groups ?? []);
  const [metric, setMetric] = useState(String(router?.metric ?? 9999));
  const [masquerade, setMasquerade] = useState(router?.masquerade ?? true);
  const { busy, error, run } = useSubmit();
  const submit = async (e: FormEvent): Promise<void> => {
    e.preventDefault();
    const body: Record<string, unknown> = { metric: Number(metric), masquerade, enabled: router?.enabled ?? true };
    if (mode === 'peer') body.peer = peer;
    else body.peer_groups = peerGroups;
    const base = `/api/networks/${networkId}/routers`;
    const r = await run(() => (router ? api.put<NetworkRouter>(`${base}/${router.id}`, body) : api.post<NetworkRouter>(base, body)));
    if (r) {
      if (!router) {
        setPeer('');
        setPeerGroups([]);
      }
      onDone();
    }
  };
  const title = router ? 'Edit routing peer' : 'Add a routing peer';
  return (
    <form noValidate className="card form-grid" onSubmit={(e) => void submit(e)} aria-label={title}>
      <h2>{title}</h2>
      <fieldset className="field">
        <legend>Route through</legend>
        <label className="check">
          <input type="radio" name={`router-mode-${router?.id ?? 'new'}`} checked={mode === 'peer'} onChange={() => setMode('peer')} /> One peer
        </label>
        <label className="check">
          <input type="radio" name={`router-mode-${router?.id ?? 'new'}`} checked={mode === 'groups'} onChange={() => setMode('groups')} /> The peers of groups
        </label>
      </fieldset>
      {mode === 'peer' ? (
        <PeerSelect label="Routing peer" peers={peers} value={peer} onChange={setPeer} error={errorFor(error, 'peer')} />
      ) : (
        <GroupPicker name="router-groups" label="Routing peer groups" groups={groups} value={peerGroups} onChange={setPeerGroups} error={errorFor(error, 'peer_groups')} />
      )}
      <Field label="Metric" hint="Lower wins when several routers serve the network." error={errorFor(error, 'metric')}>
        {(p) => <input {...p} value={metric} onChange={(e) => setMetric(e.target.value)} inputMode="numeric" />}
      </Field>
      <label className="check">
        <input type="checkbox" checked={masquerade} onChange={(e) => setMasquerade(e.target.checked)} /> Masquerade (traffic leaves the router with its address)
      </label>
      <FormError error={error} fields={ROUTER_FIELDS} />
      <SubmitRow label={router ? 'Save routing peer' : 'Add routing peer'} busy={busy}>
        {router && (
          <button type="button" className="btn ghost" onClick={onDone}>
            Cancel
          </button>
        )}
      </SubmitRow>
    </form>
  );
}

export function NetworkDetailPage({ id }: { id: string }): ReactNode {
  const base = `/api/networks/${encodeURIComponent(id)}`;
  const network = useResource<Network>(base);
  const resources = useResource<NetworkResource[]>(`${base}/resources`);
  const routers = useResource<NetworkRouter[]>(`${base}/routers`);
  const peers = useResource<Peer[]>('/api/peers');
  const groups = useResource<Group[]>('/api/groups');
  const [editResource, setEditResource] = useState<string | undefined>(undefined);
  const [editRouter, setEditRouter] = useState<string | undefined>(undefined);
  const action = useSubmit();
  const n = network.data;
  const peerName = (pid: string): string => peers.data?.find((p) => p.id === pid)?.name ?? pid;
  const groupName = (gid: string): string => groups.data?.find((g) => g.id === gid)?.name ?? gid;
  const reloadAll = (): void => {
    void network.reload();
    void resources.reload();
    void routers.reload();
  };
  if (!n) {
    return <DetailPending title="Network" back="/networks" backLabel="All networks" error={network.error} />;
  }
  const resourceEdit = resources.data?.find((r) => r.id === editResource);
  const routerEdit = routers.data?.find((r) => r.id === editRouter);
  return (
    <section aria-labelledby="page-title" data-network-detail={n.name}>
      <PageHeader title={n.name}>
        <p>
          <Link to="/networks">All networks</Link>
          {n.description && ` · ${n.description}`}
        </p>
      </PageHeader>
      <FormError error={action.error} fields={[]} />
      <NetworkForm key={`${n.name}/${n.description}`} network={n} onDone={() => void network.reload()} />

      <h2 className="section-title">Resources</h2>
      {resourceEdit ? (
        <ResourceForm
          key={resourceEdit.id}
          networkId={n.id}
          resource={resourceEdit}
          groups={groups.data ?? []}
          onDone={() => {
            setEditResource(undefined);
            reloadAll();
          }}
        />
      ) : (
        <ResourceForm networkId={n.id} groups={groups.data ?? []} onDone={reloadAll} />
      )}
      <LoadError error={resources.error} />
      {resources.data && resources.data.length === 0 && <Empty title="No resources in this network" />}
      {resources.data && resources.data.length > 0 && (
        <DataTable columns={['Name', 'Address', 'Type', 'Groups', 'Enabled']} actions>
          {resources.data.map((r) => (
            <tr key={r.id} data-resource={r.name}>
              <td data-label="Name">
                <strong>{r.name}</strong>
                {r.description && <span className="muted block">{r.description}</span>}
              </td>
              <td data-label="Address" className="mono">
                {r.address}
              </td>
              <td data-label="Type">{r.type}</td>
              <td data-label="Groups">
                <Chips items={r.groups.map((g) => g.name)} />
              </td>
              <td data-label="Enabled">
                <Switch
                  label={`Resource ${r.name} enabled`}
                  checked={r.enabled}
                  onChange={async (v) => {
                    const body = resourceBody({ ...r, enabled: v, groups: r.groups.map((g) => g.id) });
                    if (await action.run(() => api.put(`${base}/resources/${r.id}`, body))) await resources.reload();
                  }}
                />
              </td>
              <td className="actions">
                <button type="button" className="btn ghost small" aria-label={`Edit resource ${r.name}`} onClick={() => setEditResource(r.id)}>
                  Edit
                </button>
                <ConfirmButton
                  className="small"
                  label="Delete"
                  confirmLabel={`Delete ${r.name}?`}
                  onConfirm={async () => {
                    if (await action.run(() => api.del(`${base}/resources/${r.id}`))) {
                      setEditResource(undefined);
                      reloadAll();
                    }
                  }}
                />
              </td>
            </tr>
          ))}
        </DataTable>
      )}

      <h2 className="section-title">Routing peers</h2>
      {routerEdit ? (
        <RouterForm
          key={routerEdit.id}
          networkId={n.id}
          router={routerEdit}
          peers={peers.data ?? []}
          groups={groups.data ?? []}
          onDone={() => {
            setEditRouter(undefined);
            reloadAll();
          }}
        />
      ) : (
        <RouterForm networkId={n.id} peers={peers.data ?? []} groups={groups.data ?? []} onDone={reloadAll} />
      )}
      <LoadError error={routers.error} />
      {routers.data && routers.data.length === 0 && <Empty title="No routing peers: the resources are not reachable yet" />}
      {routers.data && routers.data.length > 0 && (
        <DataTable columns={['Routing peer', 'Metric', 'Masquerade', 'Enabled']} actions>
          {routers.data.map((r) => {
            const label = r.peer ? peerName(r.peer) : (r.peer_groups ?? []).map(groupName).join(', ');
            return (
              <tr key={r.id} data-router={label}>
                <td data-label="Routing peer">{r.peer ? peerName(r.peer) : <Chips items={(r.peer_groups ?? []).map(groupName)} />}</td>
                <td data-label="Metric">{r.metric}</td>
                <td data-label="Masquerade">{r.masquerade ? 'yes' : 'no'}</td>
                <td data-label="Enabled">
                  <Switch
                    label={`Router ${label} enabled`}
                    checked={r.enabled}
                    onChange={async (v) => {
                      const body: Record<string, unknown> = { metric: r.metric, masquerade: r.masquerade, enabled: v };
                      if (r.peer) body.peer = r.peer;
                      else body.peer_groups = r.peer_groups ?? [];
                      if (await action.run(() => api.put(`${base}/routers/${r.id}`, body))) await routers.reload();
                    }}
                  />
                </td>
                <td className="actions">
                  <button type="button" className="btn ghost small" aria-label={`Edit router ${label}`} onClick={() => setEditRouter(r.id)}>
                    Edit
                  </button>
                  <ConfirmButton
                    className="small"
                    label="Delete"
                    confirmLabel={`Delete router ${label}?`}
                    onConfirm={async () => {
                      if (await action.run(() => api.del(`${base}/routers/${r.id}`))) {
                        setEditRouter(undefined);
                        reloadAll();
                      }
                    }}
                  />
                </td>
              </tr>
            );
          })}
        </DataTable>
      )}
      <div className="form-actions">
        <ConfirmButton
          label="Delete network"
          confirmLabel={`Delete ${n.name} with its resources and routers?`}
          onConfirm={async () => {
            if (await action.run(() => api.del(base))) navigate('/networks');
          }}
        />
      </div>
    </section>
  );
}
