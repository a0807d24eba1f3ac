import type { Endpoint } from './endpoint.js';

/**
 * The OpenAPI 3.1 document of the routes this server really registers: built from the same endpoint
 * table the router is built from, so it cannot list a path that does not exist (a test checks the
 * other direction against Fastify's routes).
 */
export function buildOpenApi(list: readonly Endpoint[], version: string, serverUrl: string): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  const error = { $ref: '#/components/schemas/ErrorResponse' };
  for (const ep of list) {
    const params = [...ep.path.matchAll(/\{(\w+)\}/g)].map((m) => ({ name: m[1], in: 'path', required: true, schema: { type: 'string' } }));
    const responses: Record<string, unknown> = {
      200: { description: 'OK', content: { 'application/json': { schema: { type: ep.method === 'GET' && !ep.path.endsWith('}') ? 'array' : 'object' } } } },
      400: { description: 'Malformed request', content: { 'application/json': { schema: error } } },
      422: { description: 'Invalid value', content: { 'application/json': { schema: error } } },
      500: { description: 'Internal error', content: { 'application/json': { schema: error } } },
    };
    if (ep.access.kind !== 'public') {
      responses[401] = { description: 'Missing or invalid credentials', content: { 'application/json': { schema: error } } };
      responses[403] = { description: 'Role does not allow this', content: { 'application/json': { schema: error } } };
      responses[404] = { description: 'Not found', content: { 'application/json': { schema: error } } };
      responses[429] = { description: 'Too many failed authentications', content: { 'application/json': { schema: error } } };
    }
    const op: Record<string, unknown> = {
      summary: ep.summary,
      tags: [ep.tag],
      operationId: `${ep.method.toLowerCase()}${ep.path.replace(/[{}]/g, '').replace(/[/-](\w)/g, (_m, c: string) => c.toUpperCase())}`,
      parameters: params,
      responses,
      security: ep.access.kind === 'public' ? [] : [{ TokenAuth: [] }, { BearerAuth: [] }],
    };
    if (ep.body) op.requestBody = { required: true, content: { 'application/json': { schema: ep.body } } };
    (paths[ep.path] ??= {})[ep.method.toLowerCase()] = op;
  }
  paths['/api/openapi.json'] = { get: { summary: 'This document', tags: ['Instance'], operationId: 'getOpenApi', security: [], responses: { 200: { description: 'OK' } } } };
  return {
    openapi: '3.1.0',
    info: { title: 'NetBird REST API (netbird-ts)', version, description: 'NetBird-compatible management REST API.' },
    servers: [{ url: serverUrl }],
    components: {
      securitySchemes: {
        TokenAuth: { type: 'apiKey', in: 'header', name: 'Authorization', description: 'Token <personal access token>' },
        BearerAuth: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' },
      },
      schemas: {
        ErrorResponse: { type: 'object', properties: { message: { type: 'string' }, code: { type: 'integer' } }, required: ['message'] },
      },
    },
    paths,
  };
}
