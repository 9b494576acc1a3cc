// TURN in a real browser, with the media port's UDP dropped in the namespace (nftables): relay-only
// Chromium pages (iceTransportPolicy "relay", credentials from `joined.ice_servers`) publish and
// decode video through
//   1. the embedded TURN server over UDP, then over TLS once its UDP and TCP ports are dropped too;
//   2. an external coturn started with `static-auth-secret` equal to Cascade's TURN secret.
// The drop rule spares datagrams from the TURN relay port range (the relay's own leg to the
// media port); a datagram from any other port is shown to be dropped (the rule's counter).
//
// Needs nft, openssl, certutil and coturn's turnserver (.ci/run installs them).
// Run inside a network namespace with only loopback (.ci/run does this): the rules it adds
// live and die with that namespace.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import {
  describeValue, waitFor, launchChromium, startServer, releaseAfter, dumpBrowserFailure, mintToken,
  openSmokePage, freeTcpPort, freeUdpPort, smokeState, waitPublishing, waitDecoded, nftScript, selectedPair,
} from './harness.mjs';
import { makeCa, makeLeaf } from './testca.mjs';

const run = promisify(execFile);
const MEDIA_TIMEOUT_MS = 30_000;
/** Relay ports of the embedded TURN server and of coturn: below Linux's ephemeral range
 * (32768-60999), so no other socket of the test uses them. */
const EMBEDDED_RELAY = [30000, 30099];
const COTURN_RELAY = [30100, 30199];
const TABLE = 'cascade_turn_test';

/**
 * Drops UDP to the media port unless it comes from `relay` ports; the rule counts what it drops.
 * @param {number} mediaPort
 * @param {number[]} relay
 */
async function dropMediaUdp(mediaPort, relay) {
  await nftScript(`
    table inet ${TABLE} {
      chain out {
        type filter hook output priority 0;
        udp dport ${mediaPort} udp sport != ${relay[0]}-${relay[1]} counter drop comment "media"
      }
    }`);
}

/** Also drops the embedded TURN server's UDP and TCP ports: only TURN over TLS gets through. */
async function dropTurnUdpAndTcp(udpPort, tcpPort) {
  await nftScript(`
    add rule inet ${TABLE} out udp dport ${udpPort} drop
    add rule inet ${TABLE} out tcp dport ${tcpPort} drop`);
}

async function removeRules() {
  await run('nft', ['delete', 'table', 'inet', TABLE], { timeout: 10_000 }).catch(() => {});
}

/** Packets the media drop rule has dropped. */
async function droppedToMedia() {
  const { stdout } = await run('nft', ['-j', 'list', 'table', 'inet', TABLE], { timeout: 10_000 });
  for (const item of JSON.parse(stdout).nftables) {
    const rule = item.rule;
    if (rule?.comment !== 'media') continue;
    const counter = rule.expr.find((e) => e.counter)?.counter;
    return counter?.packets ?? 0;
  }
  return 0;
}

/** Sends one datagram to the media port from an ordinary (non-relay) port. */
async function probeMediaPort(port) {
  const s = createSocket('udp4');
  await new Promise((res) => s.bind(0, '127.0.0.1', () => res(undefined)));
  await new Promise((res) => s.send(Buffer.from('probe'), port, '127.0.0.1', () => res(undefined)));
  s.close();
}

/**
 * A relay-only publisher and watcher in `room`: waits for decoded video at the watcher and
 * returns both pages' selected local candidates.
 */
async function relayCall(browser, server, room, logs, pages) {
  const pub = await mintToken(server, room, `${room}-publisher`);
  const view = await mintToken(server, room, `${room}-viewer`, '--no-publish');
  const publisher = (pages[`${room} publish`] = await openRelayPage(browser, server, 'publish', pub, logs));
  await waitPublishing(publisher, `${room}: publisher`);
  const watcher = (pages[`${room} watch`] = await openRelayPage(browser, server, 'watch', view, logs));
  await waitDecoded(watcher, `${room}: the watcher, through TURN`, MEDIA_TIMEOUT_MS);
  return { publisher: (await selectedPair(publisher))?.local, watcher: (await selectedPair(watcher))?.local };
}

/** Opens smoke.html with `relay=1` (TURN only). */
function openRelayPage(browser, server, role, token, logs) {
  return openSmokePage(browser, server, role, token, logs, { relay: '1' });
}

test('relay-only Chromium through the embedded TURN server: over UDP, then over TLS only', { timeout: 180_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'cascade-turn-'));
  const logs = [];
  const pages = {};
  let server;
  let browser;
  releaseAfter(t, () => [browser, server], async () => {
    await removeRules();
    rmSync(dir, { recursive: true, force: true });
  });
  try {
    const ca = await makeCa(dir);
    const leaf = await makeLeaf(dir, ca, '2001');
    const [turnUdp, turnTcp, turnTls] = [await freeUdpPort(), await freeTcpPort(), await freeTcpPort()];
    server = await startServer({
      tls: { ...leaf, ca: ca.pem },
      extraEnv: {
        CASCADE_TURN: 'true',
        CASCADE_TURN_UDP_PORT: String(turnUdp),
        CASCADE_TURN_TCP_PORT: String(turnTcp),
        CASCADE_TURN_TLS_PORT: String(turnTls),
        CASCADE_TURN_RELAY_PORTS: EMBEDDED_RELAY.join('-'),
      },
    });
    await dropMediaUdp(server.udpPort, EMBEDDED_RELAY);
    await probeMediaPort(server.udpPort);
    assert.ok((await droppedToMedia()) >= 1, 'UDP to the media port from a non-relay port is dropped');

    browser = await launchChromium([], { ...process.env, HOME: ca.home });
    const udp = await relayCall(browser, server, 'turn-udp', logs, pages);
    console.log(`embedded TURN, UDP: ${describeValue(udp)}`);
    for (const [who, c] of Object.entries(udp)) {
      assert.equal(c?.type, 'relay', `${who} connected through TURN: ${describeValue(c)}`);
      assert.equal(c?.relayProtocol, 'udp', `${who} reached TURN over UDP: ${describeValue(c)}`);
    }

    await dropTurnUdpAndTcp(turnUdp, turnTcp);
    const tls = await relayCall(browser, server, 'turn-tls', logs, pages);
    console.log(`embedded TURN, TLS only: ${describeValue(tls)}`);
    for (const [who, c] of Object.entries(tls)) {
      assert.equal(c?.type, 'relay', `${who} connected through TURN: ${describeValue(c)}`);
      assert.equal(c?.relayProtocol, 'tls', `${who} reached TURN over TLS: ${describeValue(c)}`);
    }
  } catch (e) {
    await dumpBrowserFailure(logs, pages, smokeState, server);
    throw e;
  }
});

test('relay-only Chromium through an external coturn sharing Cascade\'s TURN secret', { timeout: 120_000 }, async (t) => {
  const secret = 'shared-between-cascade-and-coturn';
  const logs = [];
  const pages = {};
  let server;
  let browser;
  let coturn;
  const dir = mkdtempSync(join(tmpdir(), 'cascade-coturn-'));
  releaseAfter(t, () => [browser, server], async () => {
    coturn?.kill('SIGKILL');
    await removeRules();
    rmSync(dir, { recursive: true, force: true });
  });
  try {
    const port = await freeUdpPort();
    coturn = spawn('turnserver', [
      '-n', '--use-auth-secret', `--static-auth-secret=${secret}`, '--realm=cascade', '--no-tls', '--no-dtls',
      '--listening-ip=127.0.0.1', '--relay-ip=127.0.0.1', `--listening-port=${port}`,
      `--min-port=${COTURN_RELAY[0]}`, `--max-port=${COTURN_RELAY[1]}`,
      '--allow-loopback-peers', '--no-cli', '--log-file=stdout', `--pidfile=${join(dir, 'pid')}`,
      `--userdb=${join(dir, 'turndb')}`,
    ], { stdio: ['ignore', 'pipe', 'pipe'] });
    const coturnLog = [];
    coturn.stdout.setEncoding('utf8').on('data', (c) => coturnLog.push(c));
    await waitFor('coturn to listen', 10_000, () => coturnLog.join('').includes('Total General servers'), 100,
      () => coturnLog.join('').slice(-500));
    server = await startServer({
      extraEnv: {
        CASCADE_TURN_SECRET: secret,
        CASCADE_TURN_URLS: `turn:127.0.0.1:${port}?transport=udp`,
      },
    });
    await dropMediaUdp(server.udpPort, COTURN_RELAY);
    await probeMediaPort(server.udpPort);
    assert.ok((await droppedToMedia()) >= 1, 'UDP to the media port from a non-relay port is dropped');

    browser = await launchChromium();
    const call = await relayCall(browser, server, 'coturn', logs, pages);
    console.log(`coturn: ${describeValue(call)}`);
    for (const [who, c] of Object.entries(call)) {
      assert.equal(c?.type, 'relay', `${who} connected through TURN: ${describeValue(c)}`);
      assert.ok(c.port >= COTURN_RELAY[0] && c.port <= COTURN_RELAY[1], `${who}'s relayed port is coturn's: ${describeValue(c)}`);
    }
  } catch (e) {
    await dumpBrowserFailure(logs, pages, smokeState, server);
    throw e;
  }
});
