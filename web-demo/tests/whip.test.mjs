// WHIP/WHEP interop with independent WebRTC stacks: an aiortc client publishes over WHIP, a
// headless Chromium page in the same room (WebSocket protocol) decodes its video, and a second
// aiortc client watches over WHEP and decodes video and audio. Both aiortc clients trickle
// their candidates with PATCH and end with DELETE (tests/aiortc_client.py).
//
// Run inside a network namespace with only loopback (.ci/run does this):
//   unshare -n bash -c 'ip link set lo up; cd web-demo && node tests/whip.test.mjs'
// Environment: CASCADE_BIN, CHROMIUM (see harness.mjs), CASCADE_PYTHON (default
// <repo>/target/ci-venv/bin/python, with aiortc from .ci/requirements.txt).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import {
  ROOT, describeValue, waitFor, launchChromium, startServer, stopServer, dumpServerOutput, waitForClientConnected,
  watchUntilDecoded, mintToken, inboundStats, spawnJsonClient,
} from './harness.mjs';

const PYTHON = process.env.CASCADE_PYTHON ?? join(ROOT, 'target/ci-venv/bin/python');
const CLIENT = join(ROOT, 'web-demo/tests/aiortc_client.py');
const ROOM = 'interop';

/** Starts aiortc_client.py (its result lines are JSON). */
function aiortc(args) {
  return spawnJsonClient(PYTHON, [CLIENT, ...args]);
}

/** The last JSON line of a finished client (its result). */
async function result(client, timeoutMs) {
  const code = await waitFor('aiortc client to exit', timeoutMs, async () => {
    const c = await Promise.race([client.exited, new Promise((r) => setTimeout(() => r(undefined), 200))]);
    return c === undefined ? null : { code: c };
  });
  const last = client.lines.at(-1);
  assert.ok(last, `the client printed no result (exit ${code.code}): ${client.stderr.join('')}`);
  return last;
}

/** The value of an unlabelled gauge in /metrics. */
async function gauge(server, name) {
  const text = await (await fetch(`${server.base}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line ? Number(line.split(' ')[1]) : NaN;
}

test('aiortc publishes over WHIP; Chromium and aiortc over WHEP receive it', { timeout: 180_000 }, async (t) => {
  assert.ok(existsSync(PYTHON), `${PYTHON} not found: run .ci/run's install step or set CASCADE_PYTHON`);
  let server;
  let browser;
  /** @type {ReturnType<typeof aiortc>[]} */
  const clients = [];
  t.after(async () => {
    for (const c of clients) c.proc.kill('SIGKILL');
    await browser?.close().catch(() => {});
    await stopServer(server);
  });
  try {
    server = await startServer();
    const [pubToken, pageToken, whepToken] = await Promise.all([
      mintToken(server, ROOM, 'aiortc-publisher'),
      mintToken(server, ROOM, 'chromium-watcher', '--no-publish'),
      mintToken(server, ROOM, 'aiortc-viewer', '--no-publish'),
    ]);

    const publisher = aiortc(['publish', server.base, pubToken, '--room', ROOM, '--seconds', '120']);
    clients.push(publisher);
    await waitForClientConnected(publisher, 'the WHIP publisher to connect');

    browser = await launchChromium();
    const { page, first } = await watchUntilDecoded(
      browser, server, pageToken, 'Chromium to decode the WHIP publisher\'s video', { audio: true },
    );
    let seen = first;
    const later = await waitFor('Chromium\'s decoded frames to grow', 10_000, async () => {
      seen = await inboundStats(page);
      return seen.framesDecoded > first.framesDecoded + 5 ? seen : null;
    }, 250, () => seen);
    console.log(`chromium: ${describeValue(first)} then ${describeValue(later)}`);

    const viewer = aiortc(['view', server.base, whepToken, '--room', ROOM, '--seconds', '20',
      '--min-video', '15', '--min-audio', '25']);
    clients.push(viewer);
    const watched = await result(viewer, 40_000);
    console.log(`whep viewer: ${describeValue(watched)}`);
    assert.equal(watched.post_status, 201);
    assert.equal(watched.patch_status, 204, 'candidates trickled with PATCH');
    assert.ok(watched.trickled_candidates >= 1);
    assert.ok(watched.video_frames >= 15, `WHEP video frames: ${watched.video_frames}`);
    assert.ok(watched.audio_frames >= 25, `WHEP audio frames: ${watched.audio_frames}`);
    assert.deepEqual(watched.video_sizes, [[320, 240]], 'the publisher\'s frame size');
    assert.equal(watched.delete_status, 200);
    assert.equal(watched.ok, true);

    // The publisher ends its session: DELETE, and the room is left with the page only.
    publisher.proc.stdin.end();
    const published = await result(publisher, 20_000);
    console.log(`whip publisher: ${describeValue(published)}`);
    assert.equal(published.post_status, 201);
    assert.equal(published.patch_status, 204);
    assert.equal(published.delete_status, 200);
    assert.equal(published.ok, true);
    await waitFor('only the Chromium participant to remain', 5_000, async () => (await gauge(server, 'cascade_participants')) === 1);
  } catch (e) {
    for (const c of clients) console.error(`--- aiortc ${c.proc.spawnargs[2]} ---\n${c.stderr.join('').slice(-4000)}\n${describeValue(c.lines)}`);
    dumpServerOutput(server, { tailLines: 80 });
    throw e;
  }
});
