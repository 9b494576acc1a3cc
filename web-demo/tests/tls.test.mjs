// HTTPS and WSS in a real browser: a test CA made here (openssl) signs the server's certificate,
// Chromium is told to trust that CA (an NSS database in its HOME, certutil), loads the smoke
// pages and the demo over https://, joins over wss:// and decodes the remote video. Then the certificate files are
// replaced: the server serves the new certificate (its serial is checked) without a restart,
// and a new page loads with it.
//
// Needs openssl and certutil (Debian libnss3-tools; .ci/run installs it).
// Run inside a network namespace with only loopback (.ci/run does this).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  waitFor, launchChromium, startServer, releaseAfter, dumpBrowserFailure, mintToken, inboundStats,
  openSmokePage, httpsGet, smokeState, waitPublishing, waitDecoded,
} from './harness.mjs';
import { makeCa, makeLeaf, installLeaf, servedSerial } from './testca.mjs';

const MEDIA_TIMEOUT_MS = 20_000;
/** How long the server may take to serve replaced files (it polls them every 2 s). */
const RELOAD_TIMEOUT_MS = 15_000;

test('Chromium trusting a test CA loads https://, joins over wss:// and decodes video; replaced files are served', { timeout: 150_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'cascade-tls-'));
  const logs = [];
  const pages = {};
  let server;
  let browser;
  releaseAfter(t, () => [browser, server], () => rmSync(dir, { recursive: true, force: true }));

  try {
    const ca = await makeCa(dir);
    const caPem = ca.pem;
    const served = { cert: join(dir, 'served.pem'), key: join(dir, 'served.key') };
    installLeaf(await makeLeaf(dir, ca, '1001'), served);

    server = await startServer({ tls: { ...served, ca: caPem } });
    assert.match(server.base, /^https:\/\/localhost:\d+$/);
    const port = Number(new URL(server.base).port);
    assert.equal(await servedSerial(port, caPem), '1001');
    const publisherToken = await mintToken(server, 'tls', 'tls-publisher');
    const viewerToken = await mintToken(server, 'tls', 'tls-viewer', '--no-publish');

    browser = await launchChromium([], { ...process.env, HOME: ca.home });
    const publisher = (pages.publish = await openSmokePage(browser, server, 'publish', publisherToken, logs));
    assert.equal(await publisher.evaluate(() => location.protocol), 'https:');
    assert.equal(await publisher.evaluate(() => window.isSecureContext), true);
    await waitPublishing(publisher, 'publisher over wss://');
    const watcher = (pages.watch = await openSmokePage(browser, server, 'watch', viewerToken, logs));
    await waitDecoded(watcher, 'the watcher', MEDIA_TIMEOUT_MS);

    // The demo page itself, over https://: joins from its form over wss:// and decodes the
    // publisher's video.
    const demo = (pages.demo = await (await browser.newContext()).newPage());
    /** @type {string[]} */
    const sockets = [];
    demo.on('websocket', (ws) => sockets.push(ws.url()));
    await demo.goto(`${server.base}/?room=tls&mode=conference`, { timeout: 10_000 });
    await demo.getByTestId('name-input').fill('demo-user');
    await demo.getByTestId('join').click();
    await waitFor('decoded video in the demo page', MEDIA_TIMEOUT_MS, () => demo.evaluate(async () => {
      const pc = /** @type {any} */ (window).cascadeDemo?.client?.pc;
      let frames = 0;
      if (pc) (await pc.getStats()).forEach((x) => { if (x.type === 'inbound-rtp' && x.kind === 'video') frames += x.framesDecoded ?? 0; });
      return frames > 0;
    }), 250);
    assert.ok(sockets.length > 0 && sockets.every((u) => u.startsWith('wss://localhost:')), `the demo's WebSocket is wss://: ${sockets}`);

    // Replace the files: the next handshakes get serial 1002, with no restart.
    installLeaf(await makeLeaf(dir, ca, '1002'), served);
    await waitFor('the replaced certificate to be served', RELOAD_TIMEOUT_MS,
      async () => (await servedSerial(port, caPem)) === '1002', 250);
    assert.equal(server.exited, null, 'the server was not restarted');
    assert.equal((await httpsGet(`${server.base}/healthz`, caPem)).body, 'ok');
    // A new browser context (new connections) loads over the new certificate.
    const secondToken = await mintToken(server, 'tls', 'tls-viewer-2', '--no-publish');
    const again = (pages.again = await openSmokePage(browser, server, 'watch', secondToken, logs));
    assert.equal(await again.evaluate(() => location.protocol), 'https:');
    await waitDecoded(again, 'the second watcher', MEDIA_TIMEOUT_MS);
    // The first watcher's call went on across the reload.
    const before = (await inboundStats(watcher))?.framesDecoded ?? 0;
    await waitFor('the first watcher to keep decoding', 10_000,
      async () => ((await inboundStats(watcher))?.framesDecoded ?? 0) > before, 250);
  } catch (e) {
    await dumpBrowserFailure(logs, pages, smokeState, server);
    throw e;
  }
});
