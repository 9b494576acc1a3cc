// HTTPS and WSS in a real browser: a test CA made here (openssl) signs the server's certificate,
// Chromium is told to trust that CA (an NSS database in its HOME, certutil), loads the pages
// over https://, joins over wss:// and decodes the remote video. Then the certificate files are
// replaced: the server serves the new certificate (its serial is checked) without a restart,
// and a new page loads with it.
//
// Needs openssl and certutil (Debian libnss3-tools; .ci/run installs it).
// Run inside a network namespace with only loopback (.ci/run does this).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { promisify } from 'node:util';
import {
  describeValue, waitFor, launchChromium, startServer, stopServer, dumpBrowserFailure, mintToken,
  inboundStats, openSmokePage, httpsGet,
} from './harness.mjs';

const run = promisify(execFile);
const MEDIA_TIMEOUT_MS = 20_000;
/** How long the server may take to serve replaced files (it polls them every 2 s). */
const RELOAD_TIMEOUT_MS = 15_000;

/**
 * Makes a CA and a leaf certificate for localhost and 127.0.0.1 signed by it, in `dir`.
 * @param {string} dir
 */
async function makeCa(dir) {
  const ca = { key: join(dir, 'ca.key'), cert: join(dir, 'ca.pem') };
  await run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-keyout', ca.key, '-out', ca.cert, '-days', '2', '-subj', '/CN=Cascade test CA',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  return ca;
}

/**
 * A leaf certificate with `serial` (hex) for localhost and 127.0.0.1 signed by `ca`; returns
 * the PEM paths.
 * @param {string} dir
 * @param {{key: string, cert: string}} ca
 * @param {string} serial
 */
async function makeLeaf(dir, ca, serial) {
  const leaf = { key: join(dir, `leaf-${serial}.key`), cert: join(dir, `leaf-${serial}.pem`) };
  const csr = join(dir, `leaf-${serial}.csr`);
  const ext = join(dir, `leaf-${serial}.ext`);
  writeFileSync(ext, 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
  await run('openssl', ['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-keyout', leaf.key, '-out', csr, '-subj', '/CN=localhost']);
  await run('openssl', ['x509', '-req', '-in', csr, '-CA', ca.cert, '-CAkey', ca.key, '-set_serial', `0x${serial}`,
    '-days', '1', '-extfile', ext, '-out', leaf.cert]);
  return leaf;
}

/**
 * The serial number (hex, upper case) of the certificate served at `port`, verified against `ca`.
 * @param {number} port
 * @param {string} ca
 * @returns {Promise<string>}
 */
function servedSerial(port, ca) {
  return new Promise((res, rej) => {
    const s = connect({ host: '127.0.0.1', port, servername: 'localhost', ca, timeout: 2000 }, () => {
      const serial = s.getPeerCertificate().serialNumber;
      s.end();
      res(serial);
    });
    s.on('timeout', () => s.destroy(new Error('timed out')));
    s.on('error', rej);
  });
}

function smokeState(page) {
  return page.evaluate(() => /** @type {any} */ (window).cascadeSmoke?.state ?? null);
}

test('Chromium trusting a test CA loads https://, joins over wss:// and decodes video; replaced files are served', { timeout: 150_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'cascade-tls-'));
  const logs = [];
  const pages = {};
  let server;
  let browser;
  t.after(async () => {
    await browser?.close().catch(() => {});
    await stopServer(server);
    rmSync(dir, { recursive: true, force: true });
  });

  try {
    const ca = await makeCa(dir);
    const caPem = readFileSync(ca.cert, 'utf8');
    const first = await makeLeaf(dir, ca, '1001');
    const served = { cert: join(dir, 'served.pem'), key: join(dir, 'served.key') };
    const install = (/** @type {{cert: string, key: string}} */ leaf) => {
      for (const [from, to] of [[leaf.cert, served.cert], [leaf.key, served.key]]) {
        writeFileSync(`${to}.tmp`, readFileSync(from));
        renameSync(`${to}.tmp`, to);
      }
    };
    install(first);
    // Chromium on Linux trusts the CAs of the NSS database in $HOME/.pki/nssdb.
    const home = join(dir, 'home');
    const nssdb = join(home, '.pki', 'nssdb');
    mkdirSync(nssdb, { recursive: true });
    await run('certutil', ['-d', `sql:${nssdb}`, '-N', '--empty-password']);
    await run('certutil', ['-d', `sql:${nssdb}`, '-A', '-t', 'C,,', '-n', 'cascade-test-ca', '-i', ca.cert]);

    server = await startServer({ tls: { ...served, ca: caPem } });
    assert.match(server.base, /^https:\/\/localhost:\d+$/);
    const port = Number(new URL(server.base).port);
    assert.equal(await servedSerial(port, caPem), '1001');
    const publisherToken = await mintToken(server, 'tls', 'tls-publisher');
    const viewerToken = await mintToken(server, 'tls', 'tls-viewer', '--no-publish');

    browser = await launchChromium([], { ...process.env, HOME: home });
    const publisher = (pages.publish = await openSmokePage(browser, server, 'publish', publisherToken, logs));
    assert.equal(await publisher.evaluate(() => location.protocol), 'https:');
    assert.equal(await publisher.evaluate(() => window.isSecureContext), true);
    await waitFor('publisher to publish over wss://', 10_000, async () => {
      const s = await smokeState(publisher);
      if (s?.errors?.length) throw new Error(`publisher errors: ${describeValue(s.errors)}`);
      return s?.phase === 'publishing';
    }, 250);
    const watcher = (pages.watch = await openSmokePage(browser, server, 'watch', viewerToken, logs));
    await waitFor('decoded video at the watcher', MEDIA_TIMEOUT_MS, async () => {
      const seen = await inboundStats(watcher);
      return seen && seen.framesDecoded > 0 ? seen : null;
    }, 250);

    // Replace the files: the next handshakes get serial 1002, with no restart.
    install(await makeLeaf(dir, ca, '1002'));
    await waitFor('the replaced certificate to be served', RELOAD_TIMEOUT_MS,
      async () => (await servedSerial(port, caPem)) === '1002', 250);
    assert.equal(server.exited, null, 'the server was not restarted');
    assert.equal((await httpsGet(`${server.base}/healthz`, caPem)).body, 'ok');
    // A new browser context (new connections) loads over the new certificate.
    const secondToken = await mintToken(server, 'tls', 'tls-viewer-2', '--no-publish');
    const again = (pages.again = await openSmokePage(browser, server, 'watch', secondToken, logs));
    assert.equal(await again.evaluate(() => location.protocol), 'https:');
    await waitFor('decoded video at the second watcher', MEDIA_TIMEOUT_MS, async () => {
      const seen = await inboundStats(again);
      return seen && seen.framesDecoded > 0 ? seen : null;
    }, 250);
    // The first watcher's call went on across the reload.
    const before = (await inboundStats(watcher))?.framesDecoded ?? 0;
    await waitFor('the first watcher to keep decoding', 10_000,
      async () => ((await inboundStats(watcher))?.framesDecoded ?? 0) > before, 250);
  } catch (e) {
    await dumpBrowserFailure(logs, pages, smokeState, server);
    throw e;
  }
});
