// ICE restart in the browser client: a real Chromium publishes its fake camera through a real
// `cascade` server to a second Chromium context; then the watcher's media path dies (its UDP
// port is blocked with nftables). The client must restart ICE on the same peer connection
// (`ice_restart`, a new local port), media must flow again, and the watcher must still be the
// same participant (not removed by the server, not rejoined). A second run also closes the
// watcher's WebSocket: the client resumes its session (same participant) and restarts ICE.
//
// Needs root inside a network namespace with only loopback (it changes the namespace's nftables):
//   unshare -n bash -c 'ip link set lo up; cd web-demo && node tests/ice_restart.test.mjs'
// Environment: CASCADE_BIN (default ../target/release/cascade), CHROMIUM (default /usr/bin/chromium).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import {
  sleep, describeValue, waitFor, launchChromium, startServer, stopServer, dumpBrowserFailure, mintToken,
  openSmokePage,
} from './harness.mjs';

const run = promisify(execFile);
const ROOM = 'icerestart';
/** The nftables table this test creates (and deletes). */
const NFT_TABLE = 'cascade_ice_restart_test';
const MEDIA_TIMEOUT_MS = 20_000;
/** From blocking the port to frames decoded again (the server gives up after 5 s + 10 s). */
const RECOVERY_TIMEOUT_MS = 20_000;

/** @param {string[]} args */
async function nft(...args) {
  await run('nft', args, { timeout: 5_000 });
}

/** Drops every UDP datagram to or from `port` (on loopback: both directions of the path). */
async function blockUdpPort(port) {
  await nft('add', 'table', 'inet', NFT_TABLE);
  await nft('add', 'chain', 'inet', NFT_TABLE, 'o', '{ type filter hook output priority 0; }');
  await nft('add', 'rule', 'inet', NFT_TABLE, 'o', 'udp', 'dport', String(port), 'drop');
  await nft('add', 'rule', 'inet', NFT_TABLE, 'o', 'udp', 'sport', String(port), 'drop');
}

/**
 * Opens smoke.html (harness.mjs), recording its WebSockets, and records the client's restart,
 * rejoin, resume and leave events in `window.iceTest.events`.
 */
async function openPage(browser, server, role, token, logs) {
  const page = await openSmokePage(browser, server, role, token, logs, {}, { recordSockets: true });
  await page.evaluate(() => {
    const w = /** @type {any} */ (window);
    const events = [];
    w.iceTest = { events };
    for (const type of ['ice_restart', 'ice_restarted', 'reconnecting', 'reconnected', 'resumed', 'participant_left', 'participant_joined', 'left']) {
      w.cascadeSmoke.client.addEventListener(type, (/** @type {CustomEvent} */ ev) => events.push({ type, detail: ev.detail }));
    }
  });
  return page;
}

/** The page's state: phase, errors, recorded events, own participant id and the others' ids. */
function pageState(page) {
  return page.evaluate(() => {
    const w = /** @type {any} */ (window);
    const client = w.cascadeSmoke?.client;
    return {
      phase: w.cascadeSmoke?.state.phase,
      errors: w.cascadeSmoke?.state.errors,
      events: w.iceTest?.events,
      participantId: client?.participant?.id ?? null,
      others: client ? [...client.participants.keys()] : [],
      connection: client?.connectionState,
    };
  });
}

/** Video frames decoded and the local UDP port of the selected candidate pair (null if none). */
function mediaPath(page) {
  return page.evaluate(async () => {
    const pc = /** @type {any} */ (window).cascadeSmoke?.pc;
    if (!pc) return null;
    const stats = await pc.getStats();
    let framesDecoded = 0;
    let pairId = null;
    stats.forEach((s) => {
      if (s.type === 'inbound-rtp' && s.kind === 'video') framesDecoded += s.framesDecoded ?? 0;
      if (s.type === 'transport' && s.selectedCandidatePairId) pairId = s.selectedCandidatePairId;
    });
    const pair = pairId ? stats.get(pairId) : null;
    const local = pair && pair.state === 'succeeded' ? stats.get(pair.localCandidateId) : null;
    return { framesDecoded, localPort: local?.port ?? null, ice: pc.iceConnectionState };
  });
}

test('the browser client restarts ICE when its media path dies, and stays in the room', { timeout: 120_000 }, (t) =>
  mediaPathDies(t, { dropSocket: false }));

test('when the WebSocket dies with the media path, the client resumes the same participant and restarts ICE', { timeout: 120_000 }, (t) =>
  mediaPathDies(t, { dropSocket: true }));

/**
 * Blocks the watcher's media path (and with `dropSocket`, closes its WebSocket too) and checks
 * that it recovers as the same participant, unseen by the others.
 * @param {import('node:test').TestContext} t
 * @param {{dropSocket: boolean}} options
 */
async function mediaPathDies(t, { dropSocket }) {
  const logs = [];
  const pages = {};
  let server;
  let browser;
  let blocked = false;
  t.after(async () => {
    if (blocked) await nft('delete', 'table', 'inet', NFT_TABLE).catch((e) => console.error('nft cleanup:', e.message));
    await browser?.close().catch(() => {});
    await stopServer(server);
  });

  try {
    server = await startServer();
    const publisherToken = await mintToken(server, ROOM, 'ice-publisher');
    const viewerToken = await mintToken(server, ROOM, 'ice-viewer', '--no-publish');
    browser = await launchChromium();

    const publisher = (pages.publish = await openPage(browser, server, 'publish', publisherToken, logs));
    await waitFor('publisher to publish', 10_000, async () => {
      const s = await pageState(publisher);
      if (s.errors?.length) throw new Error(`publisher errors: ${describeValue(s.errors)}`);
      return s.phase === 'publishing';
    }, 250);
    const watcher = (pages.watch = await openPage(browser, server, 'watch', viewerToken, logs));

    let seen = null;
    const before = await waitFor('decoded video at the watcher over a selected pair', MEDIA_TIMEOUT_MS, async () => {
      seen = await mediaPath(watcher);
      return seen && seen.framesDecoded > 0 && seen.localPort ? seen : null;
    }, 250, () => seen);
    const watcherBefore = await pageState(watcher);
    assert.ok(watcherBefore.participantId, 'the watcher joined');
    assert.ok((await pageState(publisher)).others.includes(watcherBefore.participantId), 'the publisher sees the watcher');

    const publisherSeen = (await pageState(publisher)).events.length;
    await blockUdpPort(before.localPort);
    blocked = true;
    const blockedAt = Date.now();
    console.log(`blocked the watcher's UDP port ${before.localPort} (frames decoded so far: ${before.framesDecoded})`);
    if (dropSocket) {
      const dropped = await watcher.evaluate(() => {
        const open = /** @type {any} */ (window).__sockets.filter((/** @type {WebSocket} */ ws) => ws.readyState === WebSocket.OPEN);
        open.forEach((/** @type {WebSocket} */ ws) => ws.close());
        return open.length;
      });
      assert.equal(dropped, 1, 'the watcher had one open signaling socket');
    }

    // The path is really dead: decoding stalls (before any restart can have happened).
    let last = await mediaPath(watcher);
    await waitFor('decoding to stall once the port is blocked', 4_000, async () => {
      await sleep(500);
      const now = await mediaPath(watcher);
      const stalled = now && last && now.framesDecoded === last.framesDecoded;
      last = now;
      return stalled;
    }, 0, () => last);

    const restarted = await waitFor('an ICE restart onto a new local port', RECOVERY_TIMEOUT_MS, async () => {
      const s = await pageState(watcher);
      seen = await mediaPath(watcher);
      const restart = s.events?.find((e) => e.type === 'ice_restart');
      return restart && seen?.localPort && seen.localPort !== before.localPort ? { restart, path: seen } : null;
    }, 250, () => seen);
    const stalledAt = restarted.path.framesDecoded;
    const after = await waitFor('frames decoded again after the restart', Math.max(1_000, RECOVERY_TIMEOUT_MS - (Date.now() - blockedAt)), async () => {
      seen = await mediaPath(watcher);
      return seen && seen.framesDecoded > stalledAt + 10 ? seen : null;
    }, 250, () => seen);
    console.log(
      `recovered after ${Date.now() - blockedAt} ms: ${describeValue(restarted.restart)}, ` +
        `port ${before.localPort} -> ${after.localPort}, frames ${stalledAt} -> ${after.framesDecoded}`,
    );

    const watcherAfter = await pageState(watcher);
    assert.equal(watcherAfter.participantId, watcherBefore.participantId, 'the watcher is still the same participant');
    const sessionEvents = watcherAfter.events.filter((e) => ['reconnecting', 'reconnected', 'resumed', 'left'].includes(e.type)).map((e) => e.type);
    if (dropSocket) assert.deepEqual(sessionEvents, ['reconnecting', 'resumed'], 'the watcher resumed its session (no rejoin)');
    else assert.deepEqual(sessionEvents, [], 'the watcher kept its session (no rejoin)');
    assert.ok(watcherAfter.events.some((e) => e.type === 'ice_restarted'), '`ice_restarted` followed the restart');
    assert.deepEqual(watcherAfter.errors, [], 'the watcher reported no errors');
    const publisherAfter = await pageState(publisher);
    assert.ok(publisherAfter.others.includes(watcherBefore.participantId), 'the watcher was not removed from the room');
    assert.deepEqual(
      publisherAfter.events.slice(publisherSeen).filter((e) => e.type === 'participant_left' || e.type === 'participant_joined'),
      [],
      'nobody left or joined the room',
    );
  } catch (e) {
    await dumpBrowserFailure(logs, pages, pageState, server, { tailLines: 200 });
    throw e;
  }
}
