// A server offer the browser cannot apply: the client must start a fresh session (a new join
// with a new peer connection), not resume the old one, which would bring back the same pending
// offer and fail again in a loop. Two refusals in a row: the second restart waits longer (the
// reconnect backoff goes on), and the third session receives the publisher's video. The
// publisher sees one watcher in the end (the replaced sessions are gone).
//
// Run inside a network namespace with only loopback (.ci/run does this):
//   unshare -n bash -c 'ip link set lo up; cd web-demo && node tests/restart.test.mjs'

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  describeValue, waitFor, launchChromium, startServer, releaseAfter, dumpBrowserFailure, mintToken,
  inboundStats, openSmokePage, smokeState, waitPublishing,
} from './harness.mjs';

const MEDIA_TIMEOUT_MS = 30_000;
/** Server offers the watcher's browser refuses before it accepts one. */
const REFUSALS = 2;

/**
 * Runs in the watcher's page before its scripts: `setRemoteDescription` rejects the first
 * `refusals` offers, and the client's events are recorded in `window.__events`.
 * @param {number} refusals
 */
function refuseOffers(refusals) {
  const w = /** @type {any} */ (window);
  w.__refusals = refusals;
  w.__events = [];
  const setRemote = RTCPeerConnection.prototype.setRemoteDescription;
  RTCPeerConnection.prototype.setRemoteDescription = function (desc) {
    if (desc?.type === 'offer' && w.__refusals > 0) {
      w.__refusals -= 1;
      return Promise.reject(new DOMException('refused by the test', 'OperationError'));
    }
    return setRemote.call(this, desc);
  };
  const recorded = ['joined', 'resumed', 'reconnecting', 'reconnected', 'error'];
  const dispatch = EventTarget.prototype.dispatchEvent;
  EventTarget.prototype.dispatchEvent = function (ev) {
    if (ev instanceof CustomEvent && recorded.includes(ev.type)) {
      const d = ev.detail ?? {};
      w.__events.push({ type: ev.type, attempt: d.attempt, reason: d.reason, code: d.code, participant: d.participant?.id });
    }
    return dispatch.call(this, ev);
  };
}

test('a server offer the browser refuses: the client joins afresh (no resume loop) and receives', { timeout: 120_000 }, async (t) => {
  const logs = [];
  const pages = {};
  let server;
  let browser;
  releaseAfter(t, () => [browser, server]);

  try {
    server = await startServer();
    const publisherToken = await mintToken(server, 'restart', 'restart-publisher');
    const viewerToken = await mintToken(server, 'restart', 'restart-viewer', '--no-publish');
    browser = await launchChromium();

    const publisher = (pages.publish = await openSmokePage(browser, server, 'publish', publisherToken, logs));
    await waitPublishing(publisher, 'publisher');
    const watcher = (pages.watch = await openSmokePage(browser, server, 'watch', viewerToken, logs, {}, {
      initScript: `(${refuseOffers})(${REFUSALS});`,
    }));

    let seen = null;
    await waitFor('decoded video at the watcher after the refused offers', MEDIA_TIMEOUT_MS, async () => {
      seen = await inboundStats(watcher);
      return seen && seen.framesDecoded > 0;
    }, 250, () => seen);

    const events = await watcher.evaluate(() => /** @type {any} */ (window).__events);
    console.log(`watcher events: ${describeValue(events)}`);
    const of = (type) => events.filter((e) => e.type === type);
    assert.equal(await watcher.evaluate(() => /** @type {any} */ (window).__refusals), 0, 'both refusals were used');
    assert.deepEqual(of('resumed'), [], 'no resume: each restart is a fresh session');
    assert.deepEqual(
      of('reconnecting').map((e) => [e.attempt, e.reason]),
      [[1, 'negotiation_failed'], [2, 'negotiation_failed']],
      'one restart per refused offer, the second one further in the backoff',
    );
    assert.equal(of('reconnected').length, REFUSALS, 'each restart joined again');
    const ids = of('joined').map((e) => e.participant);
    assert.equal(ids.length, REFUSALS + 1, 'three joins');
    assert.equal(new Set(ids).size, ids.length, 'each join is a new participant');
    assert.equal(of('error').filter((e) => e.code === 'negotiation_error').length, REFUSALS, 'each refusal was reported');

    const current = ids.at(-1);
    await waitFor('the publisher to see only the current watcher', 10_000, async () => {
      const others = await publisher.evaluate(() => [.../** @type {any} */ (window).cascadeSmoke.client.participants.keys()]);
      return others.length === 1 && others[0] === current;
    }, 250, () => publisher.evaluate(() => [.../** @type {any} */ (window).cascadeSmoke.client.participants.keys()]));
    const state = await smokeState(watcher);
    assert.equal(state.phase.startsWith('receiving'), true, `the watcher receives (${state.phase})`);
  } catch (e) {
    await dumpBrowserFailure(logs, pages, smokeState, server, { tailLines: 120 });
    throw e;
  }
});
