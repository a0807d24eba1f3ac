/**
 * Traffic flow events (protocol.md §8): the collector side (receiver + store + REST mapping) and the
 * peer side (stream client, bounded ack-based queue, per-window aggregation of the filter's events).
 *
 * Collector (netbird-server):
 *   const store = await KyselyFlowStore.open({ db: kyselyOrSqlitePath, retentionDays: 30 });
 *   const rx = createFlowReceiver({ secret, store, resolveReporter: (key) => ({ peerId, accountId, userId }) });
 *   grpcServer.addService(rx.service, rx.implementation);
 * Management: FlowConfig { url, ...issueFlowToken(secret, ttl) → tokenPayload/tokenSignature, interval, enabled, counters }.
 * REST: GET /api/events/network-traffic →
 *   toNetworkTrafficEventsResponse(await store.query({ ...parseNetworkTrafficQuery(req.query), accountId }), directory)
 * Peer (client daemon):
 *   const rep = new FlowReporter({ url, tokenPayload, tokenSignature, intervalMs, counters, publicKey });
 *   rep.start(); filter.onConnection = (ev) => rep.record(ev); … rep.close();
 *   On a FlowConfig change: new FlowReporter({ ...cfg, queue: old.queue }) keeps the unacked events.
 */
export { ExponentialBackoff, FLOW_BACKOFF_MAX_ELAPSED_MS, flowBackoffOptions } from './backoff.js';
export type { BackoffOptions } from './backoff.js';
export { FlowUrlError, parseFlowTarget } from './target.js';
export type { FlowTarget } from './target.js';
export { flowAuthorizationValue, issueFlowToken, parseFlowAuthorization, verifyFlowAuthorization } from './token.js';
export type { FlowToken, FlowTokenCheck } from './token.js';
export type { FlowLogger } from './log.js';
export { silentFlowLogger } from './log.js';
export {
  FLOW_DIRECTION_NUMBER,
  FLOW_TYPE_NUMBER,
  FlowEventInvalidError,
  flowDirectionFromNumber,
  flowEventToRecord,
  flowTypeFromNumber,
  isIcmpProtocol,
  msToTimestamp,
  newFlowUuid,
  timestampToMs,
  uuidToString,
} from './model.js';
export type { FlowConnectionEvent, FlowDirection, FlowEventRecord, FlowEventType, FlowReporterIdentity } from './model.js';
export {
  FLOW_EVENTS_TABLE,
  FLOW_QUERY_DEFAULT_PAGE_SIZE,
  FLOW_QUERY_MAX_PAGE_SIZE,
  FlowStoreClosedError,
  KyselyFlowStore,
  migrateFlowStore,
} from './store.js';
export type { FlowEventPage, FlowEventQuery, FlowStore, KyselyFlowStoreOptions } from './store.js';
export { FlowQueryError, parseNetworkTrafficQuery, toNetworkTrafficEvent, toNetworkTrafficEventsResponse } from './api.js';
export type {
  FlowEndpointInfo,
  FlowEventDirectory,
  NetworkTrafficEndpoint,
  NetworkTrafficEvent,
  NetworkTrafficEventsResponse,
  NetworkTrafficICMP,
  NetworkTrafficLocation,
  NetworkTrafficPolicy,
  NetworkTrafficSubEvent,
  NetworkTrafficUser,
} from './api.js';
export { createFlowReceiver } from './receiver.js';
export type { FlowReceiver, FlowReceiverOptions, FlowReceiverStats } from './receiver.js';
export {
  FlowClient,
  FlowClientBusyError,
  FlowClientClosedError,
  FlowRetryExhaustedError,
  FlowStreamEndedError,
  FlowStreamNotReadyError,
} from './client.js';
export type { FlowClientOptions, FlowReceiveEnd, FlowReceiveOptions } from './client.js';
export { FlowEventQueue } from './queue.js';
export type { FlowEventQueueOptions, FlowEventQueueStats } from './queue.js';
export { FlowAggregator } from './aggregator.js';
export type { FlowAggregatorOptions } from './aggregator.js';
export { FlowReporter } from './reporter.js';
export type { FlowReporterOptions, FlowReporterStats } from './reporter.js';
