import { type FormEvent, type ReactNode, useEffect, useRef, useState } from 'react';
import { ApiError, type Credential, type SetupKey, passwordSignIn, request, setCredential } from '../api.js';
import { type OidcConfig, providerName, startOidcSignIn } from '../oidc.js';
import { CommandText, CopyButton, Field, FormError, errorFor, useSubmit } from '../ui.js';

const FIELDS = ['email', 'name', 'password', 'confirm'];

/** The command a new peer runs to join this server with `key`. */
export function upCommand(key: string): string {
  return `netbird up --management-url ${location.origin} --setup-key ${key}`;
}

/** Step 2 of the first run: a reusable setup key and the exact command for the first peer. */
export function FirstPeer({ cred, onDone }: { cred: Credential; onDone: (c: Credential) => void }): ReactNode {
  const [key, setKey] = useState<string | undefined>(undefined);
  const [error, setError] = useState<string | undefined>(undefined);
  const started = useRef(false);
  useEffect(() => {
    // Once per mount, even under StrictMode's double effects: one key, not two.
    if (started.current) return;
    started.current = true;
    request<SetupKey>('POST', '/api/setup-keys', { name: 'First peers', type: 'reusable', expires_in: 30 * 86400, auto_groups: [], usage_limit: 0 }, cred).then(
      (k) => setKey(k.key),
      (e: unknown) => setError(e instanceof Error ? e.message : String(e)),
    );
  }, [cred]);
  const cmd = key ? upCommand(key) : '';
  return (
    <main className="auth-screen">
      <section className="auth-card wide-card" aria-labelledby="ob-done">
        <p className="step">Step 2 of 2</p>
        <h1 id="ob-done">Add your first peer</h1>
        {error ? (
          <p className="form-error" role="alert">
            Could not create a setup key: {error}. Create one under Setup keys.
          </p>
        ) : (
          <>
            <p>
              Your account is ready. Install NetBird on a machine and run this command there. The setup key is reusable for 30 days; you can
              revoke it under <strong>Setup keys</strong>.
            </p>
            <div className="command" aria-label="netbird up command" aria-busy={!key}>
              {key ? <CommandText testId="up-command" text={cmd} /> : <code data-testid="up-command">Creating a setup key…</code>}
              {key && <CopyButton text={cmd} label="Copy command" />}
            </div>
            <p className="muted">The peer appears on the Peers page as soon as it connects.</p>
          </>
        )}
        <button type="button" className="btn primary wide" onClick={() => onDone(cred)}>
          Open the dashboard
        </button>
      </section>
    </main>
  );
}

/**
 * First run (GET /api/instance says setup_required): create the owner with POST /api/setup (or,
 * with an external identity provider, sign in there: the first user owns the account), then
 * show the setup key and `netbird up` command for the first peer.
 */
export function Onboarding({ onDone, oidc }: { onDone: (c: Credential) => void; oidc?: OidcConfig | null }): ReactNode {
  const [email, setEmail] = useState('');
  const [name, setName] = useState('');
  const [password, setPassword] = useState('');
  const [confirm, setConfirm] = useState('');
  const [done, setDone] = useState<Credential | undefined>(undefined);
  const { busy, error, run } = useSubmit();
  const external = useSubmit();

  const submit = async (e: FormEvent): Promise<void> => {
    e.preventDefault();
    const cred = await run(async () => {
      if (password !== confirm) throw new ApiError(422, 'confirm: the two passwords differ');
      await request('POST', '/api/setup', { email: email.trim(), name: name.trim(), password, create_pat: false });
      return passwordSignIn(email.trim(), password);
    });
    if (cred) {
      setCredential(cred);
      setDone(cred);
    }
  };

  if (done) return <FirstPeer cred={done} onDone={onDone} />;

  return (
    <main className="auth-screen">
      <form noValidate className="auth-card" onSubmit={(e) => void submit(e)} aria-labelledby="ob-title">
        <div className="brand dark">
          <img src="/favicon.svg" alt="" width="32" height="32" />
          <span>NetBird</span>
        </div>
        <p className="step">Step 1 of 2</p>
        <h1 id="ob-title">Welcome! Create the owner account</h1>
        <p className="muted">This server has no users yet. The first account owns the network and can invite others.</p>
        <Field label="E-mail" error={errorFor(error, 'email')}>
          {(p) => <input {...p} type="email" autoComplete="username" required value={email} onChange={(e) => setEmail(e.target.value)} />}
        </Field>
        <Field label="Name" error={errorFor(error, 'name')}>
          {(p) => <input {...p} autoComplete="name" required value={name} onChange={(e) => setName(e.target.value)} />}
        </Field>
        <Field label="Password" hint="At least 8 characters." error={errorFor(error, 'password')}>
          {(p) => <input {...p} type="password" autoComplete="new-password" required value={password} onChange={(e) => setPassword(e.target.value)} />}
        </Field>
        <Field label="Repeat password" error={errorFor(error, 'confirm')}>
          {(p) => <input {...p} type="password" autoComplete="new-password" required value={confirm} onChange={(e) => setConfirm(e.target.value)} />}
        </Field>
        <FormError error={error} fields={FIELDS} />
        <button className="btn primary wide" type="submit" disabled={busy}>
          {busy ? 'Creating…' : 'Create account'}
        </button>
        {oidc && (
          <>
            <p className="or" aria-hidden="true">
              or
            </p>
            <button type="button" className="btn ghost wide" disabled={external.busy} onClick={() => void external.run(() => startOidcSignIn(oidc, '/peers', true))}>
              Sign in with {providerName(oidc)}
            </button>
            <p className="hint">The first person to sign in with the identity provider owns the network.</p>
            <FormError error={external.error} fields={[]} />
          </>
        )}
      </form>
    </main>
  );
}
