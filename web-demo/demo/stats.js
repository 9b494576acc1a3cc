// @ts-check
/**
 * The per-tile statistics overlay: resolution, frame rate, bitrate, loss and RTT from
 * getStats(), once a second.
 */
import { screenTiles, session, state, tiles } from './state.js';

/**
 * @typedef {import('./state.js').TileView} TileView
 * @typedef {import('../cascade-client.js').CascadeClient} CascadeClient
 */

async function pollStats() {
  if (!session.client || state.phase !== 'room') return;
  const c = session.client;
  const views = [...tiles.values(), ...screenTiles.values()];
  await Promise.all(views.map((v) => tileStats(c, v).catch((e) => console.log('demo: stats', String(e)))));
}

setInterval(pollStats, 1000);

/**
 * @param {CascadeClient} c
 * @param {TileView} view
 */
async function tileStats(c, view) {
  const p = state.participants[view.participantId];
  if (!p) return;
  /** @type {RTCStatsReport[]} */
  const reports = [];
  if (p.local) {
    for (const l of c.localTracks) {
      const isScreen = l.source === 'screen';
      if (isScreen !== (view.kind === 'screen') || !l.transceiver) continue;
      reports.push(await l.transceiver.sender.getStats());
    }
  } else {
    const tracks = view.video.srcObject instanceof MediaStream ? view.video.srcObject.getTracks() : [];
    for (const r of c.receiversOf(p.id)) {
      if (tracks.includes(r.receiver.track)) reports.push(await r.receiver.getStats());
    }
  }
  let width = 0, height = 0, fps = 0, bytes = 0, lost = 0, packets = 0, rtt = NaN, fractionLoss = NaN;
  for (const report of reports) {
    report.forEach((s) => {
      if (s.type === 'inbound-rtp' || s.type === 'outbound-rtp') {
        if (s.kind === 'video') {
          width = s.frameWidth ?? width;
          height = s.frameHeight ?? height;
          fps = s.framesPerSecond ?? fps;
        }
        bytes += (s.bytesReceived ?? s.bytesSent ?? 0) + (s.headerBytesReceived ?? s.headerBytesSent ?? 0);
        if (s.type === 'inbound-rtp') {
          lost += Math.max(0, s.packetsLost ?? 0);
          packets += s.packetsReceived ?? 0;
        }
      } else if (s.type === 'remote-inbound-rtp') {
        if (typeof s.roundTripTime === 'number') rtt = s.roundTripTime * 1000;
        if (typeof s.fractionLost === 'number') fractionLoss = Math.max(Number.isNaN(fractionLoss) ? 0 : fractionLoss, s.fractionLost * 100);
      } else if (s.type === 'candidate-pair' && (s.nominated || s.state === 'succeeded') && typeof s.currentRoundTripTime === 'number') {
        if (Number.isNaN(rtt)) rtt = s.currentRoundTripTime * 1000;
      }
    });
  }
  const now = performance.now();
  const prev = view.prev;
  view.prev = { time: now, bytes, lost, packets };
  let kbps = 0;
  let loss = Number.isNaN(fractionLoss) ? 0 : fractionLoss;
  if (prev && now > prev.time) {
    kbps = Math.max(0, ((bytes - prev.bytes) * 8) / (now - prev.time));
    const dl = lost - prev.lost;
    const dp = packets - prev.packets;
    if (!p.local && dl + dp > 0) loss = (100 * Math.max(0, dl)) / (dl + dp);
  }
  const el = view.stats;
  Object.assign(el.dataset, {
    width: String(width),
    height: String(height),
    fps: String(Math.round(fps)),
    kbps: String(Math.round(kbps)),
    loss: loss.toFixed(1),
    rtt: Number.isNaN(rtt) ? '' : String(Math.round(rtt)),
  });
  const parts = [];
  if (width) parts.push(`${width}×${height}`, `${Math.round(fps)} fps`);
  parts.push(kbps >= 1000 ? `${(kbps / 1000).toFixed(1)} Mbps` : `${Math.round(kbps)} kbps`);
  parts.push(`loss ${loss.toFixed(1)}%`);
  if (!Number.isNaN(rtt)) parts.push(`RTT ${Math.round(rtt)} ms`);
  el.textContent = reports.length ? parts.join(' · ') : '';
}
