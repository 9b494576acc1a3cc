// A Chromium WHEP viewer for interop tests run from Rust (sfu/tests/engine_interop.rs): opens a
// blank page of the server at BASE (a secure context on 127.0.0.1), offers to receive audio and
// video, POSTs the offer to BASE/whep/ROOM, applies the answer and waits until MIN video frames
// are decoded (at most SECONDS). Prints one JSON line: {ok, framesDecoded, width, height,
// audioPackets, error?}; exits 1 unless ok.
//
//   node tests/whep_viewer_page.mjs BASE ROOM MIN SECONDS

import { launchChromium } from './harness.mjs';

const [base, room, min, seconds] = process.argv.slice(2);
const result = { ok: false };
let browser;
try {
  browser = await launchChromium();
  const page = await (await browser.newContext()).newPage();
  await page.goto(`${base}/blank`, { timeout: 10_000 });
  Object.assign(result, await page.evaluate(async ({ base, room, min, seconds }) => {
    const pc = new RTCPeerConnection({ bundlePolicy: 'max-bundle' });
    pc.addTransceiver('audio', { direction: 'recvonly' });
    pc.addTransceiver('video', { direction: 'recvonly' });
    await pc.setLocalDescription(await pc.createOffer());
    const res = await fetch(`${base}/whep/${room}`, {
      method: 'POST', headers: { 'content-type': 'application/sdp' }, body: pc.localDescription.sdp,
    });
    if (res.status !== 201) return { error: `POST ${res.status}: ${await res.text()}` };
    await pc.setRemoteDescription({ type: 'answer', sdp: await res.text() });
    const deadline = Date.now() + seconds * 1000;
    let last = {};
    while (Date.now() < deadline) {
      const stats = await pc.getStats();
      last = { framesDecoded: 0, audioPackets: 0, ice: pc.iceConnectionState };
      stats.forEach((s) => {
        if (s.type === 'inbound-rtp' && s.kind === 'video') {
          Object.assign(last, { framesDecoded: s.framesDecoded ?? 0, width: s.frameWidth, height: s.frameHeight });
        }
        if (s.type === 'inbound-rtp' && s.kind === 'audio') last.audioPackets = s.packetsReceived ?? 0;
      });
      if (last.framesDecoded >= min) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    pc.close();
    return last;
  }, { base, room, min: Number(min), seconds: Number(seconds) }));
  result.ok = !result.error && result.framesDecoded >= Number(min);
} catch (e) {
  result.error = String(e);
} finally {
  await browser?.close().catch(() => {});
}
console.log(JSON.stringify(result));
process.exit(result.ok ? 0 : 1);
