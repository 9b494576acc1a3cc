// Browser smoke test: a real Chromium publishes its fake camera and microphone through a real
// `cascade` server, a second Chromium context receives them, and the receiver's getStats()
// must show video frames being decoded and audio packets arriving.
//
// Run inside a network namespace with only loopback (.ci/run does this):
//   unshare -n bash -c 'ip link set lo up; cd web-demo && npm test'
// Environment: CASCADE_BIN (default ../target/release/cascade), CHROMIUM (default /usr/bin/chromium).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { createSocket } from 'node:dgram';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { chromium } from 'playwright-core';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const CASCADE_BIN = process.env.CASCADE_BIN ?? join(ROOT, 'target/release/cascade');
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const MEDIA_TIMEOUT_MS = 20_000;
const CHROMIUM_FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--use-fake-device-for-media-stream',
  '--use-fake-ui-for-media-stream',
  '--allow-loopback-in-peer-connection',
  '--autoplay-policy=no-user-gesture-required',
  // Offer 127.0.0.1 host candidates rather than mDNS names, even on pages without camera access.
  '--disable-features=WebRtcHideLocalIpsWithMdns',
];

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Polls `probe` until it returns a truthy value or `timeoutMs` passes; on timeout the error
 * names `what` and the last thing seen (`lastSeen()`, or the probe's last result).
 */
async function waitFor(what, timeoutMs, probe, intervalMs = 250, lastSeen = () => undefined) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    try {
      last = await probe();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    await sleep(intervalMs);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last: ${describe(lastSeen() ?? last)})`);
}

function describe(v) {
  if (v instanceof Error) return v.message;
  try {
    return JSON.stringify(v);
  } catch {
    return String(v);
  }
}

function freeTcpPort() {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const { port } = /** @type {import('node:net').AddressInfo} */ (s.address());
      s.close(() => res(port));
    });
  });
}

function freeUdpPort() {
  return new Promise((res, rej) => {
    const s = createSocket('udp4');
    s.once('error', rej);
    s.bind(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });
}

/** Starts `cascade` on free ports; collects its output. */
async function startServer() {
  assert.ok(existsSync(CASCADE_BIN), `${CASCADE_BIN} not found: run \`cargo build --release\` or set CASCADE_BIN`);
  const httpPort = await freeTcpPort();
  const udpPort = await freeUdpPort();
  const env = {
    ...process.env,
    CASCADE_HTTP_ADDR: `127.0.0.1:${httpPort}`,
    CASCADE_UDP_PORT: String(udpPort),
    RUST_LOG: process.env.RUST_LOG ?? 'info',
  };
  const proc = spawn(CASCADE_BIN, [], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const server = { proc, env, base: `http://127.0.0.1:${httpPort}`, output: [], exited: null };
  const collect = (stream) => (chunk) => server.output.push(`[${stream}] ${chunk}`);
  proc.stdout.setEncoding('utf8').on('data', collect('stdout'));
  proc.stderr.setEncoding('utf8').on('data', collect('stderr'));
  proc.on('exit', (code, signal) => (server.exited = { code, signal }));
  await waitFor('server /healthz', 15_000, async () => {
    if (server.exited) throw new Error(`server exited early: ${describe(server.exited)}`);
    const res = await fetch(`${server.base}/healthz`, { signal: AbortSignal.timeout(1000) });
    return res.status === 200;
  });
  return server;
}

async function stopServer(server) {
  if (!server || server.exited) return;
  const exited = new Promise((r) => server.proc.once('exit', r));
  server.proc.kill('SIGTERM');
  const done = await Promise.race([exited.then(() => true), sleep(5000).then(() => false)]);
  if (!done) server.proc.kill('SIGKILL');
}

/** Mints an access token with `cascade token`. */
async function mintToken(server, identity, ...extra) {
  const { stdout } = await promisify(execFile)(
    CASCADE_BIN,
    ['token', '--room', 'smoke', '--identity', identity, ...extra],
    { env: server.env, timeout: 10_000 },
  );
  const token = stdout.trim();
  assert.match(token, /^[\w-]+\.[\w-]+\.[\w-]+$/, `\`cascade token\` printed no JWT: ${stdout}`);
  return token;
}

/** Opens smoke.html in a fresh browser context, logging the page's console into `logs`. */
async function openPage(browser, server, role, token, logs) {
  const context = await browser.newContext();
  const page = await context.newPage();
  const tag = (line) => logs.push(`[${role} ${new Date().toISOString().slice(11, 23)}] ${line}`);
  page.on('console', (m) => tag(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => tag(`pageerror: ${e.message}`));
  page.on('requestfailed', (r) => tag(`requestfailed: ${r.url()} ${r.failure()?.errorText}`));
  const url = `${server.base}/smoke.html?role=${role}&token=${encodeURIComponent(token)}`;
  await page.goto(url, { timeout: 10_000 });
  return page;
}

/** Sums the receiver's inbound-rtp counters. */
function inboundStats(page) {
  return page.evaluate(async () => {
    const pc = /** @type {any} */ (window).cascadeSmoke?.pc;
    if (!pc) return null;
    const out = { framesDecoded: 0, audioPackets: 0, videoPackets: 0, connection: pc.connectionState };
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

function smokeState(page) {
  return page.evaluate(() => /** @type {any} */ (window).cascadeSmoke?.state ?? null);
}

test('a watcher receives the publisher\'s audio and video through cascade', { timeout: 120_000 }, async (t) => {
  const logs = [];
  const pages = {};
  let server;
  let browser;
  t.after(async () => {
    await browser?.close().catch(() => {});
    await stopServer(server);
  });

  try {
    server = await startServer();
    const publisherToken = await mintToken(server, 'smoke-publisher');
    const viewerToken = await mintToken(server, 'smoke-viewer', '--no-publish');

    // Playwright gives the browser a new, empty user-data dir of its own and removes it on close.
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_FLAGS, timeout: 30_000 });

    const publisher = (pages.publish = await openPage(browser, server, 'publish', publisherToken, logs));
    await waitFor('publisher to publish', 10_000, async () => {
      const s = await smokeState(publisher);
      if (s?.errors?.length) throw new Error(`publisher errors: ${describe(s.errors)}`);
      return s?.phase === 'publishing';
    });
    const watcher = (pages.watch = await openPage(browser, server, 'watch', viewerToken, logs));

    let seen = null;
    const first = await waitFor(
      'decoded video and received audio at the watcher',
      MEDIA_TIMEOUT_MS,
      async () => {
        seen = await inboundStats(watcher);
        return seen && seen.framesDecoded > 0 && seen.audioPackets > 0 ? seen : null;
      },
      250,
      () => seen,
    );
    await sleep(1000);
    const second = await waitFor(
      'watcher stats to grow',
      5_000,
      async () => {
        seen = await inboundStats(watcher);
        return seen.framesDecoded > first.framesDecoded && seen.audioPackets > first.audioPackets ? seen : null;
      },
      250,
      () => seen,
    );
    console.log(`watcher stats: first ${describe(first)}, then ${describe(second)}`);
    assert.ok(second.framesDecoded > first.framesDecoded, 'framesDecoded grows');
    assert.ok(second.audioPackets > first.audioPackets, 'audio packetsReceived grows');

    const watchState = await smokeState(watcher);
    assert.deepEqual(watchState.errors, [], 'watcher reported no errors');
    assert.deepEqual(watchState.tracks.map((x) => x.kind).sort(), ['audio', 'video'], 'watcher got one audio and one video track');
  } catch (e) {
    console.error('--- browser console ---');
    console.error(logs.join('\n') || '(empty)');
    for (const [role, page] of Object.entries(pages)) {
      const state = await Promise.race([smokeState(page).catch(String), sleep(2000).then(() => 'no answer')]);
      console.error(`--- ${role} page state: ${describe(state)}`);
    }
    console.error('--- server output ---');
    console.error(server?.output.join('') || '(empty)');
    if (server?.exited) console.error(`server exited: ${describe(server.exited)}`);
    throw e;
  }
});
