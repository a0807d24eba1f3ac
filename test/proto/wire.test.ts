// Wire tests: populated messages of each service are compared with hand-computed protobuf encodings,
// so a renumbered or retyped field fails here.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { flow, management, signalexchange } from '../../src/proto/index.js';
import { encodeCompactPrefix } from '../../src/shared/index.js';

const hexOf = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const ascii = (s: string): string => Buffer.from(s, 'ascii').toString('hex');

test('management: LoginRequest fields 1-5', () => {
  const msg = management.LoginRequest.fromPartial({
    setupKey: 'K', meta: { hostname: 'h' }, jwtToken: 'j',
    peerKeys: { sshPubKey: Buffer.from('s'), wgPubKey: Buffer.from('w') }, dnsLabels: ['a', 'b'],
  });
  assert.equal(hexOf(management.LoginRequest.encode(msg).finish()), '0a014b' + '1203' + '0a0168' + '1a016a' + '2206' + '0a0173' + '120177' + '2a0161' + '2a0162');
});

test('management: PeerSystemMeta flags (17), packed capabilities (18), syncMessageVersion (19)', () => {
  const meta = management.PeerSystemMeta.fromPartial({
    flags: { disableIPv6: true },
    capabilities: [management.PeerCapability.PeerCapabilitySourcePrefixes, management.PeerCapability.PeerCapabilityIPv6Overlay],
    syncMessageVersion: 1,
  });
  assert.equal(hexOf(management.PeerSystemMeta.encode(meta).finish()), '8a0103800101' + '9201020102' + '980101');
  // Decoders accept the unpacked form too.
  assert.deepEqual(management.PeerSystemMeta.decode(hex('9001019001 02')).capabilities, [1, 2]);
});

test('management: SyncResponse keeps presence of message fields', () => {
  const withConfig = management.SyncResponse.fromPartial({
    netbirdConfig: {}, NetworkMap: { Serial: 7, firewallRulesIsEmpty: true }, sessionExpiresAt: { seconds: 0, nanos: 0 },
  });
  assert.equal(hexOf(management.SyncResponse.encode(withConfig).finish()), '0a00' + '2a0408074801' + '3a00');
  const mapOnly = management.SyncResponse.fromPartial({ NetworkMap: { Serial: 7, firewallRulesIsEmpty: true } });
  assert.equal(hexOf(management.SyncResponse.encode(mapOnly).finish()), '2a0408074801');
  const decoded = management.SyncResponse.decode(hex('2a0408074801'));
  assert.equal(decoded.netbirdConfig, undefined);
  assert.equal(decoded.sessionExpiresAt, undefined);
  assert.deepEqual(management.SyncResponse.decode(hex('3a00')).sessionExpiresAt, { seconds: 0, nanos: 0 });
  const v1 = management.SyncResponse.fromPartial({ Version: 1, remotePeersIsEmpty: true });
  assert.equal(hexOf(management.SyncResponse.encode(v1).finish()), '2001' + '4801');
});

test('management: FirewallRule with port range, policy ID and compact source prefix', () => {
  const rule = management.FirewallRule.fromPartial({
    PeerIP: '0.0.0.0', Direction: management.RuleDirection.OUT, Action: management.RuleAction.DROP,
    Protocol: management.RuleProtocol.TCP, Port: '22', PortInfo: { range: { start: 1000, end: 2000 } },
    PolicyID: Buffer.from('r1'), sourcePrefixes: [encodeCompactPrefix('100.64.0.5/32')],
  });
  assert.equal(
    hexOf(management.FirewallRule.encode(rule).finish()),
    '0a07' + ascii('0.0.0.0') + '1001' + '1801' + '2002' + '2a02' + ascii('22') + '3208' + '1206' + '08e807' + '10d00f' + '3a02' + ascii('r1') + '4a05' + '6440000520',
  );
  assert.equal(hexOf(management.PortInfo.encode({ port: 443 }).finish()), '08bb03');
});

test('management: RelayConfig, RemotePeerConfig, NetworkMap numbers', () => {
  assert.equal(
    hexOf(management.RelayConfig.encode({ urls: ['rel://x'], tokenPayload: '1', tokenSignature: 's' }).finish()),
    '0a07' + ascii('rel://x') + '120131' + '1a0173',
  );
  assert.equal(
    hexOf(management.RemotePeerConfig.encode(management.RemotePeerConfig.fromPartial({ wgPubKey: 'k', allowedIps: ['1.2.3.4/32'], fqdn: 'f', agentVersion: 'v' })).finish()),
    '0a016b' + '120a' + ascii('1.2.3.4/32') + '220166' + '2a0176',
  );
  const map = management.NetworkMap.fromPartial({
    remotePeersIsEmpty: true, routesFirewallRulesIsEmpty: true, DNSConfig: { ServiceEnable: true, ForwarderPort: 22054 },
  });
  // 22054 = 0x5626 -> varint a6 ac 01
  assert.equal(hexOf(management.NetworkMap.encode(map).finish()), '2001' + '3206' + '0801' + '20a6ac01' + '5801');
  assert.equal(hexOf(management.ServerKeyResponse.encode({ key: 'k', expiresAt: { seconds: 1, nanos: 0 }, version: 0 }).finish()), '0a016b' + '12020801');
  assert.equal(hexOf(management.EncryptedMessage.encode({ wgPubKey: 'k', body: Buffer.from([9]), version: 3 }).finish()), '0a016b' + '120109' + '1803');
});

test('management: service paths and streaming kinds', () => {
  const svc = management.ManagementServiceService;
  const expected: Record<string, [boolean, boolean]> = {
    login: [false, false], sync: [false, true], getServerKey: [false, false], isHealthy: [false, false],
    getDeviceAuthorizationFlow: [false, false], getPkceAuthorizationFlow: [false, false], syncMeta: [false, false],
    logout: [false, false], job: [true, true], extendAuthSession: [false, false], createExpose: [false, false],
    renewExpose: [false, false], stopExpose: [false, false],
  };
  const paths = Object.values(svc).map((m) => m.path).sort();
  assert.deepEqual(paths, [
    '/management.ManagementService/CreateExpose', '/management.ManagementService/ExtendAuthSession',
    '/management.ManagementService/GetDeviceAuthorizationFlow', '/management.ManagementService/GetPKCEAuthorizationFlow',
    '/management.ManagementService/GetServerKey', '/management.ManagementService/Job', '/management.ManagementService/Login',
    '/management.ManagementService/Logout', '/management.ManagementService/RenewExpose', '/management.ManagementService/StopExpose',
    '/management.ManagementService/Sync', '/management.ManagementService/SyncMeta', '/management.ManagementService/isHealthy',
  ]);
  for (const [name, [reqStream, resStream]] of Object.entries(expected)) {
    const def = (svc as unknown as Record<string, { requestStream: boolean; responseStream: boolean }>)[name];
    assert.ok(def, name);
    assert.equal(def.requestStream, reqStream, name);
    assert.equal(def.responseStream, resStream, name);
  }
});

test('signal: EncryptedMessage uses fields 2, 3, 4', () => {
  const msg = { key: 'a', remoteKey: 'b', body: Buffer.from([1, 2]) };
  assert.equal(hexOf(signalexchange.EncryptedMessage.encode(msg).finish()), '120161' + '1a0162' + '22020102');
  assert.deepEqual(signalexchange.EncryptedMessage.decode(hex('120161 1a0162 22020102')), msg);
});

test('signal: Body fields, packed features and optional fields with explicit presence', () => {
  const body = signalexchange.Body.fromPartial({
    type: signalexchange.Body_Type.CANDIDATE, payload: 'p', wgListenPort: 51820, netBirdVersion: 'v', featuresSupported: [1],
    relayServerAddress: 'rel://r', sessionId: Buffer.from([1, 2, 3, 4, 5]), relayServerIP: Buffer.from([10, 0, 0, 1]),
  });
  assert.equal(
    hexOf(signalexchange.Body.encode(body).finish()),
    '0802' + '120170' + '18ec9403' + '220176' + '320101' + '4207' + ascii('rel://r') + '52050102030405' + '5a040a000001',
  );
  // An optional field set to its default is still sent; an unset one is not.
  assert.equal(hexOf(signalexchange.Body.encode(signalexchange.Body.fromPartial({ relayServerAddress: '' })).finish()), '4200');
  assert.equal(hexOf(signalexchange.Body.encode(signalexchange.Body.fromPartial({})).finish()), '');
  assert.equal(hexOf(signalexchange.Mode.encode({ direct: false }).finish()), '0800');
  assert.equal(signalexchange.Body_Type.GO_IDLE, 5);
  assert.equal(signalexchange.Body_Type.HEARTBEAT, 6);
});

test('signal: service paths', () => {
  const svc = signalexchange.SignalExchangeService;
  assert.equal(svc.send.path, '/signalexchange.SignalExchange/Send');
  assert.equal(svc.connectStream.path, '/signalexchange.SignalExchange/ConnectStream');
  assert.equal(svc.connectStream.requestStream && svc.connectStream.responseStream, true);
  assert.equal(svc.send.requestStream || svc.send.responseStream, false);
});

test('flow: FlowEvent, FlowFields oneof and FlowEventAck', () => {
  const ev = flow.FlowEvent.fromPartial({
    eventId: Buffer.from([0xaa, 0xbb]), timestamp: { seconds: 5, nanos: 0 }, publicKey: Buffer.from([1]),
    flowFields: { type: flow.Type.TYPE_DROP, protocol: 6, portInfo: { sourcePort: 1, destPort: 22 }, rxPackets: 10 },
    isInitiator: true, windowStart: { seconds: 1, nanos: 0 }, windowEnd: { seconds: 2, nanos: 0 },
  });
  assert.equal(
    hexOf(flow.FlowEvent.encode(ev).finish()),
    '0a02aabb' + '12020805' + '1a0101' + '220c' + '1003' + '2806' + '420408011016' + '500a' + '2801' + '32020801' + '3a020802',
  );
  const icmp = flow.FlowFields.fromPartial({ icmpInfo: { icmpType: 8, icmpCode: 0 }, numOfDrops: 2, direction: flow.Direction.EGRESS });
  assert.equal(hexOf(flow.FlowFields.encode(icmp).finish()), '2002' + '4a020808' + '900102');
  assert.equal(hexOf(flow.FlowEventAck.encode({ eventId: Buffer.from([0xaa]), isInitiator: true }).finish()), '0a01aa' + '1001');
  assert.equal(flow.FlowServiceService.events.path, '/flow.FlowService/Events');
  assert.equal(flow.FlowServiceService.events.requestStream && flow.FlowServiceService.events.responseStream, true);
});
