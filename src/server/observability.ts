import type { IncomingMessage, ServerResponse } from 'node:http';
import { Gauge, Registry, collectDefaultMetrics } from 'prom-client';

/** What the health and metrics endpoints read from the running servers. */
export interface ServerProbes {
  syncStreams(): number;
  syncStats(): { mapsComputed: number; mapsSent: number; configsSent: number };
  signalStats(): { peers: number; forwarded: number; dropped: number; evicted: number };
  relayStats(): { connections: number; peers: number; forwardedMessages: number; forwardedBytes: number; droppedMessages: number; authFailures: number };
  stunStats(): { answered: number; dropped: number } | undefined;
  /** The listener's admission control (connections that have not made a request yet). */
  admissionStats?(): { pending: number; evicted: number; timedOut: number };
  /** Resolves when the store answers a trivial query. */
  storeHealthy(): Promise<boolean>;
}

export const HEALTH_PATH = '/health';
export const METRICS_PATH = '/metrics';

/**
 * GET /health (JSON, 503 when the store does not answer) and GET /metrics (Prometheus text format).
 * Gauges are read at scrape time from the components' own counters, so nothing is counted twice.
 */
export class Observability {
  readonly registry = new Registry();

  constructor(private readonly probes: ServerProbes) {
    collectDefaultMetrics({ register: this.registry, prefix: 'netbird_server_' });
    const gauge = (name: string, help: string, read: () => number | undefined): void => {
      new Gauge({
        name, help, registers: [this.registry],
        collect(this: Gauge) {
          const v = read();
          if (v !== undefined) this.set(v);
        },
      });
    };
    gauge('netbird_management_sync_streams', 'Connected management Sync streams (peers online).', () => probes.syncStreams());
    gauge('netbird_management_maps_computed_total', 'Network maps computed since start.', () => probes.syncStats().mapsComputed);
    gauge('netbird_management_maps_sent_total', 'Network map updates sent since start.', () => probes.syncStats().mapsSent);
    gauge('netbird_management_configs_sent_total', 'Config-only (credential refresh) messages sent since start.', () => probes.syncStats().configsSent);
    gauge('netbird_signal_peers', 'Peers registered on the signal server.', () => probes.signalStats().peers);
    gauge('netbird_signal_forwarded_total', 'Signal messages forwarded.', () => probes.signalStats().forwarded);
    gauge('netbird_signal_dropped_total', 'Signal messages for absent peers.', () => probes.signalStats().dropped);
    gauge('netbird_relay_connections', 'Open relay WebSocket connections.', () => probes.relayStats().connections);
    gauge('netbird_relay_peers', 'Authenticated relay peers.', () => probes.relayStats().peers);
    gauge('netbird_relay_forwarded_messages_total', 'Relay transport messages forwarded.', () => probes.relayStats().forwardedMessages);
    gauge('netbird_relay_forwarded_bytes_total', 'Relay transport bytes forwarded.', () => probes.relayStats().forwardedBytes);
    gauge('netbird_relay_dropped_messages_total', 'Relay transport messages dropped.', () => probes.relayStats().droppedMessages);
    gauge('netbird_relay_auth_failures_total', 'Relay connections refused for a bad or expired token.', () => probes.relayStats().authFailures);
    gauge('netbird_stun_answered_total', 'STUN binding requests answered.', () => probes.stunStats()?.answered);
    gauge('netbird_stun_dropped_total', 'STUN datagrams dropped.', () => probes.stunStats()?.dropped);
    gauge('netbird_server_pending_connections', 'Accepted connections that have not made a request yet.', () => probes.admissionStats?.().pending);
    gauge('netbird_server_evicted_connections_total', 'Pending connections closed to make room (per-address or total limit).', () => probes.admissionStats?.().evicted);
    gauge('netbird_server_handshake_timeouts_total', 'Pending connections closed for making no request in time.', () => probes.admissionStats?.().timedOut);
  }

  /** Serves the two endpoints; returns false for any other request. */
  handle(req: IncomingMessage, res: ServerResponse): boolean {
    const path = (req.url ?? '/').split('?')[0];
    if (path !== HEALTH_PATH && path !== METRICS_PATH) return false;
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'application/json' }).end(JSON.stringify({ message: 'method not allowed', code: 405 }));
      return true;
    }
    void (async () => {
      try {
        if (path === METRICS_PATH) {
          const body = await this.registry.metrics();
          res.writeHead(200, { 'content-type': this.registry.contentType }).end(body);
          return;
        }
        const store = await this.probes.storeHealthy().catch(() => false);
        const body = {
          status: store ? 'ok' : 'degraded',
          store: store ? 'ok' : 'unreachable',
          management: { sync_streams: this.probes.syncStreams() },
          signal: { peers: this.probes.signalStats().peers },
          relay: { peers: this.probes.relayStats().peers },
          stun: this.probes.stunStats() !== undefined,
        };
        res.writeHead(store ? 200 : 503, { 'content-type': 'application/json' }).end(JSON.stringify(body));
      } catch (e) {
        res.writeHead(500, { 'content-type': 'application/json' }).end(JSON.stringify({ message: (e as Error).message, code: 500 }));
      }
    })();
    return true;
  }
}
