// Chromium publishing and receiving one video codec at a time through a WHIP/WHEP server at
// BASE (sfu/tests/engine_interop.rs runs it against Cascade's own engine). For each codec: a
// publisher page sends its fake camera with only that codec offered (setCodecPreferences), a
// viewer page receives, and the viewer must decode MIN frames in that codec; both sessions are
// then deleted. `VP8-simulcast` sends three simulcast layers (rids q, h, f; q is a quarter of
// the size). Prints one JSON line per codec: {codec, ok, framesDecoded, mimeType, width,
// height, error?}; exits 1 unless every codec is ok.
//
//   node tests/engine_codecs_page.mjs BASE MIN SECONDS VP8 VP9 H264 VP8-simulcast

import { launchChromium } from './harness.mjs';

const [base, min, seconds, ...codecs] = process.argv.slice(2);

/**
 * Runs in a page: negotiates with `${base}/${path}` over WHIP/WHEP; the peer connection and the
 * session resource.
 */
const NEGOTIATE = `async function negotiate(pc, base, path) {
  await pc.setLocalDescription(await pc.createOffer());
  const res = await fetch(base + path, {
    method: 'POST', headers: { 'content-type': 'application/sdp' }, body: pc.localDescription.sdp,
  });
  if (res.status !== 201) throw new Error('POST ' + path + ': ' + res.status + ' ' + await res.text());
  const resource = res.headers.get('location');
  await pc.setRemoteDescription({ type: 'answer', sdp: await res.text() });
  return resource;
}`;

let allOk = codecs.length > 0;
const browser = await launchChromium();
try {
  for (const codec of codecs) {
    const result = { codec, ok: false };
    const context = await browser.newContext();
    try {
      const publisher = await context.newPage();
      const viewer = await context.newPage();
      for (const page of [publisher, viewer]) {
        await page.goto(`${base}/blank`, { timeout: 10_000 });
        await page.addScriptTag({ content: `window.negotiate = ${NEGOTIATE};` });
      }
      const [name, simulcast] = codec.split('-');
      await publisher.evaluate(async ({ base, name, simulcast }) => {
        const media = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 } });
        const pc = new RTCPeerConnection({ bundlePolicy: 'max-bundle' });
        const sendEncodings = simulcast
          ? [{ rid: 'q', scaleResolutionDownBy: 4 }, { rid: 'h', scaleResolutionDownBy: 2 }, { rid: 'f' }]
          : undefined;
        const transceiver = pc.addTransceiver(media.getVideoTracks()[0], { direction: 'sendonly', sendEncodings });
        const wanted = RTCRtpSender.getCapabilities('video').codecs
          .filter((c) => c.mimeType.toLowerCase() === `video/${name.toLowerCase()}`);
        if (!wanted.length) throw new Error(`Chromium cannot send ${name}`);
        transceiver.setCodecPreferences(wanted);
        const w = /** @type {any} */ (window);
        w.pc = pc;
        w.resource = await w.negotiate(pc, base, '/whip/codecs');
      }, { base, name, simulcast });
      Object.assign(result, await viewer.evaluate(async ({ base, min, seconds }) => {
        const pc = new RTCPeerConnection({ bundlePolicy: 'max-bundle' });
        pc.addTransceiver('video', { direction: 'recvonly' });
        const w = /** @type {any} */ (window);
        w.pc = pc;
        w.resource = await w.negotiate(pc, base, '/whep/codecs');
        const deadline = Date.now() + seconds * 1000;
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
      }, { base, min: Number(min), seconds: Number(seconds) }));
      result.ok = result.framesDecoded >= Number(min)
        && result.mimeType?.toLowerCase() === `video/${name.toLowerCase()}`
        // The forwarded simulcast layer is q, a quarter of the camera's size.
        && (!simulcast || (result.width === 160 && result.height === 120));
      for (const page of [viewer, publisher]) {
        await page.evaluate(async (base) => {
          const w = /** @type {any} */ (window);
          w.pc.close();
          await fetch(base + w.resource, { method: 'DELETE' });
        }, base);
      }
    } catch (e) {
      result.error = String(e);
    } finally {
      await context.close().catch(() => {});
    }
    allOk &&= result.ok;
    console.log(JSON.stringify(result));
  }
} finally {
  await browser.close().catch(() => {});
}
process.exit(allOk ? 0 : 1);
