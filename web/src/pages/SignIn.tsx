import { type FormEvent, type ReactNode, useState } from 'react';
import { ApiError, type Credential, type User, passwordSignIn, request } from '../api.js';
import { type OidcConfig, providerName, startOidcSignIn } from '../oidc.js';
import { Field, FormError, useSubmit } from '../ui.js';

/**
 * Sign-in: e-mail and password at the embedded identity provider (its token endpoint), or a
 * personal access token for headless setups (e.g. the one POST /api/setup returned).
 */
export function SignIn({ onSignedIn, notice, oidc }: { onSignedIn: (c: Credential) => void; notice?: string; oidc?: OidcConfig | null }): ReactNode {
  const external = useSubmit();
  const [mode, setMode] = useState<'password' | 'token'>('password');
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const [token, setToken] = useState('');
  const { busy, error, run, clear } = useSubmit();

  const submit = async (e: FormEvent): Promise<void> => {
    e.preventDefault();
    const cred = await run(async () => {
      if (mode === 'password') return passwordSignIn(email.trim(), password);
      const c: Credential = { kind: 'pat', token: token.trim() };
      if (c.token === '') throw new ApiError(422, 'token: paste a personal access token');
      await request<User>('GET', '/api/users/current', undefined, c).catch((err: unknown) => {
        if (err instanceof ApiError && err.status === 401) throw new ApiError(401, 'token: this token is not valid (wrong, expired or revoked)');
        throw err;
      });
      return c;
    });
    if (cred) onSignedIn(cred);
  };

  return (
    <main className="auth-screen">
      <form noValidate className="auth-card" onSubmit={(e) => void submit(e)}>
        <div className="brand dark">
          <img src="/favicon.svg" alt="" width="32" height="32" />
          <span>NetBird</span>
        </div>
        <h1>Sign in</h1>
        {notice && <p className="notice" role="status">{notice}</p>}
        {oidc && (
          <>
            <button type="button" className="btn primary wide" disabled={external.busy} onClick={() => void external.run(() => startOidcSignIn(oidc, location.pathname, false))}>
              Sign in with {providerName(oidc)}
            </button>
            <FormError error={external.error} fields={[]} />
            <p className="or" aria-hidden="true">
              or
            </p>
          </>
        )}
        <div className="tabs" role="group" aria-label="Sign-in method">
          {(['password', 'token'] as const).map((m) => (
            <button
              key={m}
              type="button"
              aria-pressed={mode === m}
              className={`tab ${mode === m ? 'active' : ''}`}
              onClick={() => {
                setMode(m);
                clear();
              }}
            >
              {m === 'password' ? 'E-mail & password' : 'Access token'}
            </button>
          ))}
        </div>
        {mode === 'password' ? (
          <>
            <Field label="E-mail">
              {(p) => <input {...p} type="email" autoComplete="username" required value={email} onChange={(e) => setEmail(e.target.value)} />}
            </Field>
            <Field label="Password" error={error && error.field === undefined ? error.message : undefined}>
              {(p) => <input {...p} type="password" autoComplete="current-password" required value={password} onChange={(e) => setPassword(e.target.value)} />}
            </Field>
          </>
        ) : (
          <Field label="Personal access token" hint="Create one under Users & tokens, or use the one POST /api/setup returned." error={error ? error.text : undefined}>
            {(p) => <input {...p} type="password" autoComplete="off" spellCheck={false} value={token} onChange={(e) => setToken(e.target.value)} />}
          </Field>
        )}
        <button className="btn primary wide" type="submit" disabled={busy}>
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
      </form>
    </main>
  );
}
