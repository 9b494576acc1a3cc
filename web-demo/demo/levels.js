// @ts-check
/**
 * Audio levels: a meter per microphone (the preview and each participant), the preview's level
 * bar and who is speaking.
 */
import { $ } from './dom.js';
import { renderAll } from './render.js';
import { session, state } from './state.js';

/** RMS level above which a microphone counts as speaking. */
const SPEAKING_LEVEL = 0.02;
/** How long a participant stays "speaking" after the last loud moment. */
const SPEAKING_HOLD_MS = 600;

/**
 * Audio level meters: key (participant id or 'preview') -> analyser.
 * @type {Map<string, {analyser: AnalyserNode, source: MediaStreamAudioSourceNode, track: MediaStreamTrack, lastLoud: number}>}
 */
export const meters = new Map();

/**
 * @param {string} key
 * @param {MediaStreamTrack | undefined} track
 */
export function startMeter(key, track) {
  if (!track) return;
  const existing = meters.get(key);
  if (existing?.track === track) return;
  stopMeter(key);
  session.audioCtx ??= new AudioContext();
  try {
    const source = session.audioCtx.createMediaStreamSource(new MediaStream([track]));
    const analyser = session.audioCtx.createAnalyser();
    analyser.fftSize = 512;
    source.connect(analyser);
    meters.set(key, { analyser, source, track, lastLoud: 0 });
  } catch (e) {
    console.log('demo: no audio meter', String(e));
  }
}

/** @param {string} key */
export function stopMeter(key) {
  const m = meters.get(key);
  if (!m) return;
  m.source.disconnect();
  meters.delete(key);
}

const levelBuffer = new Float32Array(512);

/** @param {AnalyserNode} analyser */
function level(analyser) {
  analyser.getFloatTimeDomainData(levelBuffer);
  let sum = 0;
  for (const v of levelBuffer) sum += v * v;
  return Math.sqrt(sum / levelBuffer.length);
}

function pollLevels() {
  const now = performance.now();
  let changed = false;
  for (const [key, m] of meters) {
    const l = m.track.enabled && m.track.readyState === 'live' ? level(m.analyser) : 0;
    if (key === 'preview') {
      /** @type {HTMLElement} */ ($('preview-meter')).style.width = `${Math.min(100, l * 400)}%`;
      continue;
    }
    if (l > SPEAKING_LEVEL) m.lastLoud = now;
    const p = state.participants[key];
    const speaking = now - m.lastLoud < SPEAKING_HOLD_MS && !(p?.muted ?? false);
    if (p && p.speaking !== speaking) {
      p.speaking = speaking;
      changed = true;
    }
  }
  for (const p of Object.values(state.participants)) {
    if (p.speaking && !meters.has(p.id)) {
      p.speaking = false;
      changed = true;
    }
  }
  if (changed) renderAll();
}

setInterval(pollLevels, 100);
