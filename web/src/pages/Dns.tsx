import { type FormEvent, type ReactNode, useEffect, useState } from 'react';
import { type DnsRecord, type DnsZone, type Group, type NameserverGroup, api } from '../api.js';
import { SubmitRow, DataTable, Chips, ConfirmButton, Empty, Field, FormError, GroupPicker, LoadError, PageHeader, Switch, errorFor, useResource, useSubmit } from '../ui.js';

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
      <SubmitRow label="Save settings" busy={busy} saved={saved} />
    </form>
  );
}

const ZONE_FIELDS = ['name', 'domain', 'enable_search_domain', 'distribution_groups', 'enabled'];

function zoneBody(z: { name: string; domain: string; enabled: boolean; enable_search_domain: boolean; distribution_groups: string[] }): Record<string, unknown> {
  return { name: z.name.trim(), domain: z.domain.trim(), enabled: z.enabled, enable_search_domain: z.enable_search_domain, distribution_groups: z.distribution_groups };
}

function ZoneForm({ zone, groups, onDone }: { zone?: DnsZone; groups: Group[]; onDone: () => void }): ReactNode {
  const [name, setName] = useState(zone?.name ?? '');
  const [domain, setDomain] = useState(zone?.domain ?? '');
  const [search, setSearch] = useState(zone?.enable_search_domain ?? false);
  const [dist, setDist] = useState<string[]>(zone?.distribution_groups ?? []);
  const { busy, error, run } = useSubmit();
  const submit = async (e: FormEvent): Promise<void> => {
    e.preventDefault();
    const body = zoneBody({ name, domain, enabled: zone?.enabled ?? true, enable_search_domain: search, distribution_groups: dist });
    const r = await run(() => (zone ? api.put<DnsZone>(`/api/dns/zones/${zone.id}`, body) : api.post<DnsZone>('/api/dns/zones', body)));
    if (r) {
      if (!zone) {
        setName('');
        setDomain('');
        setSearch(false);
        setDist([]);
      }
      onDone();
    }
  };
  const title = zone ? `Edit zone ${zone.name}` : 'Add a DNS zone';
  return (
    <form noValidate className="card form-grid" onSubmit={(e) => void submit(e)} aria-label={title}>
      <h2>{title}</h2>
      <Field label="Zone name" error={errorFor(error, 'name')}>
        {(p) => <input {...p} value={name} onChange={(e) => setName(e.target.value)} placeholder="e.g. Internal services" />}
      </Field>
      <Field label="Zone domain" hint={zone && zone.records.length > 0 ? 'Fixed while the zone has records.' : undefined} error={errorFor(error, 'domain')}>
        {(p) => <input {...p} value={domain} onChange={(e) => setDomain(e.target.value)} placeholder="internal.example.com" className="mono" />}
      </Field>
      <label className="check">
        <input type="checkbox" checked={search} onChange={(e) => setSearch(e.target.checked)} /> Add as a search domain (peers resolve short names in it)
      </label>
      <GroupPicker name={`zone-groups-${zone?.id ?? 'new'}`} label="Distribution groups (peers that resolve this zone)" groups={groups} value={dist} onChange={setDist} error={errorFor(error, 'distribution_groups')} />
      <FormError error={error} fields={ZONE_FIELDS} />
      <SubmitRow label={zone ? 'Save zone' : 'Add zone'} busy={busy}>
        {zone && (
          <button type="button" className="btn ghost" onClick={onDone}>
            Cancel
          </button>
        )}
      </SubmitRow>
    </form>
  );
}

/** A record's name as the API wants it: a full name inside the zone ("db" and "@" are made full). */
function recordName(input: string, domain: string): string {
  const n = input.trim().replace(/\.$/, '').toLowerCase();
  if (n === '' || n === '@') return domain;
  return n === domain || n.endsWith(`.${domain}`) ? n : `${n}.${domain}`;
}

function RecordForm({ zone, record, onDone }: { zone: DnsZone; record?: DnsRecord; onDone: () => void }): ReactNode {
  const [name, setName] = useState(record?.name ?? '');
  const [type, setType] = useState<DnsRecord['type']>(record?.type ?? 'A');
  const [content, setContent] = useState(record?.content ?? '');
  const [ttl, setTtl] = useState(String(record?.ttl ?? 300));
  const { busy, error, run } = useSubmit();
  const submit = async (e: FormEvent): Promise<void> => {
    e.preventDefault();
    const body = { name: recordName(name, zone.domain), type, content: content.trim(), ttl: Number(ttl) };
    const base = `/api/dns/zones/${zone.id}/records`;
    const r = await run(() => (record ? api.put<DnsRecord>(`${base}/${record.id}`, body) : api.post<DnsRecord>(base, body)));
    if (r) {
      if (!record) {
        setName('');
        setContent('');
      }
      onDone();
    }
  };
  const title = record ? `Edit record ${record.name}` : `Add a record to ${zone.domain}`;
  return (
    <form noValidate className="form-row record-form" onSubmit={(e) => void submit(e)} aria-label={title}>
      <Field label="Record name" hint={`db becomes db.${zone.domain}; @ is the zone itself.`} error={errorFor(error, 'name')}>
        {(p) => <input {...p} value={name} onChange={(e) => setName(e.target.value)} className="mono" />}
      </Field>
      <Field label="Type" error={errorFor(error, 'type')}>
        {(p) => (
          <select {...p} value={type} onChange={(e) => setType(e.target.value as DnsRecord['type'])}>
            <option value="A">A (IPv4)</option>
            <option value="AAAA">AAAA (IPv6)</option>
            <option value="CNAME">CNAME (alias)</option>
          </select>
        )}
      </Field>
      <Field label="Content" error={errorFor(error, 'content')}>
        {(p) => <input {...p} value={content} onChange={(e) => setContent(e.target.value)} className="mono" placeholder={type === 'CNAME' ? 'target.example.com' : type === 'A' ? '10.0.0.5' : 'fd00::5'} />}
      </Field>
      <Field label="TTL (seconds)" error={errorFor(error, 'ttl')}>
        {(p) => <input {...p} value={ttl} onChange={(e) => setTtl(e.target.value)} inputMode="numeric" />}
      </Field>
      <FormError error={error} fields={['name', 'type', 'content', 'ttl']} />
      <div className="row-actions">
        <button type="submit" className="btn primary small" disabled={busy}>
          {record ? 'Save record' : 'Add record'}
        </button>
        {record && (
          <button type="button" className="btn ghost small" onClick={onDone}>
            Cancel
          </button>
        )}
      </div>
    </form>
  );
}

function ZoneCard({ zone, groups, onChanged }: { zone: DnsZone; groups: Group[]; onChanged: () => void }): ReactNode {
  const [editing, setEditing] = useState(false);
  const [editRecord, setEditRecord] = useState<string | undefined>(undefined);
  const action = useSubmit();
  const groupName = (id: string): string => groups.find((g) => g.id === id)?.name ?? id;
  if (editing) {
    return (
      <li data-zone={zone.domain}>
        <ZoneForm
          zone={zone}
          groups={groups}
          onDone={() => {
            setEditing(false);
            onChanged();
          }}
        />
      </li>
    );
  }
  const rec = zone.records.find((r) => r.id === editRecord);
  return (
    <li className={`card policy ${zone.enabled ? '' : 'disabled'}`} data-zone={zone.domain}>
      <div className="policy-head">
        <div>
          <h3 className="policy-name">
            {zone.name} <span className="mono muted">{zone.domain}</span>
          </h3>
          <div className="muted policy-posture">
            For <Chips items={zone.distribution_groups.map(groupName)} />
            {zone.enable_search_domain && ' · search domain'}
          </div>
        </div>
        <div className="policy-controls">
          <Switch
            label={`Zone ${zone.domain} enabled`}
            checked={zone.enabled}
            onChange={async (v) => {
              if (await action.run(() => api.put(`/api/dns/zones/${zone.id}`, zoneBody({ ...zone, enabled: v })))) onChanged();
            }}
          />
          <button type="button" className="btn ghost small" aria-label={`Edit zone ${zone.domain}`} onClick={() => setEditing(true)}>
            Edit
          </button>
          <ConfirmButton
            className="small"
            label="Delete"
            confirmLabel={`Delete zone ${zone.domain}?`}
            onConfirm={async () => {
              if (await action.run(() => api.del(`/api/dns/zones/${zone.id}`))) onChanged();
            }}
          />
        </div>
      </div>
      <FormError error={action.error} fields={[]} />
      {zone.records.length === 0 ? (
        <p className="muted">No records yet.</p>
      ) : (
        <DataTable columns={['Record', 'Type', 'Content', 'TTL']} actions>
          {zone.records.map((r) => (
            <tr key={r.id} data-record={r.name}>
              <td data-label="Record" className="mono">
                {r.name}
              </td>
              <td data-label="Type">{r.type}</td>
              <td data-label="Content" className="mono">
                {r.content}
              </td>
              <td data-label="TTL">{r.ttl}</td>
              <td className="actions">
                <button type="button" className="btn ghost small" aria-label={`Edit record ${r.name} ${r.type}`} onClick={() => setEditRecord(r.id)}>
                  Edit
                </button>
                <ConfirmButton
                  className="small"
                  label="Delete"
                  confirmLabel={`Delete ${r.name}?`}
                  onConfirm={async () => {
                    if (await action.run(() => api.del(`/api/dns/zones/${zone.id}/records/${r.id}`))) {
                      setEditRecord(undefined);
                      onChanged();
                    }
                  }}
                />
              </td>
            </tr>
          ))}
        </DataTable>
      )}
      {rec ? (
        <RecordForm
          key={rec.id}
          zone={zone}
          record={rec}
          onDone={() => {
            setEditRecord(undefined);
            onChanged();
          }}
        />
      ) : (
        <RecordForm zone={zone} onDone={onChanged} />
      )}
    </li>
  );
}

function DnsZones({ groups }: { groups: Group[] }): ReactNode {
  const zones = useResource<DnsZone[]>('/api/dns/zones');
  return (
    <>
      <h2 className="section-title">DNS zones</h2>
      <p className="muted">Zones hold your own records (A, AAAA, CNAME) that the peers of the distribution groups resolve.</p>
      <ZoneForm groups={groups} onDone={() => void zones.reload()} />
      <LoadError error={zones.error} />
      {zones.data && zones.data.length === 0 && <Empty title="No DNS zones" />}
      <ul className="policy-list">
        {zones.data?.map((z) => <ZoneCard key={z.id} zone={z} groups={groups} onChanged={() => void zones.reload()} />)}
      </ul>
    </>
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
      <FormError error={action.error} fields={[]} />
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
      <DnsZones groups={groups.data ?? []} />
      <DnsSettings groups={groups.data ?? []} />
    </section>
  );
}
