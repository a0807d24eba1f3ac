/**
 * ICE (RFC 8445) NAT traversal for WireGuard peers, wire-compatible with the Pion ICE agents of
 * official NetBird clients (protocol.md §6, §9).
 *
 *   const mux = new IceMux(await createUdpBind({ port: 51820 }));   // shared WireGuard/ICE socket
 *   const device = new Device({ ..., binds: [mux, relayBind] });      // WireGuard receives non-STUN
 *   const agent = new IceAgent({ mux, controlling: myKey > theirKey, servers: [{ url: 'stun:stun.example:3478' },
 *                               { url: 'turn:turn.example:3478?transport=udp', username, password }] });
 *   agent.on('candidate', (_c, text) => signal.send(peer, { type: CANDIDATE, payload: text }));
 *   agent.on('selected', (p) => device.setPeerEndpoint(peer, p.endpoint));  // direct (or TURN) path
 *   agent.on('state', (s) => s === 'disconnected' && fallBackToRelay());
 *   await agent.gather();  agent.setRemoteCredentials(ufrag, pwd);  agent.addRemoteCandidate(text);
 *   `${agent.localUfrag}:${agent.localPwd}` is the OFFER/ANSWER payload, agent.sessionId its sessionId.
 *
 * IceSession wraps an agent per remote peer the way the engine needs it (protocol.md §6.2-§6.4):
 *   const ice = new IceSession({ mux, controlling, servers: () => servers, sendCandidate, requestOffer,
 *                                onDirect: (p) => device.setPeerEndpoint(peer, p.endpoint), onLost: () => backToRelay() });
 *   ice.credentials                      // { payload: "ufrag:pwd" | ":", sessionId } for OFFER/ANSWER
 *   ice.onRemoteCredentials(payload, sessionId, relayOnBoth); ice.onRemoteCandidate(text);
 *   ice.networkChanged(); ice.status();  // P2P/relayed, candidate types and endpoints, latency (ns)
 * watchHostAddresses(cb) polls interface addresses for network changes.
 */
export { IceAgent } from './agent.js';
export type { IceAgentOptions, IceAgentEvents, IceServer, IceState, IceLogger, SelectedPath } from './agent.js';
export { IceMux, endpointAddress } from './mux.js';
export type { IceBase, StunSink } from './mux.js';
export { TurnRelay, TurnEndpoint } from './turn.js';
export type { TurnRelayOptions } from './turn.js';
export {
  parseCandidate, formatCandidate, candidatePriority, candidateFoundation, pairPriority, hasLiteralAddress, hostPort,
  CandidateParseError, TYPE_PREFERENCE,
} from './candidate.js';
export type { Candidate, CandidateType } from './candidate.js';
export {
  buildCheckRequest, buildCheckSuccess, buildCheckError, buildBindingIndication, parseCheckRequest, parseCheckResponse,
} from './checks.js';
export type { CheckRequestParams, ParsedCheckRequest, CheckRequestResult, CheckResponse } from './checks.js';
export { parseIceUrl, IceUrlError } from './url.js';
export type { IceUrl } from './url.js';
export { IceSession } from './session.js';
export type { IceSessionOptions, IceStatus } from './session.js';
export { watchHostAddresses } from './netwatch.js';
