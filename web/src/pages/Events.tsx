import { type ReactNode, useState } from 'react';
import type { AuditEvent, TrafficEvent, TrafficPage as TrafficPageData } from '../api.js';
import { DataTable, Empty, Field, LoadError, PageHeader, ago, fullTime, useResource } from '../ui.js';

export function AuditPage(): ReactNode {
  const events = useResource<AuditEvent[]>('/api/events/audit', 10_000);
  const [filter, setFilter] = useState('');
  const f = filter.trim().toLowerCase();
  const list = (events.data ?? []).filter((e) => f === '' || `${e.activity} ${e.initiator_name} ${e.initiator_email} ${JSON.stringify(e.meta ?? {})}`.toLowerCase().includes(f));
  return (
    <section aria-labelledby="page-title">
      <PageHeader title="Audit events">
        <p>Who changed what, newest first.</p>
      </PageHeader>
      <LoadError error={events.error} />
      <div className="toolbar">
        <Field label="Filter events" className="compact">
          {(p) => <input {...p} type="search" value={filter} onChange={(e) => setFilter(e.target.value)} placeholder="activity, user or detail" />}
        </Field>
      </div>
      {events.data && list.length === 0 && <Empty title="No events" />}
      {list.length > 0 && (
        <ol className="timeline" aria-label="Audit events">
          {list.map((e) => (
            <li key={String(e.id)} className="event">
              <time dateTime={e.timestamp} title={fullTime(e.timestamp)}>
                {ago(e.timestamp)}
              </time>
              <div>
                <strong className="activity">{e.activity}</strong>
                <span className="muted">
                  {' '}
                  by {e.initiator_name || e.initiator_email || 'the system'}
                </span>
                {e.meta && Object.keys(e.meta).length > 0 && (
                  <span className="meta">
                    {Object.entries(e.meta)
                      .slice(0, 4)
                      .map(([k, v]) => `${k}: ${v}`)
                      .join(' · ')}
                  </span>
                )}
              </div>
            </li>
          ))}
        </ol>
      )}
    </section>
  );
}

const PROTO: Record<number, string> = { 1: 'ICMP', 6: 'TCP', 17: 'UDP' };

/**
 * P2P when the reporting peer is an end of the connection; Routed when it forwarded the traffic
 * (a routing peer in front of a network resource or route), as NetBird's dashboard tells them apart.
 */
function connectionType(e: TrafficEvent): 'P2P' | 'Routed' {
  const r = e.reporter_id;
  return r !== undefined && r !== '' && (e.source?.id === r || e.destination?.id === r) ? 'P2P' : 'Routed';
}

export function TrafficPage(): ReactNode {
  const page = useResource<TrafficPageData>('/api/events/network-traffic?page=1&page_size=100', 10_000);
  return (
    <section aria-labelledby="page-title">
      <PageHeader title="Traffic events">
        <p>Connections between peers, as the peers report them (when traffic logging is on).</p>
      </PageHeader>
      <LoadError error={page.error?.status === 404 ? undefined : page.error} />
      {(page.error?.status === 404 || (page.data && page.data.data.length === 0)) && (
        <Empty title="No traffic events yet">
          <p>Peers report connection events once traffic logging is enabled for the account; they will appear here.</p>
        </Empty>
      )}
      {page.data && page.data.data.length > 0 && (
        <DataTable columns={['When', 'Source', 'Destination', 'Connection', 'Protocol', 'Events', 'Bytes rx / tx', 'Policy']}>
              {page.data.data.map((e, i) => (
                <tr key={e.flow_id ?? i} data-flow={e.flow_id}>
                  <td data-label="When" title={fullTime(e.window_start)}>
                    {ago(e.window_start)}
                  </td>
                  <td data-label="Source">
                    {e.source?.name || '—'} <span className="muted mono block">{e.source?.address}</span>
                  </td>
                  <td data-label="Destination">
                    {e.destination?.name || '—'} <span className="muted mono block">{e.destination?.address}</span>
                  </td>
                  <td data-label="Connection">{connectionType(e)}</td>
                  <td data-label="Protocol">{PROTO[e.protocol ?? -1] ?? e.protocol}</td>
                  <td data-label="Events">{(e.events ?? []).map((x) => x.type).join(', ')}</td>
                  <td data-label="Bytes rx / tx">
                    {e.rx_bytes ?? 0} / {e.tx_bytes ?? 0}
                  </td>
                  <td data-label="Policy">{e.policy?.name || '—'}</td>
                </tr>
              ))}
        </DataTable>
      )}
    </section>
  );
}
