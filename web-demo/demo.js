// @ts-check
/**
 * The Cascade demo page: conference, broadcast host and broadcast viewer on top of
 * cascade-client.js. For tests, `window.cascadeDemo = {client, state}` and `data-testid`
 * attributes (listed in docs/client.md).
 */
import { CascadeClient, CascadeError, defaultWsUrl, fetchDevToken } from './cascade-client.js';
import { layoutTiles } from './layout.js';
import { chatDrawer } from './demo/drawer.js';
import { joinTexts, renderDeviceToggle } from './demo/prejoin.js';

/**
 * @typedef {'conference' | 'host' | 'watch'} Mode
 * @typedef {'landing' | 'joining' | 'room' | 'ended'} Phase
 * @typedef {{id: string, identity: string, canPublish: boolean, local: boolean,
 *   muted: boolean, cameraMuted: boolean, speaking: boolean, sharing: boolean}} ParticipantState
 * @typedef {{identity: string, name: string, text: string, local: boolean, time: number}} ChatEntry
 * @typedef {{
 *   el: HTMLElement, video: HTMLVideoElement, stats: HTMLElement, kind: 'camera' | 'screen',
 *   participantId: string, prev: {time: number, bytes: number, lost: number, packets: number} | null,
 * }} TileView
 */

const MODES = /** @type {const} */ (['conference', 'host', 'watch']);
const SPEAKING_LEVEL = 0.02;
const SPEAKING_HOLD_MS = 600;

/** @param {string} id */
function $(id) {
  const el = document.getElementById(id);
  if (!el) throw new Error(`#${id} missing`);
  return el;
}
const input = (/** @type {string} */ id) => /** @type {HTMLInputElement} */ ($(id));
const select = (/** @type {string} */ id) => /** @type {HTMLSelectElement} */ ($(id));

/**
 * @template {keyof HTMLElementTagNameMap} K
 * @param {K} tag
 * @param {Record<string, string>} [attrs]
 * @param {(Node | string)[]} [children]
 * @returns {HTMLElementTagNameMap[K]}
 */
function h(tag, attrs = {}, children = []) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') el.className = v;
    else el.setAttribute(k, v);
  }
  el.append(...children);
  return el;
}

// ---- state ------------------------------------------------------------------------------

const state = {
  /** @type {Phase} */
  phase: 'landing',
  /** @type {Mode} */
  mode: 'conference',
  room: '',
  identity: '',
  /** Signaling connection: idle, connecting, connected, reconnecting, disconnected, closed. */
  connection: 'idle',
  /** Peer connection state of the current RTCPeerConnection. */
  media: /** @type {string | null} */ (null),
  reconnects: 0,
  /** Our participant id (changes after a reconnect). */
  selfId: '',
  /** @type {Record<string, ParticipantState>} */
  participants: {},
  /** @type {ChatEntry[]} */
  chat: [],
  /** @type {{code: string, message: string}[]} */
  errors: [],
  inviteUrl: '',
  /** Cascade track id -> source announced by its publisher (camera, microphone, screen). */
  /** @type {Record<string, string>} */
  sources: {},
  micMuted: false,
  cameraMuted: false,
  sharing: false,
  /** The per-tile stats overlay (off until the stats button turns it on). */
  showStats: false,
  /** Attempt of the reconnect in progress (0: none). */
  reconnectAttempt: 0,
  /** A viewer whose host left: the stage says so rather than "waiting to start". */
  hostLeft: false,
};

/** @type {CascadeClient | null} */
let client = null;
/** @type {MediaStream | null} */
let previewStream = null;
/** @type {MediaStream | null} */
let screenStream = null;
/** @type {AudioContext | null} */
let audioCtx = null;
/** participant id -> camera tile, and participant id -> screen tile. */
/** @type {Map<string, TileView>} */
const tiles = new Map();
/** @type {Map<string, TileView>} */
const screenTiles = new Map();
/** Received tracks by participant: trackId -> track. @type {Map<string, Map<string, MediaStreamTrack>>} */
const remoteTracks = new Map();
/** Audio level meters: key (participant id or 'preview') -> analyser. */
/** @type {Map<string, {analyser: AnalyserNode, source: MediaStreamAudioSourceNode, track: MediaStreamTrack, lastLoud: number}>} */
const meters = new Map();

Object.defineProperty(window, 'cascadeDemo', {
  value: Object.freeze({
    get client() {
      return client;
    },
    state,
  }),
});

// ---- landing ----------------------------------------------------------------------------

const params = new URLSearchParams(location.search);

function randomRoom() {
  const words = ['amber', 'brook', 'cedar', 'delta', 'ember', 'fjord', 'grove', 'harbor', 'iris', 'juniper', 'kestrel', 'lagoon'];
  const w = words[Math.floor(Math.random() * words.length)];
  return `${w}-${Math.random().toString(36).slice(2, 6)}`;
}

function initLanding() {
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
function selectedMode() {
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
  else if (!previewStream) startPreview();
}

async function startPreview() {
  const note = $('preview-note');
  const cameraId = select('camera-select').value;
  const micId = select('mic-select').value;
  stopPreview();
  note.textContent = 'starting camera…';
  note.hidden = false;
  try {
    previewStream = await getMedia(cameraId, micId);
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
  video.srcObject = previewStream;
  video.play().catch(() => {});
  applyPreviewToggles();
  await listDevices();
  startMeter('preview', previewStream.getAudioTracks()[0]);
}

/** Applies the pre-join microphone and camera toggles to the preview's tracks and buttons. */
function applyPreviewToggles() {
  const audio = previewStream?.getAudioTracks() ?? [];
  const video = previewStream?.getVideoTracks() ?? [];
  for (const t of audio) t.enabled = !state.micMuted;
  for (const t of video) t.enabled = !state.cameraMuted;
  renderDeviceToggle($('prejoin-mic'), state.micMuted, audio.length > 0, 'Microphone');
  renderDeviceToggle($('prejoin-camera'), state.cameraMuted, video.length > 0, 'Camera');
  if (!previewStream) return;
  const note = $('preview-note');
  note.hidden = video.length > 0 && !state.cameraMuted;
  note.textContent = video.length === 0 ? 'no camera' : 'Your camera is off';
}

/**
 * Camera and microphone, each optional: falls back to whichever is available.
 * @param {string} cameraId
 * @param {string} micId
 */
async function getMedia(cameraId, micId) {
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
  previewStream?.getTracks().forEach((t) => t.stop());
  previewStream = null;
  /** @type {HTMLVideoElement} */ ($('preview')).srcObject = null;
}

async function listDevices() {
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
  fill(select('camera-select'), 'videoinput', previewStream?.getVideoTracks()[0]);
  fill(select('mic-select'), 'audioinput', previewStream?.getAudioTracks()[0]);
}

/** @param {unknown} err */
function showJoinError(err) {
  const msg = err instanceof Error ? err.message : String(err);
  console.error('demo: join failed', msg);
  $('join-error').textContent = msg;
  $('join').removeAttribute('disabled');
  if (client) {
    client.close();
    client = null;
  }
  // Not "left": this page never was in the room.
  state.connection = 'idle';
  state.media = null;
  renderStatus();
  setPhase('landing');
  if (selectedMode() !== 'watch' && !previewStream) startPreview();
}

// ---- joining ----------------------------------------------------------------------------

/** How to get a token when the server hands out no development tokens. */
const TOKEN_HOWTO = 'Ask your app\'s backend for one (REST POST /api/tokens with the API key), or run '
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
async function publicOrigin() {
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

async function join() {
  const form = /** @type {HTMLFormElement} */ ($('join-form'));
  if (!form.reportValidity()) return;
  $('join-error').textContent = '';
  $('join').setAttribute('disabled', '');
  const mode = selectedMode();
  const room = input('room-input').value.trim();
  const identity = input('name-input').value.trim();
  // Created inside the click, so audio may start.
  audioCtx ??= new AudioContext();
  audioCtx.resume().catch(() => {});

  let token = input('token-input').value.trim();
  if (!token) {
    try {
      token = await fetchDevToken({ room, identity, role: mode === 'watch' ? 'viewer' : 'publisher' });
    } catch (e) {
      if (e instanceof CascadeError && e.code === 'not_found') {
        /** @type {HTMLDetailsElement} */ ($('advanced')).open = true;
        throw new Error(`This server does not hand out development tokens: paste an access token for room "${room}". ${TOKEN_HOWTO}`);
      }
      throw e;
    }
  }

  Object.assign(state, { mode, room, identity, participants: {}, chat: [], sources: {}, selfId: '', sharing: false });
  state.inviteUrl = `${await publicOrigin()}/?${new URLSearchParams({ room, mode: mode === 'conference' ? 'conference' : 'watch' })}`;
  history.replaceState(null, '', `/?${new URLSearchParams({ room, mode })}`);
  setPhase('joining');

  const c = new CascadeClient({ log: (...args) => console.log(...args) });
  client = c;
  wireClient(c);
  await c.connect(defaultWsUrl());
  let info;
  try {
    info = await c.join(token, { room });
  } catch (e) {
    if (e instanceof CascadeError && e.code === 'permission_denied') {
      throw new Error(`This token cannot join room "${room}" (${e.message.replace(/^permission_denied: /, '')}). Use a token for "${room}", or change the room.`);
    }
    throw e;
  }
  if (client !== c) return;
  document.title = `${info.room} · Cascade`;
  $('room-title').textContent = info.room;

  if (mode !== 'watch' && info.participant.can_publish) {
    if (!previewStream) {
      try {
        previewStream = await getMedia(select('camera-select').value, select('mic-select').value);
      } catch (e) {
        toast(`No camera or microphone: ${e instanceof Error ? e.name : e}`);
      }
    }
    if (previewStream) {
      for (const track of previewStream.getTracks()) {
        if (track.kind === 'audio') track.enabled = !state.micMuted;
        else track.enabled = !state.cameraMuted;
        c.publishTrack(track, { stream: previewStream });
      }
      stopMeter('preview');
    }
  } else if (mode !== 'watch') {
    toast('Your token may not publish: watching only.');
  }
  setPhase('room');
  renderAll();
}

/** @param {CascadeClient} c */
function wireClient(c) {
  /**
   * @param {string} type
   * @param {(detail: any) => void} fn
   */
  const on = (type, fn) =>
    c.addEventListener(type, (ev) => {
      if (client !== c) return;
      try {
        fn(/** @type {CustomEvent} */ (ev).detail);
      } catch (e) {
        console.error(`demo: ${type} handler failed`, e);
      }
    });

  on('joined', (info) => {
    const oldSelf = state.selfId;
    if (oldSelf && oldSelf !== info.participant.id) {
      delete state.participants[oldSelf];
      rekeyTile(tiles, oldSelf, info.participant.id);
      rekeyTile(screenTiles, oldSelf, info.participant.id);
      const meter = meters.get(oldSelf);
      if (meter) {
        meters.delete(oldSelf);
        meters.set(info.participant.id, meter);
      }
    }
    state.selfId = info.participant.id;
    addParticipant(info.participant, true);
    const present = new Set(info.participants.map((/** @type {any} */ p) => p.id));
    for (const id of Object.keys(state.participants)) {
      if (id !== state.selfId && !present.has(id)) removeParticipant(id);
    }
    for (const p of info.participants) addParticipant(p, false);
    if (state.phase === 'room') renderAll();
  });
  on('reconnected', () => {
    state.reconnects += 1;
    toast('Reconnected');
    announceSources();
  });
  on('resumed', () => {
    state.reconnects += 1;
    toast('Reconnected');
  });
  on('reconnecting', ({ attempt, delayMs }) => {
    console.log(`demo: reconnecting (attempt ${attempt}, in ${delayMs} ms)`);
    state.reconnectAttempt = attempt;
    renderStatus();
  });
  on('connection_state', ({ state: s, peer }) => {
    state.connection = s;
    state.media = peer;
    if (s === 'connected') state.reconnectAttempt = 0;
    renderStatus();
  });
  on('participant_joined', ({ participant }) => {
    addParticipant(participant, false);
    if (participant.can_publish || state.mode !== 'watch') toast(`${participant.identity} joined`);
    announceSources();
    renderAll();
  });
  on('participant_left', ({ participantId, identity, reason }) => {
    const wasHost = state.mode === 'watch' && state.participants[participantId]?.canPublish;
    removeParticipant(participantId);
    if (wasHost && !Object.values(state.participants).some((p) => !p.local && p.canPublish)) state.hostLeft = true;
    const why = reason === 'disconnected' || reason === 'timeout' ? ' (connection lost)' : reason === 'replaced' ? ' (joined again elsewhere)' : '';
    // Viewers hear about hosts only (not about the other viewers).
    if (identity && (state.mode !== 'watch' || wasHost)) toast(wasHost ? `${identity}, the host, left${why}` : `${identity} left${why}`);
    renderAll();
  });
  on('track_published', () => renderAll());
  on('local_track_published', ({ trackId, source }) => {
    state.sources[trackId] = source;
    announceSources();
    renderAll();
  });
  on('track', ({ trackId, participantId, mediaStreamTrack }) => {
    let tracks = remoteTracks.get(participantId);
    if (!tracks) remoteTracks.set(participantId, (tracks = new Map()));
    tracks.set(trackId, mediaStreamTrack);
    renderAll();
  });
  on('track_removed', ({ trackId, participantId }) => {
    remoteTracks.get(participantId)?.delete(trackId);
    renderAll();
  });
  on('track_unpublished', ({ trackId, participantId }) => {
    remoteTracks.get(participantId)?.delete(trackId);
    renderAll();
  });
  on('track_muted', () => renderAll());
  on('data', ({ participantId, identity, payload }) => onData(participantId, identity, payload));
  on('left', ({ reason }) => {
    if (reason === 'replaced') endCall('You joined this room from somewhere else', 'This window was disconnected because the same name joined the room again.');
  });
  on('disconnected', ({ willReconnect, reason }) => {
    if (!willReconnect && state.phase === 'room') endCall('Disconnected', `The connection to the server ended (${reason || 'closed'}).`);
  });
  on('error', ({ code, message, ref }) => {
    state.errors.push({ code, message });
    console.warn('demo: error', code, message);
    if (ref === 'data') toast(code === 'permission_denied' ? 'You may not send messages in this room.' : `Message not sent: ${message}`);
    else if (state.phase === 'room') toast(`${code}: ${message}`);
  });
}

/**
 * @param {Map<string, TileView>} map
 * @param {string} from
 * @param {string} to
 */
function rekeyTile(map, from, to) {
  const view = map.get(from);
  if (!view) return;
  map.delete(from);
  view.participantId = to;
  view.el.dataset.participant = to;
  map.set(to, view);
}

/**
 * @param {{id: string, identity: string, can_publish: boolean}} p
 * @param {boolean} local
 */
function addParticipant(p, local) {
  const prev = state.participants[p.id];
  state.participants[p.id] = {
    id: p.id,
    identity: p.identity,
    canPublish: p.can_publish,
    local,
    muted: prev?.muted ?? false,
    cameraMuted: prev?.cameraMuted ?? false,
    speaking: prev?.speaking ?? false,
    sharing: prev?.sharing ?? false,
  };
}

/** @param {string} id */
function removeParticipant(id) {
  delete state.participants[id];
  remoteTracks.delete(id);
}

/**
 * @param {string} participantId
 * @param {string} identity
 * @param {any} payload
 */
function onData(participantId, identity, payload) {
  if (!payload || typeof payload !== 'object') return;
  if (payload.kind === 'chat' && typeof payload.text === 'string') {
    addChat({ identity, name: identity, text: payload.text, local: false, time: Date.now() });
  } else if (payload.kind === 'sources' && payload.tracks && typeof payload.tracks === 'object') {
    for (const [trackId, source] of Object.entries(payload.tracks)) {
      if (typeof source === 'string' && /^TR_/.test(trackId)) state.sources[trackId] = source;
    }
    renderAll();
  }
}

/** Tells the others which of our tracks is the camera and which the screen. */
function announceSources() {
  if (!client) return;
  /** @type {Record<string, string>} */
  const tracks = {};
  for (const l of client.localTracks) if (l.trackId) tracks[l.trackId] = l.source;
  if (Object.keys(tracks).length) client.sendData({ kind: 'sources', tracks });
}

// ---- in the room ------------------------------------------------------------------------

/** @param {Phase} phase */
function setPhase(phase) {
  state.phase = phase;
  document.body.dataset.phase = phase;
  $('landing').hidden = phase !== 'landing' && phase !== 'joining';
  $('room').hidden = phase !== 'room';
  $('ended').hidden = phase !== 'ended';
  if (phase === 'room') {
    const watching = state.mode === 'watch' || !client?.participant?.can_publish;
    for (const id of ['mic', 'camera', 'screen']) {
      const el = document.getElementById(id);
      if (watching) el?.remove();
    }
    $('grid').classList.toggle('stage', state.mode === 'watch');
    document.body.dataset.mode = state.mode;
  }
  renderStatus();
}

function renderStatus() {
  const el = document.querySelector('[data-testid="status"]');
  if (!(el instanceof HTMLElement)) return;
  const s = state.connection;
  let text = { idle: 'not connected', connecting: 'connecting…', connected: 'connected', reconnecting: 'reconnecting…', disconnected: 'disconnected', closed: 'left' }[s] ?? s;
  if (s === 'connected' && state.media && state.media !== 'connected' && localOrRemoteMedia()) {
    text = state.media === 'failed' ? 'media failed' : 'connected (media connecting…)';
  }
  el.dataset.state = s;
  el.dataset.media = state.media ?? '';
  const textEl = el.querySelector('.status-text');
  if (textEl) textEl.textContent = text;
  // Lost the server: say so on the stage, not only in the status pill.
  const banner = $('connection-banner');
  banner.hidden = !(state.phase === 'room' && s === 'reconnecting');
  if (!banner.hidden) {
    const attempt = state.reconnectAttempt > 1 ? ` (attempt ${state.reconnectAttempt})` : '';
    banner.textContent = `Connection to the server lost. Reconnecting${attempt}… Your call resumes where it was.`;
  }
}

function localOrRemoteMedia() {
  return (client?.localTracks.length ?? 0) > 0 || remoteTracks.size > 0;
}

/** Which source a received track is: announced by its publisher, else guessed. */
function sourceOf(/** @type {string} */ trackId, /** @type {string} */ participantId) {
  const announced = state.sources[trackId];
  if (announced) return announced;
  const info = client?.tracks.get(trackId);
  if (info?.kind === 'audio') return 'microphone';
  // Guess: the participant's first video track is the camera, later ones are screens.
  const videos = [...(client?.tracks.values() ?? [])].filter((t) => t.participant === participantId && t.kind === 'video');
  const cameras = videos.filter((t) => state.sources[t.id] === 'camera');
  if (cameras.length) return 'screen';
  return videos[0]?.id === trackId || videos.length === 0 ? 'camera' : 'screen';
}

/** Gap between tiles, px. */
const TILE_GAP = 12;

/**
 * Places the tiles on the stage (layout.js): a grid that fills it, or a shared screen on the
 * stage with the cameras in a filmstrip. Runs after every render and when the stage resizes.
 */
function layoutStage() {
  const grid = $('grid');
  const views = /** @type {HTMLElement[]} */ ([...grid.children].filter((el) => el.classList.contains('tile')));
  const style = getComputedStyle(grid);
  const [left, top] = [parseFloat(style.paddingLeft), parseFloat(style.paddingTop)];
  const width = grid.clientWidth - left - parseFloat(style.paddingRight);
  const height = grid.clientHeight - top - parseFloat(style.paddingBottom);
  const boxes = layoutTiles({ count: views.length, screens: screenTiles.size, width, height, gap: TILE_GAP });
  views.forEach((el, i) => {
    const b = boxes[i];
    if (!b) return;
    el.style.left = `${left + b.x}px`;
    el.style.top = `${top + b.y}px`;
    el.style.width = `${b.w}px`;
    el.style.height = `${b.h}px`;
  });
}
new ResizeObserver(() => layoutStage()).observe($('grid'));

/** Recomputes tiles, participant list and controls from the client's state. */
function renderAll() {
  if (!client || state.phase !== 'room') return;
  const grid = $('grid');
  const wanted = new Set();
  const wantedScreens = new Set();

  for (const p of Object.values(state.participants)) {
    if (!p.canPublish) continue; // viewers have no tile
    const infos = [...client.tracks.values()].filter((t) => t.participant === p.id);
    /** @type {MediaStreamTrack[]} */
    let camTracks = [];
    /** @type {MediaStreamTrack | null} */
    let screenTrack = null;
    let audioTrack = /** @type {MediaStreamTrack | null} */ (null);
    if (p.local) {
      for (const l of client.localTracks) {
        if (l.source === 'screen') screenTrack = l.track;
        else if (l.track.kind === 'video') camTracks.push(l.track);
        else if (l.source === 'microphone') audioTrack = l.track;
      }
      p.muted = state.micMuted;
      p.cameraMuted = state.cameraMuted;
    } else {
      for (const [trackId, track] of remoteTracks.get(p.id) ?? []) {
        const src = sourceOf(trackId, p.id);
        if (track.kind === 'audio') {
          camTracks.push(track);
          if (src === 'microphone') audioTrack ??= track;
        } else if (src === 'screen') screenTrack = track;
        else camTracks.push(track);
      }
      const audios = infos.filter((t) => t.kind === 'audio' && sourceOf(t.id, p.id) !== 'screen_audio');
      const cams = infos.filter((t) => t.kind === 'video' && sourceOf(t.id, p.id) === 'camera');
      p.muted = audios.length > 0 && audios.every((t) => t.muted);
      p.cameraMuted = cams.length > 0 && cams.every((t) => t.muted);
    }
    p.sharing = screenTrack !== null;
    wanted.add(p.id);
    const view = tiles.get(p.id) ?? createTile(p.id, 'camera');
    updateTile(view, p, camTracks);
    if (audioTrack) startMeter(p.id, audioTrack);
    else stopMeter(p.id);
    if (screenTrack) {
      wantedScreens.add(p.id);
      const sv = screenTiles.get(p.id) ?? createTile(p.id, 'screen');
      updateTile(sv, p, [screenTrack]);
    }
  }
  for (const [id, view] of tiles) {
    if (!wanted.has(id)) {
      view.el.remove();
      tiles.delete(id);
      stopMeter(id);
    }
  }
  for (const [id, view] of screenTiles) {
    if (!wantedScreens.has(id)) {
      view.el.remove();
      screenTiles.delete(id);
    }
  }
  // Order: screens first, then the others, ourselves last (hosts first for viewers).
  const ordered = [
    ...screenTiles.values(),
    ...[...tiles.values()].sort((a, b) => {
      const pa = state.participants[a.participantId];
      const pb = state.participants[b.participantId];
      return Number(pa?.local) - Number(pb?.local) || (pa?.identity ?? '').localeCompare(pb?.identity ?? '');
    }),
  ];
  ordered.forEach((view, i) => {
    if (grid.children[i] !== view.el) grid.insertBefore(view.el, grid.children[i] ?? null);
  });
  grid.dataset.count = String(ordered.length);
  grid.classList.toggle('has-screen', screenTiles.size > 0);
  layoutStage();

  const empty = $('empty-note');
  empty.hidden = ordered.length > 0;
  if (ordered.length > 0) state.hostLeft = false;
  empty.textContent = state.mode !== 'watch'
    ? 'Nobody is here yet.'
    : state.hostLeft ? 'The host has left. The broadcast continues if a host comes back.' : 'Waiting for the host to start…';

  renderParticipants();
  renderControls();
}

/**
 * @param {string} participantId
 * @param {'camera' | 'screen'} kind
 * @returns {TileView}
 */
function createTile(participantId, kind) {
  const video = h('video', { autoplay: '', playsinline: '' });
  video.playsInline = true;
  const stats = h('div', { class: 'tile-stats', 'data-testid': 'tile-stats' });
  const el = h('div', { class: `tile ${kind}`, 'data-testid': kind === 'screen' ? 'screen-tile' : 'tile', 'data-participant': participantId }, [
    video,
    h('div', { class: 'avatar', 'aria-hidden': 'true' }),
    stats,
    h('div', { class: 'tile-label' }, [
      h('span', { class: 'tile-mic', 'data-testid': 'tile-mic', title: 'microphone muted' }, ['🔇']),
      h('span', { class: 'tile-name', 'data-testid': 'tile-name' }),
    ]),
  ]);
  /** @type {TileView} */
  const view = { el, video, stats, kind, participantId, prev: null };
  (kind === 'screen' ? screenTiles : tiles).set(participantId, view);
  return view;
}

/**
 * @param {TileView} view
 * @param {ParticipantState} p
 * @param {MediaStreamTrack[]} tracks
 */
function updateTile(view, p, tracks) {
  const { el, video } = view;
  el.dataset.identity = p.identity;
  el.dataset.local = String(p.local);
  el.dataset.muted = String(p.muted);
  el.dataset.cameraMuted = String(p.cameraMuted);
  el.dataset.speaking = String(p.speaking && view.kind === 'camera');
  el.classList.toggle('speaking', p.speaking && view.kind === 'camera');
  const name = view.kind === 'screen' ? `${p.identity} (screen)` : p.local ? `${p.identity} (you)` : p.identity;
  const nameEl = el.querySelector('.tile-name');
  if (nameEl && nameEl.textContent !== name) nameEl.textContent = name;
  const avatar = el.querySelector('.avatar');
  if (avatar) avatar.textContent = initials(p.identity);
  const hasVideo = tracks.some((t) => t.kind === 'video');
  el.dataset.video = String(hasVideo && !(view.kind === 'camera' && p.cameraMuted));
  // Our own audio is never played back; our camera is mirrored.
  video.muted = p.local;
  el.classList.toggle('mirror', p.local && view.kind === 'camera');
  const current = video.srcObject instanceof MediaStream ? video.srcObject.getTracks() : [];
  const same = current.length === tracks.length && tracks.every((t) => current.includes(t));
  if (!same) {
    video.srcObject = tracks.length ? new MediaStream(tracks) : null;
    if (tracks.length) video.play().catch((e) => console.log('demo: play()', String(e)));
  }
}

/** @param {string} name */
function initials(name) {
  const parts = name.split(/[\s._-]+/).filter(Boolean);
  return ((parts[0]?.[0] ?? '?') + (parts[1]?.[0] ?? '')).toUpperCase();
}

function renderParticipants() {
  const list = $('participant-list');
  const people = Object.values(state.participants).sort(
    (a, b) => Number(b.local) - Number(a.local) || Number(b.canPublish) - Number(a.canPublish) || a.identity.localeCompare(b.identity),
  );
  list.replaceChildren(
    ...people.map((p) => {
      const role = state.mode === 'conference' ? '' : p.canPublish ? 'host' : 'viewer';
      return h('li', { 'data-testid': 'participant', 'data-participant': p.id, 'data-identity': p.identity, 'data-muted': String(p.muted), class: p.speaking ? 'speaking' : '' }, [
        h('span', { class: 'avatar small', 'aria-hidden': 'true' }, [initials(p.identity)]),
        h('span', { class: 'pname' }, [p.identity, p.local ? ' (you)' : '']),
        ...(role ? [h('span', { class: `badge ${role}` }, [role])] : []),
        ...(p.canPublish && p.muted ? [h('span', { class: 'pmuted', title: 'muted' }, ['🔇'])] : []),
      ]);
    }),
  );
  $('participant-count').textContent = String(people.length);
}

/** Renders a mute toggle: `[title, label]` of `live` while unmuted, of `muted` while muted. */
function renderMuteButton(button, isMuted, enabled, live, muted) {
  if (!button) return;
  const [title, label] = isMuted ? muted : live;
  button.dataset.muted = String(isMuted);
  button.setAttribute('aria-pressed', String(isMuted));
  button.toggleAttribute('disabled', !enabled);
  button.title = title;
  setLabel(button, label);
}

function renderControls() {
  const mic = document.getElementById('mic');
  const cam = document.getElementById('camera');
  const screen = document.getElementById('screen');
  const hasMic = client?.localTracks.some((l) => l.source === 'microphone') ?? false;
  const hasCam = client?.localTracks.some((l) => l.source === 'camera') ?? false;
  renderMuteButton(mic, state.micMuted, hasMic, ['Mute microphone', 'Mute'], ['Unmute microphone', 'Unmute']);
  renderMuteButton(cam, state.cameraMuted, hasCam, ['Turn camera off', 'Stop video'], ['Turn camera on', 'Start video']);
  if (screen) {
    screen.dataset.sharing = String(state.sharing);
    screen.setAttribute('aria-pressed', String(state.sharing));
    setLabel(screen, state.sharing ? 'Stop share' : 'Share');
    screen.toggleAttribute('disabled', !navigator.mediaDevices?.getDisplayMedia);
  }
  $('stats-toggle').setAttribute('aria-pressed', String(state.showStats));
  $('invite').dataset.inviteUrl = state.inviteUrl;
  document.body.classList.toggle('hide-stats', !state.showStats);
}

/**
 * @param {HTMLElement} button
 * @param {string} text
 */
function setLabel(button, text) {
  const label = button.querySelector('.label');
  if (label) label.textContent = text;
}

function toggleMic() {
  if (!client) return;
  state.micMuted = !state.micMuted;
  for (const l of client.localTracks) if (l.source === 'microphone') client.mute(l.track, state.micMuted);
  renderAll();
}

function toggleCamera() {
  if (!client) return;
  state.cameraMuted = !state.cameraMuted;
  for (const l of client.localTracks) if (l.source === 'camera') client.mute(l.track, state.cameraMuted);
  renderAll();
}

async function toggleScreen() {
  if (!client) return;
  if (screenStream) {
    stopScreen();
    return;
  }
  try {
    const stream = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false });
    if (!client) return;
    screenStream = stream;
    const [track] = stream.getVideoTracks();
    track.contentHint = 'detail';
    track.addEventListener('ended', () => stopScreen());
    client.publishTrack(track, { stream, source: 'screen' });
    state.sharing = true;
  } catch (e) {
    if (!(e instanceof DOMException && e.name === 'NotAllowedError')) toast(`Screen sharing failed: ${e instanceof Error ? e.message : e}`);
  }
  renderAll();
}

function stopScreen() {
  const stream = screenStream;
  screenStream = null;
  state.sharing = false;
  for (const t of stream?.getTracks() ?? []) {
    client?.unpublishTrack(t);
    t.stop();
  }
  renderAll();
}

async function copyInvite() {
  const url = state.inviteUrl;
  let copied = false;
  try {
    await navigator.clipboard.writeText(url);
    copied = true;
  } catch {
    const tmp = h('textarea', {}, [url]);
    document.body.append(tmp);
    tmp.select();
    try {
      copied = document.execCommand('copy');
    } catch {
      copied = false;
    }
    tmp.remove();
  }
  toast(copied ? `Invite link copied: ${url}` : `Invite link: ${url}`, 6000);
}

function leave() {
  client?.leave();
  endCall('You left the room', '');
}

/**
 * @param {string} title
 * @param {string} text
 */
function endCall(title, text) {
  const c = client;
  client = null;
  c?.close();
  stopScreen();
  for (const key of [...meters.keys()]) stopMeter(key);
  previewStream?.getTracks().forEach((t) => t.stop());
  previewStream = null;
  for (const view of [...tiles.values(), ...screenTiles.values()]) {
    view.video.srcObject = null;
    view.el.remove();
  }
  tiles.clear();
  screenTiles.clear();
  remoteTracks.clear();
  state.connection = 'closed';
  $('ended-title').textContent = title;
  $('ended-text').textContent = text;
  setPhase('ended');
}

function rejoin() {
  location.href = `/?${new URLSearchParams({ room: state.room, mode: state.mode, name: state.identity })}`;
}

// ---- chat -------------------------------------------------------------------------------

/** @param {ChatEntry} entry */
function addChat(entry) {
  state.chat.push(entry);
  const list = $('chat-messages');
  const time = new Date(entry.time).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  if (!entry.local) drawer.messageArrived();
  list.append(
    h('li', { 'data-testid': 'chat-message', 'data-identity': entry.identity, class: entry.local ? 'mine' : '' }, [
      h('div', { class: 'meta' }, [h('span', { class: 'from', 'data-testid': 'chat-from' }, [entry.identity]), h('time', {}, [time])]),
      h('div', { class: 'text', 'data-testid': 'chat-text' }, [entry.text]),
    ]),
  );
  list.scrollTop = list.scrollHeight;
}

function sendChat() {
  const field = input('chat-input');
  const text = field.value.trim();
  if (!text || !client) return;
  if (!client.sendData({ kind: 'chat', text, name: state.identity })) {
    toast('Not connected: message not sent.');
    return;
  }
  field.value = '';
  addChat({ identity: state.identity, name: state.identity, text, local: true, time: Date.now() });
}

// ---- audio levels -----------------------------------------------------------------------

/**
 * @param {string} key
 * @param {MediaStreamTrack | undefined} track
 */
function startMeter(key, track) {
  if (!track) return;
  const existing = meters.get(key);
  if (existing?.track === track) return;
  stopMeter(key);
  audioCtx ??= new AudioContext();
  try {
    const source = audioCtx.createMediaStreamSource(new MediaStream([track]));
    const analyser = audioCtx.createAnalyser();
    analyser.fftSize = 512;
    source.connect(analyser);
    meters.set(key, { analyser, source, track, lastLoud: 0 });
  } catch (e) {
    console.log('demo: no audio meter', String(e));
  }
}

/** @param {string} key */
function stopMeter(key) {
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

// ---- statistics -------------------------------------------------------------------------

async function pollStats() {
  if (!client || state.phase !== 'room') return;
  const c = client;
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

// ---- toast ------------------------------------------------------------------------------

/** @type {ReturnType<typeof setTimeout> | undefined} */
let toastTimer;
/**
 * @param {string} text
 * @param {number} [ms]
 */
function toast(text, ms = 3500) {
  const el = $('toast');
  el.textContent = text;
  el.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => (el.hidden = true), ms);
}

// ---- wiring -----------------------------------------------------------------------------

$('mic').addEventListener('click', toggleMic);
$('camera').addEventListener('click', toggleCamera);
$('screen').addEventListener('click', () => toggleScreen());
$('stats-toggle').addEventListener('click', () => {
  state.showStats = !state.showStats;
  renderControls();
});
$('invite').addEventListener('click', () => copyInvite());
$('leave').addEventListener('click', leave);
$('rejoin').addEventListener('click', rejoin);
const drawer = chatDrawer({ sidebar: $('sidebar'), toggle: $('chat-toggle'), close: $('drawer-close'), badge: $('unread') });
$('chat-form').addEventListener('submit', (e) => {
  e.preventDefault();
  sendChat();
});
navigator.mediaDevices?.addEventListener?.('devicechange', () => {
  if (state.phase === 'landing' && previewStream) listDevices().catch(() => {});
});
window.addEventListener('pagehide', () => client?.leave());

initLanding();
