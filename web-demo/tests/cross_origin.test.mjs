// The client library used from an application's own origin: the example page of docs/client.md,
// as it stands (its two origins replaced by local ones), is served from a second origin, imports
// the library from the Cascade server's versioned path (CORS), gets development tokens from the
// server, joins and receives the other page's video. A wrong base URL gets an error that says so.
//
// Run inside a network namespace with only loopback (.ci/run does this).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { join } from 'node:path';
import {
  ROOT, waitFor, launchChromium, startServer, releaseAfter, dumpServerOutput, describeValue,
} from './harness.mjs';

const MEDIA_TIMEOUT_MS = 20_000;

/** The first ```html block of docs/client.md. */
function docsExample() {
  const md = readFileSync(join(ROOT, 'docs/client.md'), 'utf8');
  const m = md.match(/```html\n([\s\S]*?)```/);
  assert.ok(m, 'docs/client.md has an html example');
  return m[1];
}

/**
 * Serves `page` at `/app.html` on 127.0.0.1 (any other path is a plain 404); its origin.
 * @param {string} page
 * @returns {Promise<{origin: string, close: () => void}>}
 */
function appServer(page) {
  const srv = createServer((req, res) => {
    if (req.url?.startsWith('/app.html')) {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(page);
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('no such page');
    }
  });
  return new Promise((res) => srv.listen(0, '127.0.0.1', () => {
    const { port } = /** @type {import('node:net').AddressInfo} */ (srv.address());
    res({ origin: `http://127.0.0.1:${port}`, close: () => srv.close() });
  }));
}

/** Decoded video frames of the example page's client. */
function framesDecoded(page) {
  return page.evaluate(async () => {
    const pc = /** @type {any} */ (window).cascade?.pc;
    if (!pc) return 0;
    let frames = 0;
    (await pc.getStats()).forEach((s) => {
      if (s.type === 'inbound-rtp' && s.kind === 'video') frames += s.framesDecoded ?? 0;
    });
    return frames;
  });
}

test('the docs example page, on another origin, imports the library from the server, joins and receives', { timeout: 90_000 }, async (t) => {
  let server;
  let browser;
  let app;
  releaseAfter(t, () => [browser, server], () => app?.close());
  const pages = [];
  try {
    server = await startServer({ defaultDevKey: true });
    app = await appServer(docsExample().replaceAll('https://sfu.example.com', server.base));
    assert.notEqual(app.origin, server.base, 'two origins');

    browser = await launchChromium();
    for (const name of ['alice', 'bob']) {
      const page = await (await browser.newContext()).newPage();
      page.on('console', (m) => console.log(`[${name}] ${m.type()}: ${m.text()}`));
      await page.goto(`${app.origin}/app.html?room=xorigin&name=${name}`, { timeout: 10_000 });
      await waitFor(`${name} to join`, 10_000, async () => {
        const text = await page.textContent('#status');
        if (text?.startsWith('failed')) throw new Error(text);
        return text?.includes(`as ${name}`);
      }, 100, () => page.textContent('#status'));
      pages.push(page);
    }
    for (const [i, page] of pages.entries()) {
      await waitFor(`decoded video on page ${i}`, MEDIA_TIMEOUT_MS, async () => (await framesDecoded(page)) > 0, 250);
    }

    // Pointed at something that is not a Cascade server, the helper says so.
    const code = await pages[0].evaluate(async (lib) => {
      const { fetchDevToken } = await import(lib);
      return fetchDevToken({ room: 'x', identity: 'y', baseUrl: location.origin }).then(() => 'ok', (e) => e.code);
    }, `${server.base}/cascade-client.js`);
    assert.equal(code, 'not_a_cascade_server');
  } catch (e) {
    for (const page of pages) console.error(describeValue(await page.textContent('#status').catch(() => null)));
    dumpServerOutput(server, { tailLines: 80 });
    throw e;
  }
});
