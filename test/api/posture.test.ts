import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type Peer, type PostureCheck, emptyPeerMeta, postureCheckFailure } from '../../src/management/index.js';

/** Posture-check evaluation for network maps (a source peer failing a check is left out of the policy). */

const peer = (meta: Partial<Peer['meta']>): Peer =>
  ({ id: 'p', meta: { ...emptyPeerMeta(), ...meta } }) as Peer;
const check = (checks: Record<string, unknown>): PostureCheck => ({ id: 'c', accountId: 'a', name: 'c', description: '', checks });

test('posture checks: versions, OS, network ranges, unknowable data', () => {
  const nb = check({ nb_version_check: { min_version: '0.60.0' } });
  assert.equal(postureCheckFailure(nb, peer({ netbirdVersion: '0.60.2' })), undefined);
  assert.match(postureCheckFailure(nb, peer({ netbirdVersion: '0.59.9' }))!, /older/);
  assert.equal(postureCheckFailure(nb, peer({ netbirdVersion: 'development' })), undefined, 'dev builds count as newest');

  const os = check({ os_version_check: { linux: { min_kernel_version: '5.10' }, darwin: { min_version: '13.0' } } });
  assert.equal(postureCheckFailure(os, peer({ goOS: 'linux', kernelVersion: '6.1.0-18-amd64' })), undefined);
  assert.match(postureCheckFailure(os, peer({ goOS: 'linux', kernelVersion: '5.4.0' }))!, /kernel/);
  assert.equal(postureCheckFailure(os, peer({ goOS: 'darwin', OSVersion: '14.2.1' })), undefined);
  assert.match(postureCheckFailure(os, peer({ goOS: 'darwin', OSVersion: '12.7' }))!, /OS version/);
  assert.match(postureCheckFailure(os, peer({ goOS: 'windows', kernelVersion: '10.0.19045' }))!, /not allowed/);

  const allow = check({ peer_network_range_check: { ranges: ['192.168.0.0/16'], action: 'allow' } });
  const deny = check({ peer_network_range_check: { ranges: ['10.0.0.0/8'], action: 'deny' } });
  const home = peer({ networkAddresses: [{ netIP: '192.168.1.20/24', mac: '' }] });
  const office = peer({ networkAddresses: [{ netIP: '10.1.2.3/8', mac: '' }] });
  assert.equal(postureCheckFailure(allow, home), undefined);
  assert.ok(postureCheckFailure(allow, office));
  assert.equal(postureCheckFailure(deny, home), undefined);
  assert.ok(postureCheckFailure(deny, office));

  assert.match(postureCheckFailure(check({ geo_location_check: { locations: [{ country_code: 'DE' }], action: 'allow' } }), home)!, /location is unknown/, 'no place known');
  assert.ok(postureCheckFailure(check({ process_check: { processes: [{ linux_path: '/usr/bin/av' }] } }), home));
});

test('posture checks: geolocation (country, optional city; allow and deny; unknown place fails)', () => {
  const at = (countryCode: string, cityName: string): Peer => ({ ...peer({}), location: { connectionIp: '203.0.113.7', countryCode, cityName, geonameId: 1 } });
  const berlin = at('DE', 'Berlin');
  const munich = at('DE', 'Munich');
  const paris = at('FR', 'Paris');
  const allowDe = check({ geo_location_check: { locations: [{ country_code: 'DE' }], action: 'allow' } });
  assert.equal(postureCheckFailure(allowDe, berlin), undefined);
  assert.equal(postureCheckFailure(allowDe, munich), undefined);
  assert.match(postureCheckFailure(allowDe, paris)!, /FR\/Paris is not allowed/);
  const allowBerlin = check({ geo_location_check: { locations: [{ country_code: 'DE', city_name: 'Berlin' }], action: 'allow' } });
  assert.equal(postureCheckFailure(allowBerlin, berlin), undefined);
  assert.ok(postureCheckFailure(allowBerlin, munich));
  const denyFr = check({ geo_location_check: { locations: [{ country_code: 'FR' }], action: 'deny' } });
  assert.equal(postureCheckFailure(denyFr, berlin), undefined);
  assert.match(postureCheckFailure(denyFr, paris)!, /denied/);
  // A public address the database does not know (private ones are never looked up) fails either way.
  assert.ok(postureCheckFailure(denyFr, at('', '')));
});
