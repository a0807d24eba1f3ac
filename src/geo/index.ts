/**
 * IP geolocation (country, city) from a database shipped in an npm package: peer locations, the
 * geolocation posture check and GET /api/locations/*.
 */
export { GeoDatabase, cityId, geoDatabase, isPublicAddress } from './database.js';
export type { City, Country, GeoLocation } from './database.js';
