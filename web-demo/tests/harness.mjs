// @ts-check
// Plumbing shared by the browser tests (smoke.test.mjs, demo.test.mjs): free loopback ports,
// polling, the `cascade` server process and its output, and the Chromium launch flags.
// Not a test itself: its name does not match *.test.mjs, and `npm test` names the test files.
//
// Environment: CASCADE_BIN (default <repo>/target/release/cascade), CHROMIUM (default /usr/bin/chromium).

import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { createServer } from 'node:net';
import { createSocket } from 'node:dgram';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { chromium } from 'playwright-core';

/** The repository root. */
export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
/** The server binary. */
export const CASCADE_BIN = process.env.CASCADE_BIN ?? join(ROOT, 'target/release/cascade');
/** Where browser tests save screenshots (the best are copied to docs/ and shown in the README). */
export const ARTIFACTS = process.env.ARTIFACTS ?? join(ROOT, 'artifacts');
/** The browser. */
export const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';

/**
 * @param {number} ms
 * @returns {Promise<void>}
 */
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * A short description of `v` for messages: an error's message, else JSON, else `String(v)`.
 * @param {unknown} v
 * @returns {string}
 */
export function describeValue(v) {
  if (v instanceof Error) return v.message;
  try {
    return JSON.stringify(v);
  } catch {
    return String(v);
  }
}

/**
 * Polls `probe` until it returns a truthy value or `timeoutMs` passes (the probe runs at least
 * once, and once more at the deadline); on timeout the error names `what` and the last thing
 * seen (`lastSeen()`, or the probe's last result).
 * @template T
 * @param {string} what
 * @param {number} timeoutMs
 * @param {() => T | Promise<T>} probe
 * @param {number} [intervalMs]
 * @param {() => unknown} [lastSeen] may return a promise
 * @returns {Promise<NonNullable<T>>}
 */
export async function waitFor(what, timeoutMs, probe, intervalMs = 100, lastSeen = () => undefined) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      last = await probe();
      if (last) return /** @type {NonNullable<T>} */ (last);
    } catch (e) {
      last = e;
    }
    if (Date.now() >= deadline) break;
    await sleep(intervalMs);
  }
  const seen = await Promise.resolve(lastSeen()).catch((e) => e);
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last: ${describeValue(seen ?? last)})`);
}

/**
 * A TCP port on 127.0.0.1 that was free a moment ago.
 * @returns {Promise<number>}
 */
export function freeTcpPort() {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const { port } = /** @type {import('node:net').AddressInfo} */ (s.address());
      s.close(() => res(port));
    });
  });
}

/**
 * A UDP port on 127.0.0.1 that was free a moment ago.
 * @returns {Promise<number>}
 */
export function freeUdpPort() {
  return new Promise((res, rej) => {
    const s = createSocket('udp4');
    s.once('error', rej);
    s.bind(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });
}

/**
 * Chromium flags for headless WebRTC on loopback with fake camera and microphone.
 * @param {string[]} [disableFeatures] features to disable besides WebRtcHideLocalIpsWithMdns
 * @param {number} [cameraFps] the fake camera's frame rate (Chromium's default: 20)
 * @returns {string[]}
 */
export function chromiumFlags(disableFeatures = [], cameraFps = undefined) {
  return [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    cameraFps ? `--use-fake-device-for-media-stream=fps=${cameraFps}` : '--use-fake-device-for-media-stream',
    '--use-fake-ui-for-media-stream',
    '--allow-loopback-in-peer-connection',
    '--autoplay-policy=no-user-gesture-required',
    // Offer 127.0.0.1 host candidates rather than mDNS names, even on pages without camera access.
    `--disable-features=${['WebRtcHideLocalIpsWithMdns', ...disableFeatures].join(',')}`,
  ];
}

/**
 * Launches CHROMIUM with `chromiumFlags(disableFeatures, cameraFps)`. Playwright gives the browser a new,
 * empty user-data dir of its own and removes it on close.
 * @param {string[]} [disableFeatures]
 * @param {NodeJS.ProcessEnv} [env] the browser's environment (e.g. a HOME whose NSS database
 *   trusts a test CA); default: this process's
 * @param {number} [cameraFps] the fake camera's frame rate: lower it where many pages each encode
 *   one camera and decode all the others on a small machine
 * @returns {Promise<import('playwright-core').Browser>}
 */
export function launchChromium(disableFeatures = [], env = undefined, cameraFps = undefined) {
  return chromium.launch({ executablePath: CHROMIUM, args: chromiumFlags(disableFeatures, cameraFps), timeout: 30_000, env });
}

/**
 * @typedef {object} Server
 * @property {import('node:child_process').ChildProcessByStdio<null, import('node:stream').Readable, import('node:stream').Readable>} proc
 * @property {NodeJS.ProcessEnv} env the server's environment (also right for `cascade token`)
 * @property {string} base e.g. http://127.0.0.1:PORT
 * @property {number} udpPort the media port
 * @property {string[]} output stdout and stderr chunks, each prefixed with `[stdout] ` or `[stderr] `
 * @property {{code: number | null, signal: NodeJS.Signals | null} | null} exited
 */

/**
 * Starts CASCADE_BIN on free loopback ports, collects its output and waits for /healthz.
 * @param {{defaultDevKey?: boolean, httpHost?: string, publicIps?: string, publicUrl?: string, tls?: {cert: string, key: string, ca: string}, extraEnv?: Record<string, string>}} [options]
 *   `defaultDevKey`: remove every CASCADE_* variable from the server's environment, so that it
 *   runs with its default development key and secret (which /api/dev/token requires); otherwise
 *   it inherits them. `httpHost`: the HTTP address (default 127.0.0.1; the UDP port binds to it
 *   too when it is a loopback address). `publicIps`: CASCADE_PUBLIC_IP (advertised addresses).
 *   `publicUrl`: CASCADE_PUBLIC_URL. `extraEnv`: more variables. `tls`: PEM files of the certificate and key to serve (CASCADE_TLS_CERT/KEY), and the PEM
 *   text of the CA that signed them; the base URL is then https://localhost:PORT.
 * @returns {Promise<Server>}
 */
export async function startServer({ defaultDevKey = false, httpHost = '127.0.0.1', publicIps, publicUrl, tls, extraEnv } = {}) {
  assert.ok(existsSync(CASCADE_BIN), `${CASCADE_BIN} not found: run \`cargo build --release\` or set CASCADE_BIN`);
  const httpPort = await freeTcpPort();
  let udpPort = await freeUdpPort();
  // ICE-TCP listens on the media port's number: it must not be the HTTP port.
  for (let i = 0; i < 10 && udpPort === httpPort; i++) udpPort = await freeUdpPort();
  const env = { ...process.env };
  if (defaultDevKey) for (const k of Object.keys(env)) if (k.startsWith('CASCADE_')) delete env[k];
  Object.assign(env, {
    CASCADE_HTTP_ADDR: `${httpHost}:${httpPort}`,
    CASCADE_UDP_PORT: String(udpPort),
    RUST_LOG: process.env.RUST_LOG ?? 'info',
    // SIGTERM drains (docs/configuration.md): with pages still connected, stop after 1 s.
    CASCADE_DRAIN_TIMEOUT: process.env.CASCADE_DRAIN_TIMEOUT ?? '1s',
  });
  if (publicIps) env.CASCADE_PUBLIC_IP = publicIps;
  if (publicUrl) env.CASCADE_PUBLIC_URL = publicUrl;
  if (extraEnv) Object.assign(env, extraEnv);
  if (tls) Object.assign(env, { CASCADE_TLS_CERT: tls.cert, CASCADE_TLS_KEY: tls.key });
  const proc = spawn(CASCADE_BIN, [], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const base = tls ? `https://localhost:${httpPort}` : `http://${httpHost}:${httpPort}`;
  /** @type {Server} */
  const server = { proc, env, base, udpPort, output: [], exited: null };
  /** @param {string} stream */
  const collect = (stream) => (/** @type {string} */ chunk) => server.output.push(`[${stream}] ${chunk}`);
  proc.stdout.setEncoding('utf8').on('data', collect('stdout'));
  proc.stderr.setEncoding('utf8').on('data', collect('stderr'));
  proc.on('exit', (code, signal) => (server.exited = { code, signal }));
  await waitFor('server /healthz', 15_000, async () => {
    if (server.exited) throw new Error(`server exited early: ${describeValue(server.exited)}`);
    if (tls) return (await httpsGet(`${server.base}/healthz`, tls.ca)).status === 200;
    const res = await fetch(`${server.base}/healthz`, { signal: AbortSignal.timeout(1000) });
    return res.status === 200;
  });
  return server;
}

/**
 * GET over HTTPS trusting only `ca` (PEM); at most 2 s.
 * @param {string} url
 * @param {string} ca
 * @returns {Promise<{status: number, body: string}>}
 */
export function httpsGet(url, ca) {
  return new Promise((res, rej) => {
    const req = httpsRequest(url, { ca, timeout: 2000 }, (r) => {
      let body = '';
      r.setEncoding('utf8').on('data', (c) => (body += c)).on('end', () => res({ status: r.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', rej);
    req.end();
  });
}

/**
 * Stops the server: SIGTERM (a drain of at most `CASCADE_DRAIN_TIMEOUT`), then SIGKILL if it has
 * not exited after 5 s.
 * @param {Server | null | undefined} server
 */
export async function stopServer(server) {
  if (!server || server.exited) return;
  const exited = new Promise((r) => server.proc.once('exit', r));
  server.proc.kill('SIGTERM');
  const done = await Promise.race([exited.then(() => true), sleep(5000).then(() => false)]);
  if (!done) server.proc.kill('SIGKILL');
}

/**
 * After test `t`: closes the browser and stops the server that `current()` returns then, then
 * runs `cleanup` (if any).
 * @param {import('node:test').TestContext} t
 * @param {() => [import('playwright-core').Browser | undefined, Server | undefined]} current
 * @param {() => unknown} [cleanup]
 */
export function releaseAfter(t, current, cleanup = () => {}) {
  t.after(async () => {
    const [browser, server] = current();
    await browser?.close().catch(() => {});
    await stopServer(server);
    await cleanup();
  });
}

/**
 * Prints the server's output to stderr under `--- <title> ---`: the chunks from index `from`
 * on, at most their last `tailLines` lines; then the exit status if the server has exited.
 * @param {Server | null | undefined} server
 * @param {{title?: string, from?: number, tailLines?: number}} [options]
 * @returns {number} how many output chunks there were (pass it as `from` to print only new ones next time)
 */
export function dumpServerOutput(server, { title = 'server output', from = 0, tailLines = Infinity } = {}) {
  console.error(`--- ${title} ---`);
  const out = server?.output.slice(from).join('') ?? '';
  console.error(out.split('\n').slice(-tailLines).join('\n') || '(empty)');
  if (server?.exited) console.error(`server exited: ${describeValue(server.exited)}`);
  return server?.output.length ?? 0;
}

/**
 * Prints what a failed browser test needs: the pages' console lines, each page's state (as
 * `stateOf` reads it, 2 s at most each) and the server's output.
 * @param {string[]} logs
 * @param {Record<string, import('playwright-core').Page>} pages
 * @param {(page: import('playwright-core').Page) => Promise<unknown>} stateOf
 * @param {Server | null | undefined} server
 * @param {{tailLines?: number}} [options]
 */
export async function dumpBrowserFailure(logs, pages, stateOf, server, { tailLines = Infinity } = {}) {
  console.error('--- browser console ---');
  console.error(logs.join('\n') || '(empty)');
  for (const [role, page] of Object.entries(pages)) {
    const state = await Promise.race([stateOf(page).catch(String), sleep(2000).then(() => 'no answer')]);
    console.error(`--- ${role} page state: ${describeValue(state)}`);
  }
  dumpServerOutput(server, { tailLines });
}

/**
 * Waits (20 s at most) until a JSON-line publisher client reports `connected`; a line with
 * `ok: false` fails at once.
 * @param {{lines: any[]}} client
 * @param {string} what
 */
export function waitForClientConnected(client, what) {
  return waitFor(what, 20_000, () => {
    if (client.lines.some((l) => l.ok === false)) throw new Error(describeValue(client.lines));
    return client.lines.some((l) => l.event === 'connected');
  });
}

/**
 * Opens smoke.html as a watcher with `token` and waits (20 s at most) until it has decoded
 * video (and, with `audio`, received audio); returns the page and those first stats.
 * @param {import('playwright-core').Browser} browser
 * @param {Server} server
 * @param {string} token
 * @param {string} what
 * @param {{audio?: boolean}} [options]
 */
export async function watchUntilDecoded(browser, server, token, what, { audio = false } = {}) {
  const page = await (await browser.newContext()).newPage();
  await page.goto(`${server.base}/smoke.html?role=watch&token=${encodeURIComponent(token)}`);
  let seen = null;
  const first = await waitFor(what, 20_000, async () => {
    seen = await inboundStats(page);
    return seen && seen.framesDecoded > 0 && (!audio || seen.audioPackets > 0) ? seen : null;
  }, 250, () => seen);
  return { page, first };
}

/**
 * Mints an access token for `room` with `cascade token` (extra flags e.g. `--no-publish`).
 * @param {Server} server
 * @param {string} room
 * @param {string} identity
 * @param {...string} extra
 * @returns {Promise<string>}
 */
export async function mintToken(server, room, identity, ...extra) {
  const { stdout } = await promisify(execFile)(
    CASCADE_BIN, ['token', '--room', room, '--identity', identity, ...extra],
    { env: server.env, timeout: 10_000 },
  );
  const token = stdout.trim();
  assert.match(token, /^[\w-]+\.[\w-]+\.[\w-]+$/, `\`cascade token\` printed no JWT: ${stdout}`);
  return token;
}

/**
 * Sums the inbound-rtp counters of a smoke.html page (it exposes its peer connection).
 * @param {import('playwright-core').Page} page
 * @returns {Promise<{framesDecoded: number, videoPackets: number, audioPackets: number, connection: string} | null>}
 */
export function inboundStats(page) {
  return page.evaluate(async () => {
    const pc = /** @type {any} */ (window).cascadeSmoke?.pc;
    if (!pc) return null;
    const out = { framesDecoded: 0, videoPackets: 0, audioPackets: 0, connection: pc.connectionState };
    (await pc.getStats()).forEach((s) => {
      if (s.type !== 'inbound-rtp') return;
      if (s.kind === 'video') {
        out.framesDecoded += s.framesDecoded ?? 0;
        out.videoPackets += s.packetsReceived ?? 0;
      } else if (s.kind === 'audio') {
        out.audioPackets += s.packetsReceived ?? 0;
      }
    });
    return out;
  });
}

/**
 * The state a smoke.html page exposes (`window.cascadeSmoke.state`), or null.
 * @param {import('playwright-core').Page} page
 */
export function smokeState(page) {
  return page.evaluate(() => /** @type {any} */ (window).cascadeSmoke?.state ?? null);
}

/**
 * Waits until a smoke.html publisher page publishes (at most 10 s); fails at once on a page
 * error.
 * @param {import('playwright-core').Page} page
 * @param {string} what
 */
export function waitPublishing(page, what) {
  return waitFor(`${what} to publish`, 10_000, async () => {
    const s = await smokeState(page);
    if (s?.errors?.length) throw new Error(`${what} errors: ${describeValue(s.errors)}`);
    return s?.phase === 'publishing';
  }, 250);
}

/**
 * Waits until a smoke.html page has decoded video frames (at most `timeoutMs`).
 * @param {import('playwright-core').Page} page
 * @param {string} what
 * @param {number} timeoutMs
 */
export function waitDecoded(page, what, timeoutMs) {
  return waitFor(`decoded video at ${what}`, timeoutMs, async () => {
    const seen = await inboundStats(page);
    return seen && seen.framesDecoded > 0 ? seen : null;
  }, 250);
}

/**
 * Opens smoke.html in a fresh browser context as `role` (`publish` or `watch`), logging the
 * page's console into `logs`.
 * @param {import('playwright-core').Browser} browser
 * @param {Server} server
 * @param {string} role
 * @param {string} token
 * @param {string[]} logs
 * @param {Record<string, string>} [query] more query parameters (e.g. `{relay: '1'}`)
 * @param {{recordSockets?: boolean, initScript?: string | (() => void)}} [options] `recordSockets`: keep every
 *   WebSocket the page opens in `window.__sockets` (for tests that drop the signaling socket);
 *   `initScript`: runs in the page before its own scripts
 */
export async function openSmokePage(browser, server, role, token, logs, query = {}, { recordSockets = false, initScript = undefined } = {}) {
  const context = await browser.newContext();
  if (initScript) await context.addInitScript(initScript);
  if (recordSockets) {
    await context.addInitScript(() => {
      const w = /** @type {any} */ (window);
      const Native = w.WebSocket;
      w.__sockets = [];
      w.WebSocket = class extends Native {
        /** @param {any[]} args */
        constructor(...args) {
          super(...args);
          w.__sockets.push(this);
        }
      };
    });
  }
  const page = await context.newPage();
  const tag = (line) => logs.push(`[${role} ${new Date().toISOString().slice(11, 23)}] ${line}`);
  page.on('console', (m) => tag(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => tag(`pageerror: ${e.message}`));
  page.on('requestfailed', (r) => tag(`requestfailed: ${r.url()} ${r.failure()?.errorText}`));
  const url = `${server.base}/smoke.html?${new URLSearchParams({ role, token, ...query })}`;
  await page.goto(url, { timeout: 10_000 });
  return page;
}

/**
 * Starts a client program that prints one JSON object per stdout line (the Python WHIP/WHEP
 * clients); collects the parsed lines and stderr.
 * @param {string} command
 * @param {string[]} args
 * @returns {{proc: import('node:child_process').ChildProcess, lines: any[], stderr: string[], exited: Promise<number | null>}}
 */
export function spawnJsonClient(command, args) {
  const proc = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  const client = { proc, lines: [], stderr: [], exited: new Promise((r) => proc.once('exit', (code) => r(code))) };
  let buf = '';
  proc.stdout.setEncoding('utf8').on('data', (chunk) => {
    buf += chunk;
    for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
      const line = buf.slice(0, i).trim();
      buf = buf.slice(i + 1);
      if (line) client.lines.push(JSON.parse(line));
    }
  });
  proc.stderr.setEncoding('utf8').on('data', (c) => client.stderr.push(c));
  return client;
}

/**
 * Applies an nft script (read from stdin), e.g. a table of rules that drop a port's traffic.
 * The tests run in their own network namespace: the rules live and die with it.
 * @param {string} script
 */
export async function nftScript(script) {
  await new Promise((res, rej) => {
    const p = spawn('nft', ['-f', '-'], { stdio: ['pipe', 'ignore', 'pipe'] });
    let err = '';
    p.stderr.setEncoding('utf8').on('data', (c) => (err += c));
    p.on('exit', (code) => (code === 0 ? res(undefined) : rej(new Error(`nft: ${err}`))));
    p.stdin.end(script);
  });
}

/**
 * The selected candidate pair of a smoke page's peer connection: each side's candidate type,
 * protocol, TCP type and port, and the local side's relay protocol.
 * @param {import('playwright-core').Page} page
 */
export function selectedPair(page) {
  return page.evaluate(async () => {
    const pc = /** @type {any} */ (window).cascadeSmoke?.pc;
    if (!pc) return null;
    const stats = await pc.getStats();
    let pairId = null;
    stats.forEach((s) => {
      if (s.type === 'transport' && s.selectedCandidatePairId) pairId = s.selectedCandidatePairId;
    });
    const pair = pairId && stats.get(pairId);
    if (!pair) return null;
    /** @param {any} c */
    const side = (c) => ({ type: c?.candidateType, protocol: c?.protocol, tcpType: c?.tcpType, relayProtocol: c?.relayProtocol, port: c?.port });
    return { local: side(stats.get(pair.localCandidateId)), remote: side(stats.get(pair.remoteCandidateId)) };
  });
}
