import { type FormEvent, type ReactNode, useEffect, useState } from 'react';
import { type Group, type NameserverGroup, api } from '../api.js';
import { SubmitRow, DataTable, Chips, ConfirmButton, Empty, Field, FormError, GroupPicker, LoadError, PageHeader, errorFor, useResource, useSubmit } from '../ui.js';

const NS_FIELDS = ['name', 'description', 'nameservers', 'ip', 'groups', 'domains', 'primary'];

function CreateNameservers({ groups, onCreated }: { groups: Group[]; onCreated: () => void }): ReactNode {
  const [name, setName] = useState('');
  const [servers, setServers] = useState('');
  const [domains, setDomains] = useState('');
  const [dist, setDist] = useState<string[]>([]);
  const { busy, error, run } = useSubmit();
  const submit = async (e: FormEvent): Promise<void> => {
    e.preventDefault();
    const split = (s: string): string[] =>
      s
        .split(/[\s,]+/)
        .map((x) => x.trim())
        .filter(Boolean);
    const doms = split(domains);
    const r = await run(() =>
      api.post<NameserverGroup>('/api/dns/nameservers', {
        name: name.trim(),
        description: '',
        nameservers: split(servers).map((ip) => ({ ip, ns_type: 'udp', port: 53 })),
        enabled: true,
        groups: dist,
        primary: doms.length === 0,
        domains: doms,
        search_domains_enabled: false,
      }),
    );
    if (r) {
      setName('');
      setServers('');
      setDomains('');
      onCreated();
    }
  };
  return (
    <form noValidate className="card form-grid" onSubmit={(e) => void submit(e)} aria-labelledby="new-ns">
      <h2 id="new-ns">Add nameservers</h2>
      <Field label="Name" error={errorFor(error, 'name')}>
        {(p) => <input {...p} value={name} onChange={(e) => setName(e.target.value)} placeholder="e.g. Office DNS" />}
      </Field>
      <Field label="Nameserver addresses" hint="Comma-separated IPs, port 53 over UDP." error={errorFor(error, 'nameservers', 'ip')}>
        {(p) => <input {...p} value={servers} onChange={(e) => setServers(e.target.value)} placeholder="1.1.1.1, 9.9.9.9" className="mono" />}
      </Field>
      <Field label="Match domains" hint="Empty = resolve all domains (primary)." error={errorFor(error, 'domains')}>
        {(p) => <input {...p} value={domains} onChange={(e) => setDomains(e.target.value)} placeholder="corp.example.com" />}
      </Field>
      <GroupPicker name="groups" label="Distribution groups" groups={groups} value={dist} onChange={setDist} error={errorFor(error, 'groups')} />
      <FormError error={error} fields={NS_FIELDS} />
      <SubmitRow label="Add nameservers" busy={busy} />
    </form>
  );
}

function DnsSettings({ groups }: { groups: Group[] }): ReactNode {
  const settings = useResource<{ disabled_management_groups: string[] }>('/api/dns/settings');
  const [value, setValue] = useState<string[]>([]);
  const [saved, setSaved] = useState(false);
  const { busy, error, run } = useSubmit();
  useEffect(() => {
    if (settings.data) setValue(settings.data.disabled_management_groups);
  }, [settings.data]);
  const submit = async (e: FormEvent): Promise<void> => {
    e.preventDefault();
    setSaved(false);
    if (await run(() => api.put('/api/dns/settings', { disabled_management_groups: value }))) {
      setSaved(true);
      await settings.reload();
    }
  };
  return (
    <form noValidate className="card form-grid" onSubmit={(e) => void submit(e)} aria-labelledby="dns-settings">
      <h2 id="dns-settings">DNS settings</h2>
      <LoadError error={settings.error} />
      <GroupPicker
        name="disabled_management_groups"
        label="Groups whose peers do not get NetBird DNS management"
        groups={groups}
        value={value}
        onChange={setValue}
        error={errorFor(error, 'disabled_management_groups')}
      />
      <FormError error={error} fields={['disabled_management_groups']} />
      <SubmitRow label="Save settings" busy={busy}>
        {saved && (
          <span role="status" className="muted">
            Saved.
          </span>
        )}
      </SubmitRow>
    </form>
  );
}

export function DnsPage(): ReactNode {
  const ns = useResource<NameserverGroup[]>('/api/dns/nameservers');
  const groups = useResource<Group[]>('/api/groups');
  const action = useSubmit();
  const groupName = (id: string): string => groups.data?.find((g) => g.id === id)?.name ?? id;
  return (
    <section aria-labelledby="page-title">
      <PageHeader title="DNS">
        <p>Peers resolve each other by name (peer.your-domain). Nameserver groups add upstream resolvers for all or some domains.</p>
      </PageHeader>
      {action.error && (
        <p className="form-error" role="alert">
          {action.error.message}
        </p>
      )}
      <h2 className="section-title">Nameserver groups</h2>
      <CreateNameservers groups={groups.data ?? []} onCreated={() => void ns.reload()} />
      <LoadError error={ns.error} />
      {ns.data && ns.data.length === 0 && <Empty title="No nameserver groups: peers keep their own resolvers" />}
      {ns.data && ns.data.length > 0 && (
        <DataTable columns={['Name', 'Nameservers', 'Domains', 'Distribution']} actions>
              {ns.data.map((g) => (
                <tr key={g.id}>
                  <td data-label="Name">
                    <strong>{g.name}</strong>
                    {!g.enabled && <span className="badge">disabled</span>}
                  </td>
                  <td data-label="Nameservers" className="mono">
                    {g.nameservers.map((n) => `${n.ip}:${n.port}`).join(', ')}
                  </td>
                  <td data-label="Domains">{g.primary ? 'all (primary)' : g.domains.join(', ')}</td>
                  <td data-label="Distribution">
                    <Chips items={g.groups.map(groupName)} />
                  </td>
                  <td className="actions">
                    <ConfirmButton
                      className="small"
                      label="Delete"
                      onConfirm={async () => {
                        if (await action.run(() => api.del(`/api/dns/nameservers/${g.id}`))) await ns.reload();
                      }}
                    />
                  </td>
                </tr>
              ))}
        </DataTable>
      )}
      <DnsSettings groups={groups.data ?? []} />
    </section>
  );
}
