import { Fragment, type ReactNode, useCallback, useEffect, useId, useRef, useState } from 'react';
import { ApiError, type Peer, api } from './api.js';
import { Link } from './router.js';

/** Loads `path` (GET), reloads on demand and, with `refreshMs`, on a timer while the page is visible. */
export function useResource<T>(path: string | undefined, refreshMs?: number): { data: T | undefined; error: ApiError | undefined; reload: () => Promise<void> } {
  const [data, setData] = useState<T | undefined>(undefined);
  const [error, setError] = useState<ApiError | undefined>(undefined);
  const alive = useRef(true);
  const reload = useCallback(async (): Promise<void> => {
    if (!path) return;
    try {
      const d = await api.get<T>(path);
      if (!alive.current) return;
      setData(d);
      setError(undefined);
    } catch (e) {
      if (alive.current) setError(e instanceof ApiError ? e : new ApiError(0, String(e)));
    }
  }, [path]);
  useEffect(() => {
    alive.current = true;
    void reload();
    let timer: ReturnType<typeof setInterval> | undefined;
    if (refreshMs) {
      timer = setInterval(() => {
        if (document.visibilityState === 'visible') void reload();
      }, refreshMs);
    }
    return () => {
      alive.current = false;
      if (timer) clearInterval(timer);
    };
  }, [reload, refreshMs]);
  return { data, error, reload };
}

/** Runs an API call for a form: keeps its error to show next to the field it names. */
export function useSubmit(): { busy: boolean; error: ApiError | undefined; run: <T>(fn: () => Promise<T>) => Promise<T | undefined>; clear: () => void } {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError | undefined>(undefined);
  const run = useCallback(async <T,>(fn: () => Promise<T>): Promise<T | undefined> => {
    setBusy(true);
    setError(undefined);
    try {
      return await fn();
    } catch (e) {
      setError(e instanceof ApiError ? e : new ApiError(0, e instanceof Error ? e.message : String(e)));
      return undefined;
    } finally {
      setBusy(false);
    }
  }, []);
  return { busy, error, run, clear: () => setError(undefined) };
}

/** The error's text when it names `field` (or a sub-field of it, like rules.0.ports for "ports"). */
export function errorFor(error: ApiError | undefined, ...fields: string[]): string | undefined {
  const f = error?.field;
  if (!error || !f) return undefined;
  const last = f.split('.').at(-1)!;
  return fields.some((x) => x === f || x === last || f.startsWith(x + '.')) ? error.text : undefined;
}

/** An error no field of the form claims: shown above the form's buttons. */
export function FormError({ error, fields }: { error: ApiError | undefined; fields: string[] }): ReactNode {
  if (!error) return null;
  if (errorFor(error, ...fields)) return null;
  return (
    <p className="form-error" role="alert">
      {error.message}
    </p>
  );
}

export function Field(props: {
  label: string;
  error?: string;
  hint?: string;
  children: (p: { id: string; 'aria-invalid': boolean; 'aria-describedby': string | undefined }) => ReactNode;
  className?: string;
}): ReactNode {
  const id = useId();
  const errId = `${id}-err`;
  const hintId = `${id}-hint`;
  const described = [props.error ? errId : '', props.hint ? hintId : ''].filter(Boolean).join(' ') || undefined;
  return (
    <div className={`field ${props.className ?? ''}`}>
      <label htmlFor={id}>{props.label}</label>
      {props.children({ id, 'aria-invalid': props.error !== undefined, 'aria-describedby': described })}
      {props.hint && (
        <span className="hint" id={hintId}>
          {props.hint}
        </span>
      )}
      {props.error && (
        <span className="field-error" id={errId} role="alert">
          {props.error}
        </span>
      )}
    </div>
  );
}

export function Switch({ checked, onChange, label, disabled }: { checked: boolean; onChange: (v: boolean) => void; label: string; disabled?: boolean }): ReactNode {
  return (
    <button type="button" role="switch" aria-checked={checked} aria-label={label} className={`switch ${checked ? 'on' : ''}`} disabled={disabled} onClick={() => onChange(!checked)}>
      <span className="knob" aria-hidden="true" />
    </button>
  );
}

/** A delete/revoke button that asks once more in place (no modal to trap focus in). */
export function ConfirmButton({ label, confirmLabel, onConfirm, className }: { label: string; confirmLabel?: string; onConfirm: () => void | Promise<void>; className?: string }): ReactNode {
  const [armed, setArmed] = useState(false);
  useEffect(() => {
    if (!armed) return;
    const t = setTimeout(() => setArmed(false), 5000);
    return () => clearTimeout(t);
  }, [armed]);
  return (
    <button
      type="button"
      className={`btn ${armed ? 'danger' : 'ghost'} ${className ?? ''}`}
      onClick={() => {
        if (armed) {
          setArmed(false);
          void onConfirm();
        } else setArmed(true);
      }}
    >
      {armed ? (confirmLabel ?? `Confirm: ${label.toLowerCase()}`) : label}
    </button>
  );
}

export function CopyButton({ text, label = 'Copy' }: { text: string; label?: string }): ReactNode {
  const [done, setDone] = useState(false);
  return (
    <button
      type="button"
      className="btn ghost small"
      onClick={() => {
        const ok = (): void => {
          setDone(true);
          setTimeout(() => setDone(false), 1500);
        };
        if (navigator.clipboard) navigator.clipboard.writeText(text).then(ok, ok);
        else ok();
      }}
    >
      <span aria-live="polite">{done ? 'Copied' : label}</span>
    </button>
  );
}

/**
 * A table with a header row of `columns` (plus a screen-reader-only "Actions" header when the rows end
 * with buttons); rows go in as children. On small screens CSS turns rows into cards (data-label cells).
 */
export function DataTable({ columns, actions, children }: { columns: string[]; actions?: boolean; children: ReactNode }): ReactNode {
  return (
    <div className="table-wrap">
      <table className="table responsive">
        <thead>
          <tr>
            {columns.map((c) => (
              <th scope="col" key={c}>
                {c}
              </th>
            ))}
            {actions && (
              <th scope="col">
                <span className="sr-only">Actions</span>
              </th>
            )}
          </tr>
        </thead>
        <tbody>{children}</tbody>
      </table>
    </div>
  );
}

/** The row under a form: its primary submit button (disabled while busy) and any further controls. */
/** The form's submit button; `saved` announces a finished save next to it. */
export function SubmitRow({ label, busy, saved, children }: { label: string; busy: boolean; saved?: boolean; children?: ReactNode }): ReactNode {
  return (
    <div className="form-actions">
      <button type="submit" className="btn primary" disabled={busy}>
        {label}
      </button>
      {saved && (
        <span role="status" className="muted">
          Saved.
        </span>
      )}
      {children}
    </div>
  );
}

export function Empty({ title, children }: { title: string; children?: ReactNode }): ReactNode {
  return (
    <div className="empty">
      <p className="empty-title">{title}</p>
      {children}
    </div>
  );
}

export function LoadError({ error }: { error: ApiError | undefined }): ReactNode {
  if (!error) return null;
  return (
    <p className="form-error" role="alert">
      Could not load: {error.message}
    </p>
  );
}

export function PageHeader({ title, children }: { title: string; children?: ReactNode }): ReactNode {
  return (
    <header className="page-header">
      <h1 tabIndex={-1} id="page-title">
        {title}
      </h1>
      {children && <div className="page-intro">{children}</div>}
    </header>
  );
}

/** Multi-select of groups as a checkbox list (works with keyboard and screen readers without a widget library). */
export function GroupPicker({ groups, value, onChange, label, error, name }: { groups: Array<{ id: string; name: string }>; value: string[]; onChange: (v: string[]) => void; label: string; error?: string; name: string }): ReactNode {
  const id = useId();
  return (
    <fieldset className="field group-picker" aria-describedby={error ? `${id}-err` : undefined} aria-invalid={error !== undefined}>
      <legend>{label}</legend>
      <div className="chips-select">
        {groups.length === 0 && <span className="hint">No groups yet.</span>}
        {groups.map((g) => (
          <label key={g.id} className={`chip-check ${value.includes(g.id) ? 'checked' : ''}`}>
            <input type="checkbox" name={name} checked={value.includes(g.id)} onChange={(e) => onChange(e.target.checked ? [...value, g.id] : value.filter((x) => x !== g.id))} />
            {g.name}
          </label>
        ))}
      </div>
      {error && (
        <span className="field-error" id={`${id}-err`} role="alert">
          {error}
        </span>
      )}
    </fieldset>
  );
}

export function Chips({ items, label = 'groups' }: { items: string[]; label?: string }): ReactNode {
  if (items.length === 0) return <span className="muted">—</span>;
  return (
    <ul className="chips" aria-label={label}>
      {items.map((x) => (
        <li key={x} className="chip">
          {x}
        </li>
      ))}
    </ul>
  );
}

const ZERO = '0001-01-01T00:00:00Z';

export function ago(iso: string | undefined, now = Date.now()): string {
  if (!iso || iso === ZERO || iso.startsWith('0001-')) return 'never';
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return 'never';
  const s = Math.round((now - t) / 1000);
  if (s < 0) {
    const f = -s;
    if (f < 3600) return `in ${Math.max(1, Math.round(f / 60))} min`;
    if (f < 86400 * 2) return `in ${Math.round(f / 3600)} h`;
    return `in ${Math.round(f / 86400)} days`;
  }
  if (s < 10) return 'just now';
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} days ago`;
}

export function fullTime(iso: string | undefined): string {
  if (!iso || iso.startsWith('0001-')) return '';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? '' : d.toLocaleString();
}

export function StatusDot({ state, label }: { state: 'online' | 'offline' | 'warn'; label: string }): ReactNode {
  return (
    <span className={`status status-${state}`}>
      <span className="dot" aria-hidden="true" />
      {label}
    </span>
  );
}

/** The account's DNS domain (peers are reachable as label.domain); undefined until loaded. */
export function useDnsDomain(): string | undefined {
  const { data } = useResource<Array<{ settings: { dns_domain?: string } }>>('/api/accounts');
  return data?.[0]?.settings.dns_domain;
}

/** A peer's full DNS name: the reference sends the FQDN, older stores only the label. */
export function dnsName(label: string, domain: string | undefined): string {
  if (label === '' || label.includes('.') || !domain) return label;
  return `${label}.${domain}`;
}

/** A shell command that wraps only between arguments (never inside "--setup-key"). */
export function CommandText({ text, testId }: { text: string; testId?: string }): ReactNode {
  const words = text.split(' ');
  return (
    <code data-testid={testId}>
      {words.map((w, i) => (
        <Fragment key={i}>
          <span className="nowrap">{w}</span>
          {i < words.length - 1 ? ' ' : ''}
        </Fragment>
      ))}
    </code>
  );
}

/** A choice of one peer (name and overlay IP), e.g. the routing peer of a route or network. */
export function PeerSelect({ label, peers, value, onChange, error }: { label: string; peers: Peer[]; value: string; onChange: (id: string) => void; error?: string }): ReactNode {
  return (
    <Field label={label} error={error}>
      {(p) => (
        <select {...p} value={value} onChange={(e) => onChange(e.target.value)}>
          <option value="">Choose a peer…</option>
          {peers.map((x) => (
            <option key={x.id} value={x.id}>
              {x.name} ({x.ip})
            </option>
          ))}
        </select>
      )}
    </Field>
  );
}

/** A detail page before its object is there: loading, or the server's answer (e.g. not found), with the way back. */
export function DetailPending({ title, back, backLabel, error }: { title: string; back: string; backLabel: string; error: ApiError | undefined }): ReactNode {
  return (
    <section aria-labelledby="page-title">
      <PageHeader title={title}>
        <p>
          <Link to={back}>{backLabel}</Link>
        </p>
      </PageHeader>
      {error ? <LoadError error={error} /> : <p aria-busy="true">Loading…</p>}
    </section>
  );
}
