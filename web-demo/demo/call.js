// @ts-check
/**
 * The call: joining with a token, the client's events turned into state, participants,
 * the page's phases, leaving.
 */
import { CascadeClient, CascadeError, defaultWsUrl, fetchDevToken } from '../cascade-client.js';
import { addChat } from './chat.js';
import { stopScreen } from './controls.js';
import { $, input, select } from './dom.js';
import { getMedia, publicOrigin, selectedMode, TOKEN_HOWTO } from './landing.js';
import { meters, stopMeter } from './levels.js';
import { renderAll, renderStatus } from './render.js';
import { remoteTracks, screenTiles, session, state, tiles } from './state.js';
import { toast } from './toast.js';

/**
 * @typedef {import('./state.js').Phase} Phase
 * @typedef {import('./state.js').TileView} TileView
 */

/** Joins with the form's room, name, mode and token (a development token if none), then publishes the preview's tracks. */
export async function join() {
  const form = /** @type {HTMLFormElement} */ ($('join-form'));
  if (!form.reportValidity()) return;
  $('join-error').textContent = '';
  $('join').setAttribute('disabled', '');
  const mode = selectedMode();
  const room = input('room-input').value.trim();
  const identity = input('name-input').value.trim();
  // Created inside the click, so audio may start.
  session.audioCtx ??= new AudioContext();
  session.audioCtx.resume().catch(() => {});

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
  session.client = c;
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
  if (session.client !== c) return;
  document.title = `${info.room} · Cascade`;
  $('room-title').textContent = info.room;

  if (mode !== 'watch' && info.participant.can_publish) {
    if (!session.previewStream) {
      try {
        session.previewStream = await getMedia(select('camera-select').value, select('mic-select').value);
      } catch (e) {
        toast(`No camera or microphone: ${e instanceof Error ? e.name : e}`);
      }
    }
    if (session.previewStream) {
      for (const track of session.previewStream.getTracks()) {
        if (track.kind === 'audio') track.enabled = !state.micMuted;
        else track.enabled = !state.cameraMuted;
        c.publishTrack(track, { stream: session.previewStream });
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
      if (session.client !== c) return;
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
  on('data', ({ identity, payload }) => onData(identity, payload));
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
 * A `data` message: a chat line, or which of a publisher's tracks is which source.
 * @param {string} identity
 * @param {any} payload
 */
function onData(identity, payload) {
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
  if (!session.client) return;
  /** @type {Record<string, string>} */
  const tracks = {};
  for (const l of session.client.localTracks) if (l.trackId) tracks[l.trackId] = l.source;
  if (Object.keys(tracks).length) session.client.sendData({ kind: 'sources', tracks });
}

/** @param {Phase} phase */
export function setPhase(phase) {
  state.phase = phase;
  document.body.dataset.phase = phase;
  $('landing').hidden = phase !== 'landing' && phase !== 'joining';
  $('room').hidden = phase !== 'room';
  $('ended').hidden = phase !== 'ended';
  if (phase === 'room') {
    const watching = state.mode === 'watch' || !session.client?.participant?.can_publish;
    for (const id of ['mic', 'camera', 'screen']) {
      const el = document.getElementById(id);
      if (watching) el?.remove();
    }
    $('grid').classList.toggle('stage', state.mode === 'watch');
    document.body.dataset.mode = state.mode;
  }
  renderStatus();
}

/** Leaves the room and shows the ended card. */
export function leave() {
  session.client?.leave();
  endCall('You left the room', '');
}

/**
 * @param {string} title
 * @param {string} text
 */
function endCall(title, text) {
  const c = session.client;
  session.client = null;
  c?.close();
  stopScreen();
  for (const key of [...meters.keys()]) stopMeter(key);
  session.previewStream?.getTracks().forEach((t) => t.stop());
  session.previewStream = null;
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

/** Back to the pre-join view of the same room, mode and name. */
export function rejoin() {
  location.href = `/?${new URLSearchParams({ room: state.room, mode: state.mode, name: state.identity })}`;
}
