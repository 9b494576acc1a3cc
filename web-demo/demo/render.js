// @ts-check
/**
 * Rendering the room from the state: the tiles and their placement on the stage (layout.js),
 * the people list and the connection status.
 */
import { layoutTiles } from '../layout.js';
import { renderControls } from './controls.js';
import { $, h, initials } from './dom.js';
import { startMeter, stopMeter } from './levels.js';
import { remoteTracks, screenTiles, session, state, tiles } from './state.js';

/**
 * @typedef {import('./state.js').ParticipantState} ParticipantState
 * @typedef {import('./state.js').TileView} TileView
 */

/** The connection status pill and, while reconnecting, the stage banner. */
export function renderStatus() {
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
  return (session.client?.localTracks.length ?? 0) > 0 || remoteTracks.size > 0;
}

/** Which source a received track is: announced by its publisher, else guessed. */
function sourceOf(/** @type {string} */ trackId, /** @type {string} */ participantId) {
  const announced = state.sources[trackId];
  if (announced) return announced;
  const info = session.client?.tracks.get(trackId);
  if (info?.kind === 'audio') return 'microphone';
  // Guess: the participant's first video track is the camera, later ones are screens.
  const videos = [...(session.client?.tracks.values() ?? [])].filter((t) => t.participant === participantId && t.kind === 'video');
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

/** Recomputes tiles, participant list and controls from the session.client's state. */
export function renderAll() {
  if (!session.client || state.phase !== 'room') return;
  const grid = $('grid');
  const wanted = new Set();
  const wantedScreens = new Set();

  for (const p of Object.values(state.participants)) {
    if (!p.canPublish) continue; // viewers have no tile
    const infos = [...session.client.tracks.values()].filter((t) => t.participant === p.id);
    /** @type {MediaStreamTrack[]} */
    let camTracks = [];
    /** @type {MediaStreamTrack | null} */
    let screenTrack = null;
    let audioTrack = /** @type {MediaStreamTrack | null} */ (null);
    if (p.local) {
      for (const l of session.client.localTracks) {
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
