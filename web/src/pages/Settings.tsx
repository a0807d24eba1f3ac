import { type FormEvent, type ReactNode, useState } from 'react';
import { type Account, type AccountSettings, api } from '../api.js';
import { Field, FormError, LoadError, PageHeader, SubmitRow, Switch, errorFor, fullTime, useResource, useSubmit } from '../ui.js';

type Unit = 'minutes' | 'hours' | 'days';
const UNIT_S: Record<Unit, number> = { minutes: 60, hours: 3600, days: 86400 };

/** Seconds in the largest unit that holds them whole (else minutes), as the form shows a duration. */
function toDuration(seconds: number): { n: string; unit: Unit } {
  if (seconds % 86400 === 0) return { n: String(seconds / 86400), unit: 'days' };
  if (seconds % 3600 === 0) return { n: String(seconds / 3600), unit: 'hours' };
  return { n: String(Math.round((seconds / 60) * 100) / 100), unit: 'minutes' };
}

function Duration({ label, value, onChange, disabled, error }: { label: string; value: { n: string; unit: Unit }; onChange: (v: { n: string; unit: Unit }) => void; disabled: boolean; error?: string }): ReactNode {
  return (
    <div className="form-row duration-row">
      <Field label={label} error={error}>
        {(p) => <input {...p} inputMode="decimal" disabled={disabled} value={value.n} onChange={(e) => onChange({ ...value, n: e.target.value })} />}
      </Field>
      <Field label="Unit">
        {(p) => (
          <select {...p} aria-label={`${label}: unit`} disabled={disabled} value={value.unit} onChange={(e) => onChange({ ...value, unit: e.target.value as Unit })}>
            <option value="minutes">minutes</option>
            <option value="hours">hours</option>
            <option value="days">days</option>
          </select>
        )}
      </Field>
    </div>
  );
}

function SettingRow({ title, text, children }: { title: string; text: string; children: ReactNode }): ReactNode {
  return (
    <li>
      <span>
        <strong>{title}</strong>
        <span className="muted block">{text}</span>
      </span>
      {children}
    </li>
  );
}

const FIELDS = [
  'settings',
  'settings.peer_login_expiration',
  'settings.peer_inactivity_expiration',
  'settings.dns_domain',
  'settings.jwt_groups_claim_name',
  'settings.jwt_allow_groups',
];

function SettingsForm({ account, onSaved }: { account: Account; onSaved: () => void }): ReactNode {
  const [s, setS] = useState<AccountSettings>(account.settings);
  const [loginExp, setLoginExp] = useState(toDuration(account.settings.peer_login_expiration));
  const [inactExp, setInactExp] = useState(toDuration(account.settings.peer_inactivity_expiration));
  const [allowGroups, setAllowGroups] = useState(account.settings.jwt_allow_groups.join(', '));
  const [saved, setSaved] = useState(false);
  const { busy, error, run } = useSubmit();
  const set = (patch: Partial<AccountSettings>): void => {
    setSaved(false);
    setS({ ...s, ...patch });
  };
  const submit = async (e: FormEvent): Promise<void> => {
    e.preventDefault();
    setSaved(false);
    const seconds = (d: { n: string; unit: Unit }, old: number): number => {
      // An untouched duration keeps its exact stored value (the shown one may be rounded).
      const shown = toDuration(old);
      if (d.n === shown.n && d.unit === shown.unit) return old;
      return d.n.trim() === '' ? NaN : Math.round(Number(d.n.replace(',', '.')) * UNIT_S[d.unit]);
    };
    const settings = {
      peer_login_expiration_enabled: s.peer_login_expiration_enabled,
      peer_login_expiration: seconds(loginExp, account.settings.peer_login_expiration),
      peer_inactivity_expiration_enabled: s.peer_inactivity_expiration_enabled,
      peer_inactivity_expiration: seconds(inactExp, account.settings.peer_inactivity_expiration),
      regular_users_view_blocked: s.regular_users_view_blocked,
      groups_propagation_enabled: s.groups_propagation_enabled,
      jwt_groups_enabled: s.jwt_groups_enabled,
      jwt_groups_claim_name: s.jwt_groups_claim_name.trim(),
      jwt_allow_groups: allowGroups
        .split(',')
        .map((x) => x.trim())
        .filter(Boolean),
      routing_peer_dns_resolution_enabled: s.routing_peer_dns_resolution_enabled,
      lazy_connection_enabled: s.lazy_connection_enabled,
      dns_domain: s.dns_domain.trim(),
      extra: {
        network_traffic_logs_enabled: s.extra?.network_traffic_logs_enabled ?? false,
        network_traffic_packet_counter_enabled: s.extra?.network_traffic_packet_counter_enabled ?? false,
      },
    };
    for (const [k, v] of [['peer_login_expiration', settings.peer_login_expiration], ['peer_inactivity_expiration', settings.peer_inactivity_expiration]] as const) {
      if (!Number.isFinite(v)) {
        await run(() => Promise.reject(new Error(`settings.${k}: enter a number`)));
        return;
      }
    }
    if (await run(() => api.put<Account>(`/api/accounts/${account.id}`, { settings }))) {
      setSaved(true);
      onSaved();
    }
  };
  // The server's "settings.x: text" errors (and the local one above) land on their field.
  const err = (f: string): string | undefined => errorFor(error, `settings.${f}`);
  return (
    <form noValidate onSubmit={(e) => void submit(e)} aria-label="Account settings">
      <div className="card">
        <h2>Peer authentication</h2>
        <ul className="settings-list">
          <SettingRow title="Peer login expiration" text="Peers added by users must log in again after this time (peers added with setup keys never expire).">
            <Switch label="Peer login expiration" checked={s.peer_login_expiration_enabled} onChange={(v) => set({ peer_login_expiration_enabled: v })} />
          </SettingRow>
        </ul>
        <Duration label="Login expires after" value={loginExp} onChange={setLoginExp} disabled={!s.peer_login_expiration_enabled} error={err('peer_login_expiration')} />
        <ul className="settings-list">
          <SettingRow title="Peer inactivity expiration" text="The login of peers with inactivity expiration also ends when they have been disconnected this long.">
            <Switch label="Peer inactivity expiration" checked={s.peer_inactivity_expiration_enabled} onChange={(v) => set({ peer_inactivity_expiration_enabled: v })} />
          </SettingRow>
        </ul>
        <Duration label="Inactivity expires after" value={inactExp} onChange={setInactExp} disabled={!s.peer_inactivity_expiration_enabled} error={err('peer_inactivity_expiration')} />
      </div>
      <div className="card">
        <h2>Groups</h2>
        <ul className="settings-list">
          <SettingRow title="User groups propagation" text="Peers of a user join the user's auto-groups (and leave them when the user does).">
            <Switch label="User groups propagation" checked={s.groups_propagation_enabled} onChange={(v) => set({ groups_propagation_enabled: v })} />
          </SettingRow>
          <SettingRow title="JWT group sync" text="Users' groups are taken from a claim of their identity provider's tokens.">
            <Switch label="JWT group sync" checked={s.jwt_groups_enabled} onChange={(v) => set({ jwt_groups_enabled: v })} />
          </SettingRow>
        </ul>
        <div className="form-grid">
          <Field label="JWT groups claim" hint="e.g. groups" error={err('jwt_groups_claim_name')}>
            {(p) => <input {...p} disabled={!s.jwt_groups_enabled} value={s.jwt_groups_claim_name} onChange={(e) => set({ jwt_groups_claim_name: e.target.value })} />}
          </Field>
          <Field label="JWT allow groups" hint="Comma-separated; only users in one of these groups get access. Empty = everyone." error={err('jwt_allow_groups')}>
            {(p) => <input {...p} disabled={!s.jwt_groups_enabled} value={allowGroups} onChange={(e) => setAllowGroups(e.target.value)} />}
          </Field>
        </div>
      </div>
      <div className="card">
        <h2>Network</h2>
        <div className="form-grid">
          <Field label="DNS domain" hint="Peers are reachable as name.domain." error={err('dns_domain')}>
            {(p) => <input {...p} value={s.dns_domain} onChange={(e) => set({ dns_domain: e.target.value })} className="mono" />}
          </Field>
          <Field label="Network range" hint="Set when the account was created.">
            {(p) => <input {...p} readOnly value={s.network_range} className="mono" />}
          </Field>
        </div>
        <ul className="settings-list">
          <SettingRow title="DNS resolution on routing peers" text="Routing peers resolve the domains of domain routes and resources.">
            <Switch label="DNS resolution on routing peers" checked={s.routing_peer_dns_resolution_enabled} onChange={(v) => set({ routing_peer_dns_resolution_enabled: v })} />
          </SettingRow>
          <SettingRow title="Lazy connections" text="Peers connect to each other only when traffic starts.">
            <Switch label="Lazy connections" checked={s.lazy_connection_enabled} onChange={(v) => set({ lazy_connection_enabled: v })} />
          </SettingRow>
          <SettingRow title="Traffic events" text="Peers report their connections (see Traffic events).">
            <Switch
              label="Traffic events"
              checked={s.extra?.network_traffic_logs_enabled ?? false}
              onChange={(v) => set({ extra: { ...s.extra, network_traffic_logs_enabled: v } })}
            />
          </SettingRow>
          <SettingRow title="Traffic packet counters" text="Traffic events include packet and byte counts.">
            <Switch
              label="Traffic packet counters"
              checked={s.extra?.network_traffic_packet_counter_enabled ?? false}
              onChange={(v) => set({ extra: { ...s.extra, network_traffic_packet_counter_enabled: v } })}
            />
          </SettingRow>
        </ul>
      </div>
      <div className="card">
        <h2>Users</h2>
        <ul className="settings-list">
          <SettingRow title="Restrict the dashboard for regular users" text="Users with the user role see only their own peers.">
            <Switch label="Restrict the dashboard for regular users" checked={s.regular_users_view_blocked} onChange={(v) => set({ regular_users_view_blocked: v })} />
          </SettingRow>
        </ul>
      </div>
      <FormError error={error} fields={FIELDS.filter((f) => f !== 'settings')} />
      <SubmitRow label="Save settings" busy={busy} saved={saved} />
    </form>
  );
}

export function SettingsPage(): ReactNode {
  const { data, error, reload } = useResource<Account[]>('/api/accounts');
  const account = data?.[0];
  return (
    <section aria-labelledby="page-title">
      <PageHeader title="Settings">
        {account && (
          <p>
            Account <span className="mono">{account.id}</span>
            {account.domain && ` (${account.domain})`}
            {fullTime(account.created_at) && `, created ${fullTime(account.created_at)}`}.
          </p>
        )}
      </PageHeader>
      <LoadError error={error} />
      {account && <SettingsForm key={account.id} account={account} onSaved={() => void reload()} />}
    </section>
  );
}
