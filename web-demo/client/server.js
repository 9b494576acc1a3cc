// @ts-check
/**
 * Where the Cascade server is: its URL (by default the origin this library was loaded from), its
 * signaling URL, and development tokens from it.
 */
import { CascadeError } from './errors.js';

/**
 * The Cascade server this library was loaded from (`https://sfu.example.com`), the default for
 * every call: an application page on another origin that imports the library from the server
 * talks to that server. A copy served from elsewhere (or from a file) falls back to the page's
 * origin.
 * @returns {string}
 */
export function defaultServerUrl() {
  const origin = new URL(import.meta.url).origin;
  return /^https?:/.test(origin) ? origin : location.origin;
}

/**
 * The signaling URL of the server at `serverUrl`: `ws(s)://<host>/ws`.
 * @param {string} [serverUrl] default `defaultServerUrl()`
 * @returns {string}
 */
export function defaultWsUrl(serverUrl = defaultServerUrl()) {
  const url = new URL('/ws', serverUrl);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  return url.toString();
}

/**
 * Fetches a development token from a Cascade server running with its development key
 * (`GET /api/dev/token`). Rejects with a CascadeError that says what happened:
 * `not_found` (the server has a real API secret: tokens must come from your backend),
 * `not_a_cascade_server` (something else answered at `baseUrl`), `network_error` (no answer).
 * @param {{room: string, identity: string, role?: 'publisher' | 'viewer', baseUrl?: string}} params
 *   `baseUrl` default `defaultServerUrl()`
 * @returns {Promise<string>}
 */
export async function fetchDevToken({ room, identity, role = 'publisher', baseUrl = defaultServerUrl() }) {
  const url = `${baseUrl.replace(/\/$/, '')}/api/dev/token?${new URLSearchParams({ room, identity, role })}`;
  let res;
  try {
    res = await fetch(url);
  } catch (e) {
    throw new CascadeError('network_error', `cannot reach ${url} (${e instanceof Error ? e.message : e}): is the Cascade server at ${baseUrl} running and reachable from this page?`);
  }
  /** @type {any} */
  let body = null;
  try {
    body = await res.json();
  } catch {
    // not JSON: not a Cascade answer
  }
  if (res.ok && body && typeof body.token === 'string') return body.token;
  if (body?.error?.code) {
    const hint = body.error.code === 'not_found'
      ? ' Tokens must come from your backend (REST POST /api/tokens, or `cascade token --room ROOM --identity NAME` on the server).'
      : '';
    throw new CascadeError(body.error.code, `${body.error.message}.${hint}`);
  }
  throw new CascadeError('not_a_cascade_server', `GET ${url} answered HTTP ${res.status} without a Cascade error: is ${baseUrl} the Cascade server's URL? Pass it as baseUrl.`);
}
