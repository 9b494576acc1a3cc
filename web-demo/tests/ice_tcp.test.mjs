// ICE-TCP in a real browser: with every UDP datagram to the media port dropped in the namespace
// (nftables), a Chromium publisher and a Chromium watcher reach Cascade over its passive ICE-TCP
// candidate (same port number, TCP) and the watcher decodes the publisher's video. Their selected
// candidate pairs are TCP ones, and the drop rule's counter shows UDP was tried and dropped.
//
// Needs nft (.ci/run installs it). Run inside a network namespace with only loopback (.ci/run
// does this): the rule it adds lives and dies with that namespace.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import {
  describeValue, launchChromium, startServer, releaseAfter, dumpBrowserFailure, mintToken,
  openSmokePage, smokeState, waitPublishing, waitDecoded, nftScript, selectedPair,
} from './harness.mjs';

const run = promisify(execFile);
const MEDIA_TIMEOUT_MS = 30_000;
const TABLE = 'cascade_ice_tcp_test';

/** UDP datagrams the drop rule has dropped. */
async function droppedUdp() {
  const { stdout } = await run('nft', ['-j', 'list', 'table', 'inet', TABLE], { timeout: 10_000 });
  for (const item of JSON.parse(stdout).nftables) {
    const counter = item.rule?.expr.find((e) => e.counter)?.counter;
    if (counter) return counter.packets;
  }
  return 0;
}

test('Chromium publishes and decodes over ICE-TCP when UDP to the media port is dropped', { timeout: 120_000 }, async (t) => {
  const logs = [];
  const pages = {};
  let server;
  let browser;
  releaseAfter(t, () => [browser, server], async () => {
    await run('nft', ['delete', 'table', 'inet', TABLE], { timeout: 10_000 }).catch(() => {});
  });
  try {
    server = await startServer();
    await nftScript(`
      table inet ${TABLE} {
        chain out {
          type filter hook output priority 0;
          udp dport ${server.udpPort} counter drop
        }
      }`);
    browser = await launchChromium();
    const pub = await mintToken(server, 'ice-tcp', 'publisher');
    const view = await mintToken(server, 'ice-tcp', 'viewer', '--no-publish');
    const publisher = (pages.publish = await openSmokePage(browser, server, 'publish', pub, logs));
    await waitPublishing(publisher, 'publisher over ICE-TCP');
    const watcher = (pages.watch = await openSmokePage(browser, server, 'watch', view, logs));
    await waitDecoded(watcher, 'the watcher, over ICE-TCP', MEDIA_TIMEOUT_MS);
    for (const [who, page] of Object.entries(pages)) {
      const pair = await selectedPair(page);
      console.log(`${who}: ${describeValue(pair)}`);
      assert.equal(pair?.local.protocol, 'tcp', `${who}: a TCP pair: ${describeValue(pair)}`);
      assert.equal(pair?.local.tcpType, 'active', `${who}: Chromium connects: ${describeValue(pair)}`);
      assert.equal(pair?.remote.tcpType, 'passive', `${who}: to Cascade's passive candidate`);
      assert.equal(pair?.remote.port, server.udpPort, `${who}: on the media port's number`);
    }
    assert.ok((await droppedUdp()) >= 1, 'the browsers tried UDP to the media port, and it was dropped');
  } catch (e) {
    await dumpBrowserFailure(logs, pages, smokeState, server);
    throw e;
  }
});
