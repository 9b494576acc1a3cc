// Browser smoke test: a real Chromium publishes its fake camera and microphone through a real
// `cascade` server, a second Chromium context receives them, and the receiver's getStats()
// must show video frames being decoded and audio packets arriving.
//
// Run inside a network namespace with only loopback (.ci/run does this):
//   unshare -n bash -c 'ip link set lo up; cd web-demo && npm test'
// Environment: CASCADE_BIN (default ../target/release/cascade), CHROMIUM (default /usr/bin/chromium).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  sleep, describeValue, waitFor, launchChromium, startServer, releaseAfter, dumpBrowserFailure, mintToken,
  inboundStats, openSmokePage, smokeState, waitPublishing,
} from './harness.mjs';

const MEDIA_TIMEOUT_MS = 20_000;

test('a watcher receives the publisher\'s audio and video through cascade', { timeout: 120_000 }, async (t) => {
  const logs = [];
  const pages = {};
  let server;
  let browser;
  releaseAfter(t, () => [browser, server]);

  try {
    server = await startServer();
    const publisherToken = await mintToken(server, 'smoke', 'smoke-publisher');
    const viewerToken = await mintToken(server, 'smoke', 'smoke-viewer', '--no-publish');

    browser = await launchChromium();

    const publisher = (pages.publish = await openSmokePage(browser, server, 'publish', publisherToken, logs));
    await waitPublishing(publisher, 'publisher');
    const watcher = (pages.watch = await openSmokePage(browser, server, 'watch', viewerToken, logs));

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
    console.log(`watcher stats: first ${describeValue(first)}, then ${describeValue(second)}`);
    assert.ok(second.framesDecoded > first.framesDecoded, 'framesDecoded grows');
    assert.ok(second.audioPackets > first.audioPackets, 'audio packetsReceived grows');

    const watchState = await smokeState(watcher);
    assert.deepEqual(watchState.errors, [], 'watcher reported no errors');
    assert.deepEqual(watchState.tracks.map((x) => x.kind).sort(), ['audio', 'video'], 'watcher got one audio and one video track');
  } catch (e) {
    await dumpBrowserFailure(logs, pages, smokeState, server);
    throw e;
  }
});
