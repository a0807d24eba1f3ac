import { createHash } from 'node:crypto';
import type { GeoDatabase } from '../geo/index.js';
import { ACT, type AccountManager } from '../management/index.js';
import { type Endpoint, HttpError } from './endpoint.js';
import type { OidcIssuerConfig } from './auth.js';
import * as J from './json.js';
import * as S from './schema.js';

/**
 * Endpoints the official dashboard looks things up with (NetBird's paths and shapes): all network
 * resources at once, identity providers, geolocation lists for posture checks, and the
 * event-streaming integrations list (which the dashboard also probes to decide whether traffic
 * events are available). A server that answers that probe is "licensed" to the dashboard, which then
 * also asks for the licensed features' lists: notification channels and their event types, and the
 * peers whose EDR compliance check an admin bypassed.
 */

export interface LookupDeps {
  manager: AccountManager;
  /** External OIDC issuers this server trusts (listed as identity providers). */
  oidc: readonly OidcIssuerConfig[];
  /** Geolocation database; undefined: the location endpoints answer 412 like NetBird without one. */
  geo: GeoDatabase | undefined;
}

/** NetBird's IdentityProvider id for a configured issuer: stable across restarts. */
export function identityProviderId(issuer: string): string {
  return createHash('sha256').update(issuer).digest('hex').slice(0, 20);
}

function identityProviderJson(c: OidcIssuerConfig): J.JsonObject {
  let name = c.issuer;
  try {
    name = new URL(c.issuer).host;
  } catch {
    // keep the issuer string
  }
  return { id: identityProviderId(c.issuer), type: 'oidc', name, issuer: c.issuer, client_id: Array.isArray(c.audience) ? (c.audience[0] ?? '') : c.audience };
}

const COUNTRY_RE = /^[a-zA-Z]{2}$/;

export function lookupEndpoints(deps: LookupDeps): Endpoint[] {
  const { manager } = deps;
  const list: Endpoint[] = [];
  const add = (method: Endpoint['method'], path: string, tag: string, summary: string, access: Endpoint['access'], handler: Endpoint['handler'], body?: S.Schema): void => {
    list.push({ method, path, tag, summary, access, handler, body });
  };
  const read = (resource: 'networks' | 'settings', listing = false): Endpoint['access'] => ({ kind: 'resource', resource, write: false, list: listing });
  const writeSettings: Endpoint['access'] = { kind: 'resource', resource: 'settings', write: true };

  add('GET', '/api/networks/resources', 'Networks', 'List the resources of all networks', read('networks', true), async (ctx) =>
    [...manager.objects(ctx.accountId).networkResources.values()].map((r) => J.networkResourceJson(ctx.state, r)),
  );

  // ----- identity providers: the external OIDC issuers given on the command line -----
  const findIdp = (id: string): OidcIssuerConfig => {
    const c = deps.oidc.find((x) => identityProviderId(x.issuer) === id);
    if (!c) throw new HttpError(404, `identity provider ${id} not found`);
    return c;
  };
  const configuredElsewhere = (): never => {
    throw new HttpError(412, 'identity providers are configured when starting netbird-server (--oidc-issuer, --oidc-audience), not through the API');
  };
  add('GET', '/api/identity-providers', 'Identity providers', 'List identity providers', read('settings', true), async () => deps.oidc.map(identityProviderJson));
  add('GET', '/api/identity-providers/{idpId}', 'Identity providers', 'An identity provider', read('settings'), async (ctx) => identityProviderJson(findIdp(ctx.params.idpId!)));
  add('POST', '/api/identity-providers', 'Identity providers', 'Create an identity provider (not supported: configured at server start)', writeSettings, async () => configuredElsewhere(), S.IdentityProviderRequest);
  add('PUT', '/api/identity-providers/{idpId}', 'Identity providers', 'Update an identity provider (not supported: configured at server start)', writeSettings, async (ctx) => {
    findIdp(ctx.params.idpId!);
    return configuredElsewhere();
  }, S.IdentityProviderRequest);
  add('DELETE', '/api/identity-providers/{idpId}', 'Identity providers', 'Delete an identity provider (not supported: configured at server start)', writeSettings, async (ctx) => {
    findIdp(ctx.params.idpId!);
    return configuredElsewhere();
  });

  // ----- geolocation (posture checks pick countries and cities from these) -----
  const geo = (): GeoDatabase => {
    if (!deps.geo) throw new HttpError(412, 'geolocation database is not available on this server');
    return deps.geo;
  };
  add('GET', '/api/locations/countries', 'Geo locations', 'List all countries (ISO 3166-1 alpha-2 code and English name)', { kind: 'authenticated' }, async () =>
    geo().countries().map((c) => ({ country_name: c.countryName, country_code: c.countryCode })),
  );
  add('GET', '/api/locations/countries/{country}/cities', 'Geo locations', 'List the cities of a country', { kind: 'authenticated' }, async (ctx) => {
    const cc = ctx.params.country!;
    if (!COUNTRY_RE.test(cc)) throw new HttpError(422, 'country: must be a two-letter ISO 3166-1 alpha-2 code');
    return geo().cities(cc).map((c) => ({ geoname_id: c.geonameId, city_name: c.cityName }));
  });

  // ----- event streaming: none configured (nothing to stream to is built in) -----
  for (const path of ['/api/integrations/event-streaming', '/api/event-streaming']) {
    add('GET', path, 'Event streaming', 'List event-streaming integrations (none: this server streams no events)', read('settings', true), async () => []);
  }

  // ----- notifications: the activity codes channels could subscribe to; no channel is configured -----
  add('GET', '/api/integrations/notifications/types', 'Notifications', 'Activity event type codes and their descriptions (NotificationTypeEntry)', read('settings'), async () =>
    Object.fromEntries(Object.values(ACT).map((code) => [code, J.activityText(code)])),
  );
  add('GET', '/api/integrations/notifications/channels', 'Notifications', 'List notification channels (none: this server sends no notifications)', read('settings', true), async () => []);

  // ----- remote jobs (debug bundles): this server has no Job stream to peers, so no job ever ran -----
  add('GET', '/api/peers/{peerId}/jobs', 'Jobs', 'List the remote jobs of a peer (none: this server runs no remote jobs)', { kind: 'resource', resource: 'peers', write: false, list: true }, async (ctx) => {
    manager.getPeer(ctx.accountId, ctx.params.peerId!);
    return [];
  });

  // ----- EDR: no EDR integration, so no peer has its compliance check bypassed -----
  add('GET', '/api/peers/edr/bypassed', 'EDR peers', 'List peers whose EDR compliance check is bypassed (none: no EDR integration)', { kind: 'resource', resource: 'peers', write: false, list: true }, async () => []);
  return list;
}
