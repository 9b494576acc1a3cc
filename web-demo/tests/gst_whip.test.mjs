// Interop with a libnice-based WHIP publisher: GStreamer webrtcbin (tests/gst_whip_client.py,
// Debian's python3 + python3-gi) publishes VP8 over WHIP, and a headless Chromium page in the
// same room decodes it. Two libnice habits are covered: the USERNAME of the STUN it sends names
// its own ufrag first (the demultiplexer routes a bound address by address), and it sends no
// STUN for 25 s once connected (media counts as ICE liveness, so the publisher outlives the
// 5 s + 10 s disconnected/failed timeouts).
//
// libnice ignores loopback interfaces: the test gives the namespace 127.0.0.2 on a veth (only
// in a fresh namespace whose one interface is lo), and the server serves HTTP and UDP on that
// address only and advertises it (one address: replies leave from the address the client sent
// to, which a socket on 0.0.0.0 does not guarantee). Run inside a network namespace (.ci/run
// does this):
//   unshare -n bash -c 'ip link set lo up; cd web-demo && node tests/gst_whip.test.mjs'
// Environment: CASCADE_BIN, CHROMIUM (see harness.mjs).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import {
  ROOT, describeValue, waitFor, launchChromium, startServer, stopServer, dumpServerOutput, waitForClientConnected,
  watchUntilDecoded, mintToken, inboundStats, spawnJsonClient,
} from './harness.mjs';

const CLIENT = join(ROOT, 'web-demo/tests/gst_whip_client.py');
const ROOM = 'gst-interop';
const LIBNICE_ADDR = '127.0.0.2';
/** The server's ICE disconnected + failed timeouts (defaults), plus a margin. */
const PAST_ICE_TIMEOUTS_MS = 17_000;

const run = promisify(execFile);

/**
 * Adds LIBNICE_ADDR on a veth unless some interface has it; only in a namespace with just lo.
 * Returns whether it added the veth (the test then deletes it: later tests in the namespace
 * must see only lo).
 */
async function ensureLibniceAddress() {
  const { stdout } = await run('ip', ['-o', 'addr', 'show']);
  if (stdout.includes(` ${LIBNICE_ADDR}/`)) return false;
  const { stdout: links } = await run('ip', ['-o', 'link', 'show']);
  const names = links.trim().split('\n').map((l) => l.split(':')[1].trim());
  assert.deepEqual(names, ['lo'], `run this test in a fresh network namespace (unshare -n): interfaces ${names}`);
  await run('ip', ['link', 'add', 'v0', 'type', 'veth', 'peer', 'name', 'v1']);
  await run('ip', ['link', 'set', 'v1', 'up']);
  await run('ip', ['addr', 'add', `${LIBNICE_ADDR}/32`, 'dev', 'v0']);
  await run('ip', ['link', 'set', 'v0', 'up']);
  return true;
}

/** Starts the GStreamer publisher (its result lines are JSON). */
function gstPublisher(base, token) {
  return spawnJsonClient('/usr/bin/python3', [CLIENT, base, token, '--room', ROOM, '--seconds', '60']);
}

test('a GStreamer webrtcbin (libnice) WHIP publisher is decoded by Chromium', { timeout: 120_000 }, async (t) => {
  let server;
  let browser;
  let publisher;
  let addedVeth = false;
  t.after(async () => {
    publisher?.proc.kill('SIGKILL');
    await browser?.close().catch(() => {});
    await stopServer(server);
    if (addedVeth) await run('ip', ['link', 'del', 'v0']).catch(() => {});
  });
  try {
    addedVeth = await ensureLibniceAddress();
    server = await startServer({ httpHost: LIBNICE_ADDR, publicIps: LIBNICE_ADDR });
    const [pubToken, pageToken] = await Promise.all([
      mintToken(server, ROOM, 'gst-publisher'),
      mintToken(server, ROOM, 'chromium-watcher', '--no-publish'),
    ]);

    publisher = gstPublisher(server.base, pubToken);
    await waitForClientConnected(publisher, 'the GStreamer publisher to connect');
    const connectedAt = Date.now();

    browser = await launchChromium();
    const { page, first } = await watchUntilDecoded(
      browser, server, pageToken, 'Chromium to decode the GStreamer publisher\'s video',
    );
    let seen = first;

    // Past the server's ICE timeouts the publisher (which sends media but no STUN) still flows.
    await new Promise((r) => setTimeout(r, Math.max(0, connectedAt + PAST_ICE_TIMEOUTS_MS - Date.now())));
    const late = await inboundStats(page);
    const later = await waitFor('Chromium\'s decoded frames to keep growing past the ICE timeouts', 5_000, async () => {
      seen = await inboundStats(page);
      return seen.framesDecoded > late.framesDecoded + 10 ? seen : null;
    }, 250, () => seen);
    console.log(`chromium: ${describeValue(first)}, ${describeValue(late)} after ${PAST_ICE_TIMEOUTS_MS} ms, then ${describeValue(later)}`);

    publisher.proc.stdin.end();
    const code = await waitFor('the publisher to exit', 15_000, async () => {
      const c = await Promise.race([publisher.exited, new Promise((r) => setTimeout(() => r(undefined), 200))]);
      return c === undefined ? null : { code: c };
    });
    const result = publisher.lines.at(-1);
    console.log(`gstreamer publisher (exit ${code.code}): ${describeValue(result)}`);
    assert.equal(result.post_status, 201);
    assert.equal(result.delete_status, 200);
    assert.equal(result.ok, true);
  } catch (e) {
    if (publisher) console.error(`--- gstreamer publisher ---\n${publisher.stderr.join('').slice(-4000)}\n${describeValue(publisher.lines)}`);
    dumpServerOutput(server, { tailLines: 80 });
    throw e;
  }
});
