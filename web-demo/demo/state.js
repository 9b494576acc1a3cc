// @ts-check
/**
 * The page's state: what it shows (`state`, read by tests through `window.cascadeDemo`), the live
 * objects of the call (`session`) and the tiles and received tracks by participant.
 */

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

/** The page's modes (`?mode=`). */
export const MODES = /** @type {const} */ (['conference', 'host', 'watch']);

/** What the page shows; tests read it as `window.cascadeDemo.state`. */
export const state = {
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

/** The live objects of the call: replaced as the page joins and leaves. */
export const session = {
  /** @type {import('../cascade-client.js').CascadeClient | null} */
  client: null,
  /** The camera and microphone (the preview's, then published). @type {MediaStream | null} */
  previewStream: null,
  /** @type {MediaStream | null} */
  screenStream: null,
  /** Created in the Join click, so that audio may play. @type {AudioContext | null} */
  audioCtx: null,
};

/** Participant id -> camera tile. @type {Map<string, TileView>} */
export const tiles = new Map();

/** Participant id -> screen tile. @type {Map<string, TileView>} */
export const screenTiles = new Map();

/** Received tracks by participant: trackId -> track. @type {Map<string, Map<string, MediaStreamTrack>>} */
export const remoteTracks = new Map();
