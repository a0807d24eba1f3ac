import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseWgQuickConfig, WgQuickConfigError } from '../../src/wgquick/index.js';

const K1 = 'yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=';
const K2 = 'xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=';

test('parses a full wg-quick config', () => {
  const c = parseWgQuickConfig(`
# comment
[Interface]
PrivateKey = ${K1}
Address = 10.0.0.1/24, fd00::1/64
Address = 10.0.1.1
ListenPort = 51820
mtu = 1400   # trailing comment
PostUp = echo hi

[Peer]
PublicKey = ${K2}
PresharedKey = ${K1}
AllowedIPs = 10.0.0.2/32, fd00::2/128
AllowedIPs = 192.168.0.0/16
Endpoint = [2001:db8::1]:51820
PersistentKeepalive = 25

[peer]
PublicKey = ${K1}
Endpoint = vpn.example.org:4500
PersistentKeepalive = off
`, 'wg0.conf');
  assert.deepEqual(c.interface, { privateKey: K1, addresses: ['10.0.0.1/24', 'fd00::1/64', '10.0.1.1/32'], listenPort: 51820, mtu: 1400 });
  assert.equal(c.peers.length, 2);
  assert.deepEqual(c.peers[0]!.allowedIps, ['10.0.0.2/32', 'fd00::2/128', '192.168.0.0/16']);
  assert.equal(c.peers[0]!.endpoint, '[2001:db8::1]:51820');
  assert.equal(c.peers[0]!.presharedKey, K1);
  assert.equal(c.peers[0]!.persistentKeepalive, 25);
  assert.equal(c.peers[1]!.endpoint, 'vpn.example.org:4500');
  assert.equal(c.peers[1]!.persistentKeepalive, 0);
  assert.deepEqual(c.ignored, ['PostUp']);
});

function errAt(text: string, line: number, re: RegExp): void {
  assert.throws(
    () => parseWgQuickConfig(text, 'x.conf'),
    (e: unknown) => e instanceof WgQuickConfigError && e.line === line && re.test(e.message) && e.message.startsWith(`x.conf:${line}: `),
  );
}

test('bad input is reported with file and line', () => {
  errAt(`[Interface]\nPrivateKey = abc\n`, 2, /invalid PrivateKey/);
  errAt(`[Interface]\nPrivateKey = ${K1}\nAddress = 10.0.0.300/24\n`, 3, /not a CIDR/);
  errAt(`[Interface]\nPrivateKey = ${K1}\nListenPort = 70000\n`, 3, /ListenPort/);
  errAt(`[Interface]\nPrivateKey = ${K1}\n[Peer]\nPublicKey = ${K2}\nEndpoint = 1.2.3.4\n`, 5, /host:port/);
  errAt(`[Interface]\nPrivateKey = ${K1}\n[Peer]\nAllowedIPs = 10.0.0.0/8\n`, 3, /no PublicKey/);
  errAt(`[Interface]\nPrivateKey = ${K1}\nFoo = 1\n`, 3, /unknown key "Foo"/);
  errAt(`PrivateKey = ${K1}\n`, 1, /outside a section/);
  errAt(`[Interface]\nPrivateKey = ${K1}\nPrivateKey = ${K1}\n`, 3, /twice/);
  errAt(`[Interface]\nListenPort = 1\n`, 1, /no PrivateKey/);
  errAt(`[Inter]\n`, 1, /unknown section/);
  errAt(`[Interface]\nPrivateKey = ${K1}\njunk line\n`, 3, /Key = Value/);
  errAt(`[Interface]\nPrivateKey = ${K1}\n[Peer]\nPublicKey = ${K2}\nAllowedIPs = 10.0.0.0/33\n`, 5, /prefix length/);
  assert.throws(() => parseWgQuickConfig('', 'e.conf'), /e\.conf: no \[Interface\]/);
});
