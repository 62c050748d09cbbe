/**
 * Proxy URLs (--upstream-proxy, --onion-proxy): socks5://[user:pass@]host:port read into the
 * dialer's ProxyEndpoint, and written back for logs and error messages without the password.
 *
 * The password may be a real proxy's (or a Tor stream-isolation token), so it is never shown: logs
 * write the endpoint as socks5://user:***@host:port, and every error message about a URL has the
 * password, raw and %-decoded, replaced by "***", even when the URL is cut short or malformed.
 */
import { classifyHost, formatHostPort, splitHostPort } from '../address.js';
import { ProxyError } from '../errors.js';
import { MAX_CREDENTIAL_BYTES } from '../limits.js';
import type { ProxyEndpoint } from '../upstream/dialer.js';

function configError(url: string, reason: string): ProxyError {
  return new ProxyError('ERR_CONFIG', redactProxySecret(`bad proxy URL ${JSON.stringify(redactProxyUrl(url))}: ${reason}`, url));
}

/**
 * Where the password of a proxy URL sits: whatever follows "user:" up to the last "@". Without an
 * "@" (a URL cut short, e.g. by a comment in a config file), a non-numeric part after the colon is
 * taken for a password too, since it cannot be a port.
 */
function secretSpan(url: string): [number, number] | undefined {
  const start = /^[a-z][a-z0-9+.-]*:\/\//i.exec(url)?.[0].length ?? 0;
  const at = url.lastIndexOf('@');
  const colon = url.indexOf(':', start);
  if (colon < 0) return undefined;
  if (at > colon) return [colon + 1, at];
  if (at < 0 && !/^[0-9]*\/?$/.test(url.slice(colon + 1))) return [colon + 1, url.length];
  return undefined;
}

/** The URL with its password (see secretSpan) replaced by "***": what may appear in logs and messages. */
export function redactProxyUrl(url: string): string {
  const span = secretSpan(url);
  return span === undefined ? url : `${url.slice(0, span[0])}***${url.slice(span[1])}`;
}

/** `message` with every occurrence of the URL's password, raw or %-decoded, replaced by "***". */
export function redactProxySecret(message: string, url: string): string {
  const span = secretSpan(url);
  if (span === undefined) return message;
  const raw = url.slice(span[0], span[1]);
  const secrets = [raw];
  try {
    secrets.push(decodeURIComponent(raw));
  } catch {
    // not percent-encoded: the raw form is enough
  }
  let out = message;
  for (const secret of secrets) if (secret !== '') out = out.split(secret).join('***');
  return out;
}

function decodeUserinfo(url: string, part: string, what: string): string {
  let value: string;
  try {
    value = decodeURIComponent(part);
  } catch {
    throw configError(url, `${what} has a malformed %-escape`);
  }
  if (Buffer.byteLength(value) > MAX_CREDENTIAL_BYTES) throw configError(url, `${what} is longer than ${MAX_CREDENTIAL_BYTES} bytes`);
  return value;
}

/**
 * socks5://[user:pass@]host:port (also socks5h://; a bare host:port is read as socks5://). IPv6 host in
 * brackets; user and password may be %-encoded. Throws ProxyError ERR_CONFIG with the reason.
 */
export function parseProxyUrl(url: string): ProxyEndpoint {
  if (typeof url !== 'string' || url.length === 0) throw configError(String(url), 'empty');
  let rest: string;
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(url);
  if (scheme) {
    const name = scheme[1].toLowerCase();
    if (name !== 'socks5' && name !== 'socks5h') throw configError(url, `unsupported scheme "${name}://" (only socks5:// and socks5h://)`);
    rest = url.slice(scheme[0].length);
  } else {
    rest = url;
  }
  if (rest.endsWith('/')) rest = rest.slice(0, -1);
  const at = rest.lastIndexOf('@');
  const userinfo = at >= 0 ? rest.slice(0, at) : undefined;
  const hostPort = rest.slice(at + 1);
  if (/[/?#]/.test(hostPort)) throw configError(url, 'a proxy URL has no path, query or fragment');

  const split = splitHostPort(hostPort);
  switch (split.problem) {
    case 'unclosed':
      throw configError(url, 'unclosed "[" around the IPv6 address');
    case 'not-ipv6':
      throw configError(url, `brackets are only for an IPv6 address, not ${JSON.stringify(split.host)}`);
    case 'after-bracket':
      throw configError(url, `unexpected ${JSON.stringify(split.rest)} after the IPv6 address`);
    case 'unbracketed-ipv6':
      throw configError(url, 'an IPv6 proxy address must be in brackets: socks5://[::1]:9050');
  }
  const { host, port: portText } = split;
  if (host === '') throw configError(url, 'missing host');
  if (portText === undefined || portText === '') throw configError(url, 'missing port (Tor listens on 9050)');
  if (!/^[0-9]{1,5}$/.test(portText) || Number(portText) < 1 || Number(portText) > 65535) {
    throw configError(url, `port ${JSON.stringify(portText)} is not 1-65535`);
  }
  let kind;
  try {
    kind = classifyHost(host);
  } catch (err) {
    throw configError(url, err instanceof Error ? err.message : String(err));
  }
  if (kind === 'onion') throw configError(url, 'the proxy itself cannot be an onion address');

  const endpoint: ProxyEndpoint = { host, port: Number(portText) };
  if (userinfo !== undefined) {
    const colon = userinfo.indexOf(':');
    endpoint.username = decodeUserinfo(url, colon < 0 ? userinfo : userinfo.slice(0, colon), 'username');
    endpoint.password = colon < 0 ? '' : decodeUserinfo(url, userinfo.slice(colon + 1), 'password');
  }
  return endpoint;
}

/** "socks5://user:***@host:port" for logs: never the password. */
export function describeProxy(proxy: ProxyEndpoint): string {
  const user = proxy.username === undefined ? '' : `${encodeURIComponent(proxy.username)}:***@`;
  return `socks5://${user}${formatHostPort(proxy)}`;
}
