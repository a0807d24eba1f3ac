import { ACT } from './audit.js';
import { checkGroupsField, getObject, isIpAddress } from './checks.js';
import type { EventDraft, ManagerCore } from './core.js';
import { accountObjects, membersOfGroups } from './objects.js';
import type { AccountState } from './state.js';
import type { Account, DnsRecord, DnsZone, NameserverGroup } from './types.js';
import { ManagementError, accountRecord } from './types.js';
import { isValidDomain, newId } from './util.js';

export type NameserverGroupInput = Omit<NameserverGroup, 'id' | 'accountId'>;
export type DnsZoneInput = Pick<DnsZone, 'name' | 'domain' | 'enabled' | 'enableSearchDomain' | 'distributionGroups'>;
export type DnsRecordInput = Omit<DnsRecord, 'id'>;

/** DNS: name-server groups, the DNS settings and custom zones with their records. */
export class Dns {
  constructor(private readonly core: ManagerCore) {}

  // ----- name-server groups -----
  private buildNameserverGroup(state: AccountState, id: string, input: NameserverGroupInput): NameserverGroup {
    const name = (input.name ?? '').trim();
    if (name === '' || name.length > 40) throw new ManagementError('unprocessable', 'name: must be 1-40 characters');
    if (!Array.isArray(input.nameservers) || input.nameservers.length < 1 || input.nameservers.length > 3) {
      throw new ManagementError('unprocessable', 'nameservers: between 1 and 3 name servers are required');
    }
    for (const ns of input.nameservers) {
      if (!isIpAddress(ns.ip)) throw new ManagementError('unprocessable', `nameservers.ip: invalid IP address ${JSON.stringify(ns.ip)}`);
      if (ns.nsType !== 'udp') throw new ManagementError('unprocessable', `nameservers.ns_type: only "udp" is supported`);
      if (!Number.isInteger(ns.port) || ns.port < 1 || ns.port > 65535) throw new ManagementError('unprocessable', `nameservers.port: invalid port ${ns.port}`);
    }
    const domains = (input.domains ?? []).map((d) => d.trim().toLowerCase());
    for (const d of domains) if (!isValidDomain(d)) throw new ManagementError('unprocessable', `domains: invalid domain ${JSON.stringify(d)}`);
    if (input.primary && domains.length > 0) throw new ManagementError('unprocessable', 'domains: a primary name-server group must not have match domains');
    if (!input.primary && domains.length === 0) throw new ManagementError('unprocessable', 'domains: a non-primary name-server group needs at least one match domain');
    return {
      id,
      accountId: state.id,
      name,
      description: input.description ?? '',
      nameservers: input.nameservers.map((n) => ({ ip: n.ip, nsType: 'udp', port: n.port })),
      enabled: input.enabled,
      groups: checkGroupsField(state, input.groups, 'groups', true),
      primary: input.primary,
      domains,
      searchDomainsEnabled: input.searchDomainsEnabled,
    };
  }

  async createNameserverGroup(accountId: string, input: NameserverGroupInput): Promise<NameserverGroup> {
    const state = this.core.accountState(accountId);
    return this.saveNameserverGroup(state, this.buildNameserverGroup(state, newId(), input), undefined);
  }

  async updateNameserverGroup(accountId: string, id: string, input: NameserverGroupInput): Promise<NameserverGroup> {
    const state = this.core.accountState(accountId);
    const old = getObject(accountObjects(state).nameserverGroups, id, 'name-server group');
    return this.saveNameserverGroup(state, this.buildNameserverGroup(state, id, input), old);
  }

  private saveNameserverGroup(state: AccountState, g: NameserverGroup, old: NameserverGroup | undefined): Promise<NameserverGroup> {
    const objs = accountObjects(state);
    return this.core.change(state.id, async (q) => {
      await q.putObject('nameserverGroups', g);
      return {
        result: g,
        events: [{ activityCode: old ? ACT.nsUpdate : ACT.nsAdd, initiatorId: '', targetId: g.id, meta: { name: g.name } }],
        apply: () => {
          const affected = membersOfGroups(state, [...g.groups, ...(old?.groups ?? [])]);
          objs.nameserverGroups.set(g.id, g);
          objs.generation++;
          return affected;
        },
      };
    });
  }

  async deleteNameserverGroup(accountId: string, id: string): Promise<void> {
    const state = this.core.accountState(accountId);
    const objs = accountObjects(state);
    const old = getObject(objs.nameserverGroups, id, 'name-server group');
    await this.core.change(accountId, async (q) => {
      await q.deleteObject('nameserverGroups', id);
      return {
        result: undefined,
        events: [{ activityCode: ACT.nsDelete, initiatorId: '', targetId: id, meta: { name: old.name } }],
        apply: () => {
          objs.nameserverGroups.delete(id);
          objs.generation++;
          return membersOfGroups(state, old.groups);
        },
      };
    });
  }

  /** DNS settings: groups whose peers get no managed DNS. */
  async updateDnsSettings(accountId: string, disabledManagementGroups: string[]): Promise<string[]> {
    const state = this.core.accountState(accountId);
    const groups = checkGroupsField(state, disabledManagementGroups, 'disabled_management_groups');
    const old = state.account.settings.dnsDisabledManagementGroups;
    const added = groups.filter((g) => !old.includes(g));
    const removed = old.filter((g) => !groups.includes(g));
    return this.core.change(accountId, async (q) => {
      const account: Account = { ...state.account, settings: { ...state.account.settings, dnsDisabledManagementGroups: groups } };
      await q.updateAccount({ ...account, serial: state.account.serial });
      const events: EventDraft[] = [
        ...added.map((g) => ({ activityCode: ACT.dnsDisabledAdd, initiatorId: '', targetId: g, meta: { group: state.groups.get(g)?.name ?? '' } })),
        ...removed.map((g) => ({ activityCode: ACT.dnsDisabledDelete, initiatorId: '', targetId: g, meta: { group: state.groups.get(g)?.name ?? '' } })),
      ];
      return {
        result: groups,
        events,
        apply: () => {
          state.account = accountRecord({ ...account, serial: state.account.serial });
          accountObjects(state).generation++;
          const affected = membersOfGroups(state, [...added, ...removed]);
          for (const p of affected) state.peerCache.delete(p);
          return affected;
        },
      };
    });
  }

  // ----- DNS zones and records -----
  getDnsZone(accountId: string, id: string): DnsZone {
    return getObject(this.core.objects(accountId).dnsZones, id, 'DNS zone');
  }

  private checkRecord(zone: { domain: string }, input: DnsRecordInput): DnsRecord {
    const name = (input.name ?? '').trim().toLowerCase().replace(/\.$/, '');
    if (!isValidDomain(name) || !(name === zone.domain || name.endsWith(`.${zone.domain}`))) {
      throw new ManagementError('unprocessable', `name: ${JSON.stringify(input.name)} must be a name inside the zone ${zone.domain}`);
    }
    if (input.type === 'A' && !(/^[0-9.]+$/.test(input.content) && isIpAddress(input.content))) throw new ManagementError('unprocessable', `content: ${JSON.stringify(input.content)} is not an IPv4 address`);
    else if (input.type === 'AAAA' && !(input.content.includes(':') && isIpAddress(input.content))) throw new ManagementError('unprocessable', `content: ${JSON.stringify(input.content)} is not an IPv6 address`);
    else if (input.type === 'CNAME' && !isValidDomain(input.content.toLowerCase().replace(/\.$/, ''))) throw new ManagementError('unprocessable', `content: ${JSON.stringify(input.content)} is not a domain name`);
    else if (!['A', 'AAAA', 'CNAME'].includes(input.type)) throw new ManagementError('unprocessable', `type: use A, AAAA or CNAME`);
    if (!Number.isInteger(input.ttl) || input.ttl < 0 || input.ttl > 2147483647) throw new ManagementError('unprocessable', 'ttl: must be a non-negative integer');
    return { id: '', name, type: input.type, content: input.content, ttl: input.ttl };
  }

  private saveZone(state: AccountState, zone: DnsZone, old: DnsZone | undefined, event: EventDraft): Promise<DnsZone> {
    return this.core.change(state.id, async (q) => {
      await q.putObject('dnsZones', zone);
      return {
        result: zone,
        events: [event],
        apply: () => {
          const affected = membersOfGroups(state, [...zone.distributionGroups, ...(old?.distributionGroups ?? [])]);
          accountObjects(state).dnsZones.set(zone.id, zone);
          accountObjects(state).generation++;
          return affected;
        },
      };
    });
  }

  async saveDnsZone(accountId: string, id: string | undefined, input: DnsZoneInput): Promise<DnsZone> {
    const state = this.core.accountState(accountId);
    const old = id !== undefined ? this.getDnsZone(accountId, id) : undefined;
    const name = (input.name ?? '').trim();
    if (name === '') throw new ManagementError('unprocessable', 'name: zone name must not be empty');
    const domain = (input.domain ?? '').trim().toLowerCase().replace(/\.$/, '');
    if (!isValidDomain(domain)) throw new ManagementError('unprocessable', `domain: invalid domain ${JSON.stringify(input.domain)}`);
    for (const z of accountObjects(state).dnsZones.values()) {
      if (z.id !== id && z.domain === domain) throw new ManagementError('already_exists', `a zone for ${domain} already exists`);
    }
    if (old && old.domain !== domain && old.records.length > 0) throw new ManagementError('unprocessable', 'domain: cannot change the domain of a zone that has records');
    const zone: DnsZone = {
      id: id ?? newId(),
      accountId,
      name,
      domain,
      enabled: input.enabled ?? true,
      enableSearchDomain: input.enableSearchDomain,
      distributionGroups: checkGroupsField(state, input.distributionGroups, 'distribution_groups', true),
      records: old?.records ?? [],
    };
    return this.saveZone(state, zone, old, { activityCode: old ? ACT.zoneUpdate : ACT.zoneCreate, initiatorId: '', targetId: zone.id, meta: { name, domain } });
  }

  async deleteDnsZone(accountId: string, id: string): Promise<void> {
    const state = this.core.accountState(accountId);
    const old = this.getDnsZone(accountId, id);
    await this.core.change(accountId, async (q) => {
      await q.deleteObject('dnsZones', id);
      return {
        result: undefined,
        events: [{ activityCode: ACT.zoneDelete, initiatorId: '', targetId: id, meta: { name: old.name, domain: old.domain } }],
        apply: () => {
          accountObjects(state).dnsZones.delete(id);
          accountObjects(state).generation++;
          return membersOfGroups(state, old.distributionGroups);
        },
      };
    });
  }

  getDnsRecord(accountId: string, zoneId: string, id: string): DnsRecord {
    const r = this.getDnsZone(accountId, zoneId).records.find((x) => x.id === id);
    if (!r) throw new ManagementError('not_found', `DNS record ${id} not found`);
    return r;
  }

  async saveDnsRecord(accountId: string, zoneId: string, id: string | undefined, input: DnsRecordInput): Promise<DnsRecord> {
    const state = this.core.accountState(accountId);
    const zone = this.getDnsZone(accountId, zoneId);
    if (id !== undefined) this.getDnsRecord(accountId, zoneId, id);
    const rec = { ...this.checkRecord(zone, input), id: id ?? newId() };
    const records = id ? zone.records.map((r) => (r.id === id ? rec : r)) : [...zone.records, rec];
    await this.saveZone(state, { ...zone, records }, zone, { activityCode: id ? ACT.recordUpdate : ACT.recordCreate, initiatorId: '', targetId: rec.id, meta: { name: rec.name, type: rec.type, zone: zone.domain } });
    return rec;
  }

  async deleteDnsRecord(accountId: string, zoneId: string, id: string): Promise<void> {
    const state = this.core.accountState(accountId);
    const zone = this.getDnsZone(accountId, zoneId);
    const rec = this.getDnsRecord(accountId, zoneId, id);
    await this.saveZone(state, { ...zone, records: zone.records.filter((r) => r.id !== id) }, zone, { activityCode: ACT.recordDelete, initiatorId: '', targetId: id, meta: { name: rec.name, zone: zone.domain } });
  }
}

/** The methods the AccountManager face exposes. */
export const DNS_API = [
  'createNameserverGroup', 'updateNameserverGroup', 'deleteNameserverGroup', 'updateDnsSettings', 'getDnsZone',
  'saveDnsZone', 'deleteDnsZone', 'getDnsRecord', 'saveDnsRecord', 'deleteDnsRecord',
] as const satisfies ReadonlyArray<keyof Dns>;
