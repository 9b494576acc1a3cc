// Chromium publishing and receiving one video codec at a time through Cascade (WHIP in, WHEP
// out, Cascade's engine in between): for each of VP8, VP9, H.264 and VP8 in three simulcast
// layers, a publisher page sends its fake camera with only that codec offered
// (setCodecPreferences), a viewer page receives it, and the viewer must decode 30 frames in that
// codec; both sessions are then deleted. Simulcast (rids q, h, f; q a quarter of the size,
// without a=ssrc) checks that the layer forwarded is q: 160x120.
//
// Needs a release build (target/release/cascade) and Chromium (.ci/run installs it).

import { test } from 'node:test';
import assert from 'node:assert/strict';

import { launchChromium, startServer, stopServer, dumpServerOutput, mintToken } from './harness.mjs';

const MIN_FRAMES = 30;
const SECONDS = 20;

/**
 * Runs in a page: offers `pc` to `${base}${path}` over WHIP/WHEP with `token`; the session
 * resource's URL.
 */
const NEGOTIATE = `async function negotiate(pc, base, path, token) {
  await pc.setLocalDescription(await pc.createOffer());
  const res = await fetch(base + path, {
    method: 'POST',
    headers: { 'content-type': 'application/sdp', authorization: 'Bearer ' + token },
    body: pc.localDescription.sdp,
  });
  if (res.status !== 201) throw new Error('POST ' + path + ': ' + res.status + ' ' + await res.text());
  const resource = new URL(res.headers.get('location'), base).href;
  await pc.setRemoteDescription({ type: 'answer', sdp: await res.text() });
  return resource;
}`;

test('Chromium sends and receives VP8, VP9, H.264 and VP8 simulcast through Cascade', { timeout: 240_000 }, async (t) => {
  const server = await startServer();
  const browser = await launchChromium();
  t.after(async () => {
    await browser.close().catch(() => {});
    await stopServer(server);
  });
  const results = [];
  for (const codec of ['VP8', 'VP9', 'H264', 'VP8-simulcast']) {
    const room = `codecs-${codec.toLowerCase()}`;
    const publishToken = await mintToken(server, room, 'publisher');
    const viewToken = await mintToken(server, room, 'viewer');
    const context = await browser.newContext();
    /** @type {Record<string, unknown>} */
    const result = { codec };
    try {
      const publisher = await context.newPage();
      const viewer = await context.newPage();
      for (const page of [publisher, viewer]) {
        await page.goto(`${server.base}/`, { timeout: 10_000 });
        await page.addScriptTag({ content: `window.negotiate = ${NEGOTIATE};` });
      }
      const [name, simulcast] = codec.split('-');
      await publisher.evaluate(async ({ base, room, token, name, simulcast }) => {
        const media = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 } });
        const pc = new RTCPeerConnection({ bundlePolicy: 'max-bundle' });
        const sendEncodings = simulcast
          ? [{ rid: 'q', scaleResolutionDownBy: 4 }, { rid: 'h', scaleResolutionDownBy: 2 }, { rid: 'f' }]
          : undefined;
        const transceiver = pc.addTransceiver(media.getVideoTracks()[0], { direction: 'sendonly', sendEncodings });
        const wanted = RTCRtpSender.getCapabilities('video')?.codecs
          .filter((c) => c.mimeType.toLowerCase() === `video/${name.toLowerCase()}`) ?? [];
        if (!wanted.length) throw new Error(`Chromium cannot send ${name}`);
        transceiver.setCodecPreferences(wanted);
        const w = /** @type {any} */ (window);
        w.pc = pc;
        w.resource = await w.negotiate(pc, base, `/whip/${room}`, token);
        w.token = token;
      }, { base: server.base, room, token: publishToken, name, simulcast });
      Object.assign(result, await viewer.evaluate(async ({ base, room, token, min, seconds }) => {
        const pc = new RTCPeerConnection({ bundlePolicy: 'max-bundle' });
        pc.addTransceiver('video', { direction: 'recvonly' });
        const w = /** @type {any} */ (window);
        w.pc = pc;
        w.resource = await w.negotiate(pc, base, `/whep/${room}`, token);
        w.token = token;
        const deadline = Date.now() + seconds * 1000;
        /** @type {{framesDecoded: number, mimeType?: string, width?: number, height?: number}} */
        let last = { framesDecoded: 0 };
        while (Date.now() < deadline) {
          const stats = await pc.getStats();
          stats.forEach((s) => {
            if (s.type === 'inbound-rtp' && s.kind === 'video') {
              last = {
                framesDecoded: s.framesDecoded ?? 0,
                mimeType: stats.get(s.codecId)?.mimeType,
                width: s.frameWidth,
                height: s.frameHeight,
              };
            }
          });
          if (last.framesDecoded >= min) break;
          await new Promise((r) => setTimeout(r, 100));
        }
        return last;
      }, { base: server.base, room, token: viewToken, min: MIN_FRAMES, seconds: SECONDS }));
      for (const page of [viewer, publisher]) {
        result[`delete_${page === viewer ? 'viewer' : 'publisher'}`] = await page.evaluate(async () => {
          const w = /** @type {any} */ (window);
          const res = await fetch(w.resource, { method: 'DELETE', headers: { authorization: 'Bearer ' + w.token } });
          w.pc.close();
          return res.status;
        });
      }
    } catch (e) {
      result.error = String(e);
    } finally {
      await context.close().catch(() => {});
    }
    console.log(`CODEC ${JSON.stringify(result)}`);
    results.push(result);
  }
  const failed = results.filter((r) => {
    const [name, simulcast] = String(r.codec).split('-');
    return !(Number(r.framesDecoded) >= MIN_FRAMES
      && String(r.mimeType).toLowerCase() === `video/${name.toLowerCase()}`
      && (!simulcast || (r.width === 160 && r.height === 120))
      && r.delete_viewer === 200 && r.delete_publisher === 200);
  });
  if (failed.length) dumpServerOutput(server, { tailLines: 80 });
  assert.deepEqual(failed, [], 'every codec decoded in its own codec, sessions deleted');
});
