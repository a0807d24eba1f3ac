import { type FormEvent, type ReactNode, useState } from 'react';
import { type Token, type User, api } from '../api.js';
import { DataTable, ConfirmButton, CopyButton, Empty, Field, FormError, LoadError, PageHeader, StatusDot, Switch, ago, errorFor, fullTime, useResource, useSubmit } from '../ui.js';

const ROLES: User['role'][] = ['user', 'admin', 'network_admin', 'auditor', 'billing_admin', 'owner'];

function CreateUser({ onCreated }: { onCreated: (u: User) => void }): ReactNode {
  const [email, setEmail] = useState('');
  const [name, setName] = useState('');
  const [role, setRole] = useState<User['role']>('user');
  const { busy, error, run } = useSubmit();
  const submit = async (e: FormEvent): Promise<void> => {
    e.preventDefault();
    const u = await run(() => api.post<User>('/api/users', { email: email.trim(), name: name.trim(), role, auto_groups: [], is_service_user: false }));
    if (u) {
      setEmail('');
      setName('');
      onCreated(u);
    }
  };
  return (
    <form noValidate className="card form-row" onSubmit={(e) => void submit(e)} aria-labelledby="new-user">
      <h2 id="new-user">Add a user</h2>
      <Field label="E-mail" error={errorFor(error, 'email')}>
        {(p) => <input {...p} type="email" value={email} onChange={(e) => setEmail(e.target.value)} />}
      </Field>
      <Field label="Name" error={errorFor(error, 'name')}>
        {(p) => <input {...p} value={name} onChange={(e) => setName(e.target.value)} />}
      </Field>
      <Field label="Role" error={errorFor(error, 'role')}>
        {(p) => (
          <select {...p} value={role} onChange={(e) => setRole(e.target.value as User['role'])}>
            {ROLES.filter((r) => r !== 'owner').map((r) => (
              <option key={r} value={r}>
                {r.replace('_', ' ')}
              </option>
            ))}
          </select>
        )}
      </Field>
      <FormError error={error} fields={['email', 'name', 'role', 'auto_groups']} />
      <button type="submit" className="btn primary" disabled={busy}>
        Add user
      </button>
    </form>
  );
}

function Tokens({ user }: { user: User }): ReactNode {
  const tokens = useResource<Token[]>(`/api/users/${user.id}/tokens`);
  const [name, setName] = useState('');
  const [days, setDays] = useState('30');
  const [plain, setPlain] = useState<string | undefined>(undefined);
  const { busy, error, run } = useSubmit();
  const action = useSubmit();
  const submit = async (e: FormEvent): Promise<void> => {
    e.preventDefault();
    const r = await run(() => api.post<{ plain_token: string }>(`/api/users/${user.id}/tokens`, { name: name.trim(), expires_in: Math.round(Number(days)) }));
    if (r) {
      setPlain(r.plain_token);
      setName('');
      await tokens.reload();
    }
  };
  return (
    <section className="card" aria-labelledby="tokens-title">
      <h2 id="tokens-title">Your access tokens</h2>
      <p className="muted">Personal access tokens authenticate scripts and the API (Authorization: Token …) as you.</p>
      <form noValidate className="form-row" onSubmit={(e) => void submit(e)} aria-label="Create an access token">
        <Field label="Token name" error={errorFor(error, 'name')}>
          {(p) => <input {...p} value={name} onChange={(e) => setName(e.target.value)} placeholder="e.g. ci" />}
        </Field>
        <Field label="Expires in (days)" error={errorFor(error, 'expires_in')}>
          {(p) => <input {...p} type="number" min={1} max={365} value={days} onChange={(e) => setDays(e.target.value)} />}
        </Field>
        <FormError error={error} fields={['name', 'expires_in']} />
        <button type="submit" className="btn primary" disabled={busy}>
          Create token
        </button>
      </form>
      {plain && (
        <div className="highlight inner" role="status">
          <p>Copy the token now: it is shown only once.</p>
          <div className="command">
            <code data-testid="new-token">{plain}</code>
            <CopyButton text={plain} label="Copy token" />
          </div>
        </div>
      )}
      <LoadError error={tokens.error ?? action.error} />
      {tokens.data && tokens.data.length === 0 && <p className="muted">No tokens.</p>}
      {tokens.data && tokens.data.length > 0 && (
        <ul className="token-list">
          {tokens.data.map((t) => (
            <li key={t.id}>
              <strong>{t.name}</strong>
              <span className="muted" title={fullTime(t.expiration_date)}>
                expires {ago(t.expiration_date)}, last used {ago(t.last_used)}
              </span>
              <ConfirmButton
                className="small"
                label="Revoke"
                confirmLabel={`Revoke ${t.name}?`}
                onConfirm={async () => {
                  if (await action.run(() => api.del(`/api/users/${user.id}/tokens/${t.id}`))) await tokens.reload();
                }}
              />
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}

export function UsersPage(): ReactNode {
  const users = useResource<User[]>('/api/users');
  const me = useResource<User>('/api/users/current');
  const [created, setCreated] = useState<User | undefined>(undefined);
  const action = useSubmit();
  return (
    <section aria-labelledby="page-title">
      <PageHeader title="Users & tokens" />
      {me.data && <Tokens user={me.data} />}
      <CreateUser
        onCreated={(u) => {
          setCreated(u);
          void users.reload();
        }}
      />
      {created?.password && (
        <div className="card highlight" role="status">
          <p>
            {created.email} can sign in with this password (shown once; they should change it):
          </p>
          <div className="command">
            <code>{created.password}</code>
            <CopyButton text={created.password} label="Copy password" />
          </div>
        </div>
      )}
      <LoadError error={users.error} />
      <FormError error={action.error} fields={[]} />
      {users.data && users.data.length === 0 && <Empty title="No users" />}
      {users.data && users.data.length > 0 && (
        <DataTable columns={['Name', 'Role', 'Status', 'Last login']} actions>
              {users.data.map((u) => (
                <tr key={u.id}>
                  <td data-label="Name">
                    <strong>{u.name}</strong>
                    {u.is_current && <span className="badge">you</span>}
                    <span className="muted block">{u.is_service_user ? 'service user' : u.email}</span>
                  </td>
                  <td data-label="Role">
                    {u.is_current || u.role === 'owner' ? (
                      u.role.replace('_', ' ')
                    ) : (
                      <select
                        aria-label={`Role of ${u.name}`}
                        value={u.role}
                        onChange={async (e) => {
                          const role = e.target.value as User['role'];
                          if (await action.run(() => api.put(`/api/users/${u.id}`, { role, auto_groups: u.auto_groups, is_blocked: u.is_blocked }))) await users.reload();
                        }}
                      >
                        {ROLES.filter((r) => r !== 'owner').map((r) => (
                          <option key={r} value={r}>
                            {r.replace('_', ' ')}
                          </option>
                        ))}
                      </select>
                    )}
                  </td>
                  <td data-label="Status">
                    <span className="status-cell">
                      <StatusDot state={u.is_blocked ? 'warn' : 'online'} label={u.status} />
                      {!u.is_current && u.role !== 'owner' && (
                        <Switch
                          label={`${u.name} may sign in`}
                          checked={!u.is_blocked}
                          onChange={async (v) => {
                            if (await action.run(() => api.put(`/api/users/${u.id}`, { role: u.role, auto_groups: u.auto_groups, is_blocked: !v }))) await users.reload();
                          }}
                        />
                      )}
                    </span>
                  </td>
                  <td data-label="Last login" title={fullTime(u.last_login)}>
                    {ago(u.last_login)}
                  </td>
                  <td className="actions">
                    {!u.is_current && u.role !== 'owner' && (
                      <ConfirmButton
                        className="small"
                        label="Delete"
                        confirmLabel={`Delete ${u.name}?`}
                        onConfirm={async () => {
                          if (await action.run(() => api.del(`/api/users/${u.id}`))) await users.reload();
                        }}
                      />
                    )}
                  </td>
                </tr>
              ))}
        </DataTable>
      )}
    </section>
  );
}
