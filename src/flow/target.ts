/** Turning FlowConfig.url into a gRPC target. */

export class FlowUrlError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FlowUrlError';
  }
}

export interface FlowTarget {
  /** host:port for grpc-js; IPv6 hosts keep their brackets ("[::1]:443"). */
  readonly target: string;
  /** https ⇒ TLS. */
  readonly tls: boolean;
}

const DEFAULT_PORTS: Readonly<Record<string, number>> = { 'http:': 80, 'https:': 443 };

/**
 * Parses a collector URL ("https://host:port", "http://[::1]:8080", "http://host"). A missing port gets the
 * scheme's default, so the target never ends in a bare colon (which grpc would reject or misread), and an
 * IPv6 literal keeps its brackets so that its colons are not taken for the port separator.
 */
export function parseFlowTarget(url: string): FlowTarget {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new FlowUrlError(`flow collector URL "${url}" is not a valid URL; expected e.g. https://flow.example.com:443`);
  }
  const defaultPort = DEFAULT_PORTS[u.protocol];
  if (defaultPort === undefined) {
    throw new FlowUrlError(`flow collector URL "${url}" must start with http:// or https://`);
  }
  if (u.hostname === '') throw new FlowUrlError(`flow collector URL "${url}" has no host`);
  // URL keeps the brackets of an IPv6 literal in .hostname and drops a port equal to the default.
  const port = u.port === '' ? defaultPort : Number(u.port);
  return { target: `${u.hostname}:${port}`, tls: u.protocol === 'https:' };
}
