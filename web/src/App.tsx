import { type ReactNode, useCallback, useEffect, useState } from 'react';
import { Link, replacePath, usePath } from './router.js';
import { type Credential, type User, api, getCredential, setCredential, setUnauthorizedHandler } from './api.js';
import { AuditPage, TrafficPage } from './pages/Events.js';
import { DnsPage } from './pages/Dns.js';
import { GroupsPage } from './pages/Groups.js';
import { NetworkMapPage } from './pages/NetworkMap.js';
import { FirstPeer, Onboarding } from './pages/Onboarding.js';
import { CALLBACK_PATH, type OidcConfig, finishOidcSignIn, loadDashboardConfig } from './oidc.js';
import { PeerDetailPage } from './pages/PeerDetail.js';
import { PeersPage } from './pages/Peers.js';
import { PostureChecksPage } from './pages/PostureChecks.js';
import { NetworkDetailPage, NetworksPage } from './pages/Networks.js';
import { SettingsPage } from './pages/Settings.js';
import { PoliciesPage } from './pages/Policies.js';
import { RoutesPage } from './pages/Routes.js';
import { SetupKeysPage } from './pages/SetupKeys.js';
import { SignIn } from './pages/SignIn.js';
import { UsersPage } from './pages/Users.js';

interface PageDef {
  path: string;
  label: string;
  render: () => ReactNode;
}

const PAGES: PageDef[] = [
  { path: '/peers', label: 'Peers', render: () => <PeersPage /> },
  { path: '/network', label: 'Network map', render: () => <NetworkMapPage /> },
  { path: '/setup-keys', label: 'Setup keys', render: () => <SetupKeysPage /> },
  { path: '/groups', label: 'Groups', render: () => <GroupsPage /> },
  { path: '/policies', label: 'Access control', render: () => <PoliciesPage /> },
  { path: '/posture-checks', label: 'Posture checks', render: () => <PostureChecksPage /> },
  { path: '/networks', label: 'Networks', render: () => <NetworksPage /> },
  { path: '/routes', label: 'Routes', render: () => <RoutesPage /> },
  { path: '/dns', label: 'DNS', render: () => <DnsPage /> },
  { path: '/users', label: 'Users & tokens', render: () => <UsersPage /> },
  { path: '/events/audit', label: 'Audit events', render: () => <AuditPage /> },
  { path: '/events/traffic', label: 'Traffic events', render: () => <TrafficPage /> },
  { path: '/settings', label: 'Settings', render: () => <SettingsPage /> },
];

/** A page under a list page (/peers/{id}): shown with its list page marked in the navigation. */
function subPage(path: string): { parent: PageDef; render: () => ReactNode } | undefined {
  const m = /^\/(peers|networks)\/([^/]+)$/.exec(path);
  if (!m) return undefined;
  const parent = PAGES.find((p) => p.path === `/${m[1]}`)!;
  const id = decodeURIComponent(m[2]!);
  return { parent, render: () => (m[1] === 'peers' ? <PeerDetailPage key={id} id={id} /> : <NetworkDetailPage key={id} id={id} />) };
}

type Phase =
  | { kind: 'loading' }
  | { kind: 'setup' }
  | { kind: 'signin'; notice?: string }
  | { kind: 'firstPeer'; cred: Credential }
  | { kind: 'app'; user: User }
  | { kind: 'down'; message: string };

export function App(): ReactNode {
  const [phase, setPhase] = useState<Phase>({ kind: 'loading' });
  const [oidc, setOidc] = useState<OidcConfig | null>(null);
  const path = usePath();

  const enter = useCallback(async (cred: Credential | undefined): Promise<void> => {
    if (!cred) {
      setPhase({ kind: 'signin' });
      return;
    }
    setCredential(cred);
    try {
      const user = await api.get<User>('/api/users/current');
      setPhase({ kind: 'app', user });
    } catch {
      setCredential(undefined);
      setPhase({ kind: 'signin', notice: 'Your session has ended. Sign in again.' });
    }
  }, []);

  useEffect(() => {
    setUnauthorizedHandler(() => {
      setCredential(undefined);
      setPhase({ kind: 'signin', notice: 'Your session has ended. Sign in again.' });
    });
    (async () => {
      const cfg = await loadDashboardConfig();
      setOidc(cfg.oidc);
      if (location.pathname === CALLBACK_PATH) {
        // Back from the external identity provider with an authorization code.
        if (!cfg.oidc) {
          replacePath('/');
          setPhase({ kind: 'signin', notice: 'This server has no external identity provider configured.' });
          return;
        }
        try {
          const r = await finishOidcSignIn(cfg.oidc);
          replacePath(r.returnTo.startsWith('/') && r.returnTo !== CALLBACK_PATH ? r.returnTo : '/');
          if (r.firstRun) {
            setCredential(r.cred);
            setPhase({ kind: 'firstPeer', cred: r.cred });
            return;
          }
          await enter(r.cred);
        } catch (e) {
          replacePath('/');
          setPhase({ kind: 'signin', notice: e instanceof Error ? e.message : String(e) });
        }
        return;
      }
      try {
        const inst = await fetch('/api/instance').then((r) => r.json() as Promise<{ setup_required?: boolean }>);
        if (inst.setup_required) {
          setPhase({ kind: 'setup' });
          return;
        }
      } catch {
        setPhase({ kind: 'down', message: 'The management server cannot be reached. Check that netbird-server is running and reload.' });
        return;
      }
      await enter(getCredential());
    })();
  }, [enter]);

  // Move focus to the page title on navigation so screen readers announce the new page.
  useEffect(() => {
    document.getElementById('page-title')?.focus({ preventScroll: true });
  }, [path]);

  if (phase.kind === 'loading') return <div className="center-screen" aria-busy="true">Loading…</div>;
  if (phase.kind === 'down')
    return (
      <main className="center-screen">
        <p role="alert">{phase.message}</p>
      </main>
    );
  if (phase.kind === 'setup') return <Onboarding oidc={oidc} onDone={(cred) => void enter(cred)} />;
  if (phase.kind === 'firstPeer') return <FirstPeer cred={phase.cred} onDone={(cred) => void enter(cred)} />;
  if (phase.kind === 'signin') return <SignIn oidc={oidc} notice={phase.notice} onSignedIn={(cred) => void enter(cred)} />;

  const sub = subPage(path);
  const page = sub?.parent ?? PAGES.find((p) => p.path === path) ?? (path === '/' || path === '' ? PAGES[0]! : undefined);
  const signOut = (): void => {
    setCredential(undefined);
    setPhase({ kind: 'signin', notice: 'Signed out.' });
  };
  return (
    <div className="shell">
      <a className="skip-link" href="#main">
        Skip to content
      </a>
      <aside className="sidebar">
        <div className="brand">
          <img src="/favicon.svg" alt="" width="28" height="28" />
          <span>NetBird</span>
        </div>
        <nav aria-label="Main">
          <ul>
            {PAGES.map((p) => (
              <li key={p.path}>
                <Link to={p.path} current={p === page} className="nav-link">
                  {p.label}
                </Link>
              </li>
            ))}
          </ul>
        </nav>
        <div className="whoami">
          <span className="who" title={phase.user.email}>
            {phase.user.name || phase.user.email}
            <span className="role">{phase.user.role}</span>
          </span>
          <button type="button" className="btn ghost small on-dark" onClick={signOut}>
            Sign out
          </button>
        </div>
      </aside>
      <main id="main" className="content">
        {page ? (
          (sub ?? page).render()
        ) : (
          <section>
            <h1 id="page-title" tabIndex={-1}>
              Page not found
            </h1>
            <p>
              There is no page at <code>{path}</code>. <Link to="/peers">Go to peers</Link>.
            </p>
          </section>
        )}
      </main>
    </div>
  );
}
