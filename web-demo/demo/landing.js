// @ts-check
/**
 * The landing card: the full form or the pre-join view of an invite, the camera preview and
 * its toggles, device choice, what the server says about tokens, and join errors.
 */
import { joinTexts, renderDeviceToggle } from './prejoin.js';
import { join, setPhase } from './call.js';
import { $, h, input, select } from './dom.js';
import { startMeter, stopMeter } from './levels.js';
import { renderStatus } from './render.js';
import { MODES, session, state } from './state.js';

/**
 * @typedef {import('./state.js').Mode} Mode
 */

const params = new URLSearchParams(location.search);

function randomRoom() {
  const words = ['amber', 'brook', 'cedar', 'delta', 'ember', 'fjord', 'grove', 'harbor', 'iris', 'juniper', 'kestrel', 'lagoon'];
  const w = words[Math.floor(Math.random() * words.length)];
  return `${w}-${Math.random().toString(36).slice(2, 6)}`;
}

/** Fills the landing card from the URL (an invite's room gives the pre-join view) and wires it. */
export function initLanding() {
  // An invite names the room: land on the short pre-join view.
  $('join-form').dataset.view = params.get('room') ? 'prejoin' : 'full';
  input('room-input').value = params.get('room') ?? randomRoom();
  input('name-input').value = params.get('name') ?? `guest-${Math.floor(1000 + Math.random() * 9000)}`;
  const mode = /** @type {Mode} */ (params.get('mode'));
  if (MODES.includes(mode)) setModeRadio(mode);
  const token = params.get('token');
  if (token) {
    input('token-input').value = token;
    /** @type {HTMLDetailsElement} */ ($('advanced')).open = true;
  }
  document.querySelectorAll('input[name="mode"]').forEach((el) => el.addEventListener('change', onModeChange));
  select('camera-select').addEventListener('change', () => startPreview());
  select('mic-select').addEventListener('change', () => startPreview());
  $('prejoin-mic').addEventListener('click', () => {
    state.micMuted = !state.micMuted;
    applyPreviewToggles();
  });
  $('prejoin-camera').addEventListener('click', () => {
    state.cameraMuted = !state.cameraMuted;
    applyPreviewToggles();
  });
  $('more-options').addEventListener('click', () => {
    $('join-form').dataset.view = 'full';
    onModeChange();
    input('room-input').focus();
  });
  $('join-form').addEventListener('submit', (e) => {
    e.preventDefault();
    join().catch((err) => showJoinError(err));
  });
  onModeChange();
  explainTokens();
  if (params.get('autojoin') === '1') join().catch((err) => showJoinError(err));
}

/** @param {Mode} mode */
function setModeRadio(mode) {
  const radio = /** @type {HTMLInputElement | null} */ (document.querySelector(`input[name="mode"][value="${mode}"]`));
  if (radio) radio.checked = true;
}

/** @returns {Mode} */
export function selectedMode() {
  const radio = /** @type {HTMLInputElement | null} */ (document.querySelector('input[name="mode"]:checked'));
  return /** @type {Mode} */ (radio?.value ?? 'conference');
}

function onModeChange() {
  const watching = selectedMode() === 'watch';
  $('preview-area').hidden = watching;
  const view = $('join-form').dataset.view === 'prejoin' ? 'prejoin' : 'full';
  const texts = joinTexts(view, selectedMode(), input('room-input').value.trim());
  $('join-title').textContent = texts.title;
  $('join-subtitle').textContent = texts.subtitle;
  $('join').textContent = texts.button;
  if (view === 'prejoin') document.title = `${texts.title} · Cascade`;
  if (watching) stopPreview();
  else if (!session.previewStream) startPreview();
}

async function startPreview() {
  const note = $('preview-note');
  const cameraId = select('camera-select').value;
  const micId = select('mic-select').value;
  stopPreview();
  note.textContent = 'starting camera…';
  note.hidden = false;
  try {
    session.previewStream = await getMedia(cameraId, micId);
  } catch (e) {
    note.textContent = `No camera or microphone (${e instanceof Error ? e.name : e}). You can still join.`;
    return;
  }
  if (selectedMode() === 'watch' || state.phase !== 'landing') {
    // The user switched to watching (or joined) while the camera started.
    if (state.phase === 'landing') stopPreview();
    return;
  }
  const video = /** @type {HTMLVideoElement} */ ($('preview'));
  video.srcObject = session.previewStream;
  video.play().catch(() => {});
  applyPreviewToggles();
  await listDevices();
  startMeter('preview', session.previewStream.getAudioTracks()[0]);
}

/** Applies the pre-join microphone and camera toggles to the preview's tracks and buttons. */
function applyPreviewToggles() {
  const audio = session.previewStream?.getAudioTracks() ?? [];
  const video = session.previewStream?.getVideoTracks() ?? [];
  for (const t of audio) t.enabled = !state.micMuted;
  for (const t of video) t.enabled = !state.cameraMuted;
  renderDeviceToggle($('prejoin-mic'), state.micMuted, audio.length > 0, 'Microphone');
  renderDeviceToggle($('prejoin-camera'), state.cameraMuted, video.length > 0, 'Camera');
  if (!session.previewStream) return;
  const note = $('preview-note');
  note.hidden = video.length > 0 && !state.cameraMuted;
  note.textContent = video.length === 0 ? 'no camera' : 'Your camera is off';
}

/**
 * Camera and microphone, each optional: falls back to whichever is available.
 * @param {string} cameraId
 * @param {string} micId
 */
export async function getMedia(cameraId, micId) {
  const video = cameraId ? { deviceId: { exact: cameraId } } : { width: { ideal: 1280 }, height: { ideal: 720 } };
  const audio = micId ? { deviceId: { exact: micId } } : true;
  try {
    return await navigator.mediaDevices.getUserMedia({ video, audio });
  } catch (e) {
    try {
      return await navigator.mediaDevices.getUserMedia({ audio });
    } catch {
      return await navigator.mediaDevices.getUserMedia({ video }).catch(() => Promise.reject(e));
    }
  }
}

function stopPreview() {
  stopMeter('preview');
  session.previewStream?.getTracks().forEach((t) => t.stop());
  session.previewStream = null;
  /** @type {HTMLVideoElement} */ ($('preview')).srcObject = null;
}

/** Lists the cameras and microphones in the device choice, the preview's selected. */
export async function listDevices() {
  const devices = await navigator.mediaDevices.enumerateDevices();
  /**
   * @param {HTMLSelectElement} sel
   * @param {MediaDeviceKind} kind
   * @param {MediaStreamTrack | undefined} current
   */
  const fill = (sel, kind, current) => {
    const currentId = current?.getSettings().deviceId ?? sel.value;
    sel.replaceChildren(
      ...devices
        .filter((d) => d.kind === kind && d.deviceId)
        .map((d, i) => {
          const opt = h('option', { value: d.deviceId }, [d.label || `${kind === 'videoinput' ? 'Camera' : 'Microphone'} ${i + 1}`]);
          opt.selected = d.deviceId === currentId;
          return opt;
        }),
    );
  };
  fill(select('camera-select'), 'videoinput', session.previewStream?.getVideoTracks()[0]);
  fill(select('mic-select'), 'audioinput', session.previewStream?.getAudioTracks()[0]);
}

/** @param {unknown} err */
function showJoinError(err) {
  const msg = err instanceof Error ? err.message : String(err);
  console.error('demo: join failed', msg);
  $('join-error').textContent = msg;
  $('join').removeAttribute('disabled');
  if (session.client) {
    session.client.close();
    session.client = null;
  }
  // Not "left": this page never was in the room.
  state.connection = 'idle';
  state.media = null;
  renderStatus();
  setPhase('landing');
  if (selectedMode() !== 'watch' && !session.previewStream) startPreview();
}

/** How to get a token when the server hands out no development tokens. */
export const TOKEN_HOWTO = 'Ask your app\'s backend for one (REST POST /api/tokens with the API key), or run '
  + '`cascade token --room ROOM --identity NAME` with the server\'s configuration.';

/** @type {Promise<{public_url: string | null, dev_tokens: boolean} | null> | null} */
let serverInfoPromise = null;

/**
 * What the server tells pages (GET /api/info): its public URL and whether it hands out
 * development tokens; null if it cannot be read. Asked once per page.
 */
function serverInfo() {
  serverInfoPromise ??= fetch('/api/info', { signal: AbortSignal.timeout(3000) })
    .then((r) => (r.ok ? r.json() : null))
    .catch(() => null);
  return serverInfoPromise;
}

/**
 * The origin invite links point at: the server's configured public URL, else this page's own
 * origin.
 * @returns {Promise<string>}
 */
export async function publicOrigin() {
  return (await serverInfo())?.public_url || location.origin;
}

/** On a server without development tokens, the token field is required and says where one comes from. */
async function explainTokens() {
  const info = await serverInfo();
  if (!info || info.dev_tokens) return;
  $('token-label').textContent = 'Token (required: this server has its own API secret)';
  $('token-help').textContent = TOKEN_HOWTO;
  /** @type {HTMLDetailsElement} */ ($('advanced')).open = true;
}
