import { type FormEvent, type ReactNode, useEffect, useId, useState } from 'react';
import { type City, type Country, type Policy, type PostureCheck, type PostureChecks, api } from '../api.js';
import { ConfirmButton, DataTable, Empty, Field, FormError, LoadError, PageHeader, SubmitRow, errorFor, useResource, useSubmit } from '../ui.js';

type OsKey = 'android' | 'darwin' | 'ios' | 'linux' | 'windows';
/** Mobile and macOS checks compare the OS version, Linux and Windows the kernel version (as NetBird). */
const OSES: Array<{ key: OsKey; label: string; kernel: boolean }> = [
  { key: 'linux', label: 'Linux', kernel: true },
  { key: 'windows', label: 'Windows', kernel: true },
  { key: 'darwin', label: 'macOS', kernel: false },
  { key: 'android', label: 'Android', kernel: false },
  { key: 'ios', label: 'iOS', kernel: false },
];

type Action = 'allow' | 'deny';
interface Proc {
  linux_path: string;
  mac_path: string;
  windows_path: string;
}

const split = (s: string): string[] =>
  s
    .split(/[\s,]+/)
    .map((x) => x.trim())
    .filter(Boolean);

/** What a check requires, in a few words (for the list). */
export function checkSummary(c: PostureChecks): string[] {
  const out: string[] = [];
  if (c.nb_version_check) out.push(`NetBird ≥ ${c.nb_version_check.min_version}`);
  if (c.os_version_check) {
    const parts = OSES.filter((o) => c.os_version_check?.[o.key]).map((o) => {
      const e = c.os_version_check![o.key]!;
      const v = (o.kernel ? e.min_kernel_version : e.min_version) ?? '';
      return v && v !== '0' ? `${o.label} ≥ ${v}` : o.label;
    });
    out.push(`OS: ${parts.join(', ') || 'none allowed'}`);
  }
  if (c.geo_location_check) {
    const g = c.geo_location_check;
    out.push(`${g.action === 'allow' ? 'Only from' : 'Not from'} ${g.locations.map((l) => (l.city_name ? `${l.city_name} (${l.country_code})` : l.country_code)).join(', ')}`);
  }
  if (c.peer_network_range_check) {
    const n = c.peer_network_range_check;
    out.push(`${n.action === 'allow' ? 'In' : 'Not in'} ${n.ranges.join(', ')}`);
  }
  if (c.process_check) out.push(`${c.process_check.processes.length} process${c.process_check.processes.length === 1 ? '' : 'es'} running`);
  return out;
}

/** A toggled section of the form: a checkbox in the legend turns one kind of check on or off. */
function CheckSection({ title, on, onToggle, hint, children }: { title: string; on: boolean; onToggle: (v: boolean) => void; hint: string; children: ReactNode }): ReactNode {
  return (
    <fieldset className="subcard field">
      <legend>
        <label className="check">
          <input type="checkbox" checked={on} onChange={(e) => onToggle(e.target.checked)} /> {title}
        </label>
      </legend>
      <span className="hint">{hint}</span>
      {on && <div className="form-grid">{children}</div>}
    </fieldset>
  );
}

function GeoLocations({ value, onChange, error }: { value: Array<{ country_code: string; city_name?: string }>; onChange: (v: Array<{ country_code: string; city_name?: string }>) => void; error?: string }): ReactNode {
  const countries = useResource<Country[]>('/api/locations/countries');
  const [country, setCountry] = useState('');
  const [city, setCity] = useState('');
  const cities = useResource<City[]>(country && /^[A-Z]{2}$/.test(country) ? `/api/locations/countries/${country}/cities` : undefined);
  const listId = useId();
  const name = (cc: string): string => countries.data?.find((c) => c.country_code === cc)?.country_name ?? cc;
  const add = (): void => {
    if (!country) return;
    const loc = city.trim() ? { country_code: country, city_name: city.trim() } : { country_code: country };
    if (!value.some((l) => l.country_code === loc.country_code && (l.city_name ?? '') === (loc.city_name ?? ''))) onChange([...value, loc]);
    setCity('');
  };
  return (
    <>
      {countries.error && (
        <p className="notice" role="status">
          Country list unavailable ({countries.error.message}); enter two-letter country codes.
        </p>
      )}
      <Field label="Country" error={error}>
        {(p) =>
          !countries.error ? (
            <select {...p} value={country} onChange={(e) => setCountry(e.target.value)} disabled={!countries.data}>
              <option value="">{countries.data ? 'Choose a country…' : 'Loading countries…'}</option>
              {(countries.data ?? []).map((c) => (
                <option key={c.country_code} value={c.country_code}>
                  {c.country_name}
                </option>
              ))}
            </select>
          ) : (
            <input {...p} value={country} maxLength={2} onChange={(e) => setCountry(e.target.value.toUpperCase())} placeholder="DE" />
          )
        }
      </Field>
      <Field label="City (optional)" hint="Empty = the whole country.">
        {(p) => <input {...p} list={listId} value={city} onChange={(e) => setCity(e.target.value)} disabled={!country} />}
      </Field>
      <datalist id={listId}>
        {/* Suggestions only for what was typed: a country can have thousands of cities. */}
        {(city.trim().length < 2 ? [] : (cities.data ?? []).filter((c) => c.city_name.toLowerCase().startsWith(city.trim().toLowerCase())).slice(0, 100)).map((c) => (
          <option key={c.geoname_id} value={c.city_name} />
        ))}
      </datalist>
      <div className="form-actions">
        <button type="button" className="btn ghost" onClick={add} disabled={!country}>
          Add location
        </button>
      </div>
      <ul className="chips" aria-label="Locations">
        {value.length === 0 && <li className="muted">No locations yet.</li>}
        {value.map((l, i) => {
          const text = l.city_name ? `${l.city_name}, ${name(l.country_code)}` : name(l.country_code);
          return (
            <li key={`${l.country_code}/${l.city_name ?? ''}`} className="chip">
              {text}{' '}
              <button type="button" className="btn ghost small" aria-label={`Remove ${text}`} onClick={() => onChange(value.filter((_, j) => j !== i))}>
                ×
              </button>
            </li>
          );
        })}
      </ul>
    </>
  );
}

function PostureCheckForm({ check, onDone }: { check?: PostureCheck; onDone: () => void }): ReactNode {
  const c = check?.checks ?? {};
  const [name, setName] = useState(check?.name ?? '');
  const [description, setDescription] = useState(check?.description ?? '');
  const [nbOn, setNbOn] = useState(!!c.nb_version_check);
  const [nbMin, setNbMin] = useState(c.nb_version_check?.min_version ?? '');
  const [osOn, setOsOn] = useState(!!c.os_version_check);
  const [os, setOs] = useState<Record<OsKey, { allowed: boolean; min: string }>>(() => {
    const out = {} as Record<OsKey, { allowed: boolean; min: string }>;
    for (const o of OSES) {
      const e = c.os_version_check?.[o.key];
      const v = (o.kernel ? e?.min_kernel_version : e?.min_version) ?? '';
      out[o.key] = { allowed: c.os_version_check ? !!e : true, min: v === '0' ? '' : v };
    }
    return out;
  });
  const [geoOn, setGeoOn] = useState(!!c.geo_location_check);
  const [geoAction, setGeoAction] = useState<Action>(c.geo_location_check?.action ?? 'allow');
  const [locations, setLocations] = useState(c.geo_location_check?.locations ?? []);
  const [netOn, setNetOn] = useState(!!c.peer_network_range_check);
  const [netAction, setNetAction] = useState<Action>(c.peer_network_range_check?.action ?? 'allow');
  const [ranges, setRanges] = useState((c.peer_network_range_check?.ranges ?? []).join(', '));
  const [procOn, setProcOn] = useState(!!c.process_check);
  const [procs, setProcs] = useState<Proc[]>(
    c.process_check?.processes.map((p) => ({ linux_path: p.linux_path ?? '', mac_path: p.mac_path ?? '', windows_path: p.windows_path ?? '' })) ?? [{ linux_path: '', mac_path: '', windows_path: '' }],
  );
  const { busy, error, run } = useSubmit();

  const submit = async (e: FormEvent): Promise<void> => {
    e.preventDefault();
    const checks: PostureChecks = {};
    if (nbOn) checks.nb_version_check = { min_version: nbMin.trim() };
    if (osOn) {
      const out: NonNullable<PostureChecks['os_version_check']> = {};
      for (const o of OSES) {
        const x = os[o.key];
        if (!x.allowed) continue;
        // "0" is NetBird's "any version".
        out[o.key] = o.kernel ? { min_kernel_version: x.min.trim() || '0' } : { min_version: x.min.trim() || '0' };
      }
      checks.os_version_check = out;
    }
    if (geoOn) checks.geo_location_check = { action: geoAction, locations };
    if (netOn) checks.peer_network_range_check = { action: netAction, ranges: split(ranges) };
    if (procOn) {
      checks.process_check = {
        processes: procs
          .map((p) => Object.fromEntries(Object.entries(p).filter(([, v]) => (v as string).trim() !== '').map(([k, v]) => [k, (v as string).trim()])) as Partial<Proc>)
          .filter((p) => Object.keys(p).length > 0),
      };
    }
    const body = { name: name.trim(), description: description.trim(), checks };
    const r = await run(() => (check ? api.put<PostureCheck>(`/api/posture-checks/${check.id}`, body) : api.post<PostureCheck>('/api/posture-checks', body)));
    if (r) onDone();
  };
  const title = check ? `Edit ${check.name}` : 'Create a posture check';
  return (
    <form noValidate className="card form-grid" onSubmit={(e) => void submit(e)} aria-label={title}>
      <h2>{title}</h2>
      <Field label="Check name" error={errorFor(error, 'name')}>
        {(p) => <input {...p} value={name} onChange={(e) => setName(e.target.value)} placeholder="e.g. Recent clients only" />}
      </Field>
      <Field label="Description" error={errorFor(error, 'description')}>
        {(p) => <input {...p} value={description} onChange={(e) => setDescription(e.target.value)} />}
      </Field>
      <div className="group-picker">
        <CheckSection title="NetBird version" on={nbOn} onToggle={setNbOn} hint="Peers must run at least this NetBird client version.">
          <Field label="Minimum NetBird version" error={errorFor(error, 'checks.nb_version_check')}>
            {(p) => <input {...p} value={nbMin} onChange={(e) => setNbMin(e.target.value)} placeholder="0.60.0" className="mono" />}
          </Field>
        </CheckSection>
        <CheckSection title="Operating system" on={osOn} onToggle={setOsOn} hint="Only the ticked systems are allowed; an empty version allows any. Linux and Windows compare the kernel version.">
          {OSES.map((o) => (
            <div key={o.key} className="field">
              <label className="check">
                <input type="checkbox" checked={os[o.key].allowed} onChange={(e) => setOs({ ...os, [o.key]: { ...os[o.key], allowed: e.target.checked } })} /> Allow {o.label}
              </label>
              <Field label={`${o.label} minimum ${o.kernel ? 'kernel version' : 'version'}`}>
                {(p) => <input {...p} disabled={!os[o.key].allowed} value={os[o.key].min} onChange={(e) => setOs({ ...os, [o.key]: { ...os[o.key], min: e.target.value } })} className="mono" />}
              </Field>
            </div>
          ))}
          {errorFor(error, 'checks.os_version_check') && (
            <p className="form-error" role="alert">
              {errorFor(error, 'checks.os_version_check')}
            </p>
          )}
        </CheckSection>
        <CheckSection title="Location" on={geoOn} onToggle={setGeoOn} hint="Where the peer connects from (its public address), by country and optionally city.">
          <Field label="Location rule">
            {(p) => (
              <select {...p} value={geoAction} onChange={(e) => setGeoAction(e.target.value as Action)}>
                <option value="allow">Allow only these locations</option>
                <option value="deny">Block these locations</option>
              </select>
            )}
          </Field>
          <GeoLocations value={locations} onChange={setLocations} error={errorFor(error, 'checks.geo_location_check')} />
        </CheckSection>
        <CheckSection title="Peer network range" on={netOn} onToggle={setNetOn} hint="The peer's local network addresses.">
          <Field label="Network range rule">
            {(p) => (
              <select {...p} value={netAction} onChange={(e) => setNetAction(e.target.value as Action)}>
                <option value="allow">Allow only peers in these ranges</option>
                <option value="deny">Block peers in these ranges</option>
              </select>
            )}
          </Field>
          <Field label="Ranges (CIDR)" hint="Comma-separated, e.g. 192.168.0.0/16." error={errorFor(error, 'checks.peer_network_range_check')}>
            {(p) => <input {...p} value={ranges} onChange={(e) => setRanges(e.target.value)} className="mono" />}
          </Field>
        </CheckSection>
        <CheckSection title="Running processes" on={procOn} onToggle={setProcOn} hint="Each process must be running on the peer (give its path per OS).">
          {procs.map((p, i) => (
            <fieldset key={i} className="subcard field group-picker">
              <legend>Process {i + 1}</legend>
              <div className="form-grid">
                {(['linux_path', 'mac_path', 'windows_path'] as const).map((k) => (
                  <Field key={k} label={`Process ${i + 1} ${k === 'linux_path' ? 'Linux' : k === 'mac_path' ? 'macOS' : 'Windows'} path`}>
                    {(fp) => <input {...fp} value={p[k]} onChange={(e) => setProcs(procs.map((x, j) => (j === i ? { ...x, [k]: e.target.value } : x)))} className="mono" />}
                  </Field>
                ))}
              </div>
              {procs.length > 1 && (
                <button type="button" className="btn ghost small" onClick={() => setProcs(procs.filter((_, j) => j !== i))}>
                  Remove process {i + 1}
                </button>
              )}
            </fieldset>
          ))}
          <div className="form-actions">
            <button type="button" className="btn ghost" onClick={() => setProcs([...procs, { linux_path: '', mac_path: '', windows_path: '' }])}>
              Add process
            </button>
          </div>
          {errorFor(error, 'checks.process_check') && (
            <p className="form-error" role="alert">
              {errorFor(error, 'checks.process_check')}
            </p>
          )}
        </CheckSection>
      </div>
      <FormError error={error} fields={['name', 'description', 'checks.nb_version_check', 'checks.os_version_check', 'checks.geo_location_check', 'checks.peer_network_range_check', 'checks.process_check']} />
      <SubmitRow label={check ? 'Save check' : 'Create check'} busy={busy}>
        {check && (
          <button type="button" className="btn ghost" onClick={onDone}>
            Cancel
          </button>
        )}
      </SubmitRow>
    </form>
  );
}

export function PostureChecksPage(): ReactNode {
  const checks = useResource<PostureCheck[]>('/api/posture-checks');
  const policies = useResource<Policy[]>('/api/policies');
  const [editing, setEditing] = useState<string | undefined>(undefined);
  const [formKey, setFormKey] = useState(0);
  const action = useSubmit();
  const edit = checks.data?.find((c) => c.id === editing);
  useEffect(() => {
    if (editing && checks.data && !edit) setEditing(undefined);
  }, [editing, checks.data, edit]);
  const usedBy = (id: string): string[] => (policies.data ?? []).filter((p) => p.source_posture_checks.includes(id)).map((p) => p.name);
  return (
    <section aria-labelledby="page-title">
      <PageHeader title="Posture checks">
        <p>Conditions a peer must meet to be a source of a policy: client version, operating system, location, local network or running processes. Attach them to policies under Access control.</p>
      </PageHeader>
      {edit ? (
        <PostureCheckForm
          key={edit.id}
          check={edit}
          onDone={() => {
            setEditing(undefined);
            void checks.reload();
          }}
        />
      ) : (
        <PostureCheckForm
          key={`new-${formKey}`}
          onDone={() => {
            setFormKey(formKey + 1);
            void checks.reload();
          }}
        />
      )}
      <LoadError error={checks.error} />
      <FormError error={action.error} fields={[]} />
      {checks.data && checks.data.length === 0 && <Empty title="No posture checks" />}
      {checks.data && checks.data.length > 0 && (
        <DataTable columns={['Name', 'Checks', 'Used by']} actions>
          {checks.data.map((c) => (
            <tr key={c.id} data-check={c.name}>
              <td data-label="Name">
                <strong>{c.name}</strong>
                {c.description && <span className="muted block">{c.description}</span>}
              </td>
              <td data-label="Checks">
                <ul className="plain-list">
                  {checkSummary(c.checks).map((s) => (
                    <li key={s}>{s}</li>
                  ))}
                </ul>
              </td>
              <td data-label="Used by">{usedBy(c.id).join(', ') || <span className="muted">no policy</span>}</td>
              <td className="actions">
                <button type="button" className="btn ghost small" onClick={() => setEditing(c.id)} aria-label={`Edit ${c.name}`}>
                  Edit
                </button>
                <ConfirmButton
                  className="small"
                  label="Delete"
                  confirmLabel={`Delete ${c.name}?`}
                  onConfirm={async () => {
                    if (await action.run(() => api.del(`/api/posture-checks/${c.id}`))) {
                      if (editing === c.id) setEditing(undefined);
                      await checks.reload();
                    }
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
