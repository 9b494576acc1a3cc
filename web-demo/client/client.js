// @ts-check
/**
 * `CascadeClient`, the public API: its options, state, publishing, subscribing and data. It
 * delegates the session (socket, join, reconnect, negotiation, server messages) to `Session`,
 * and keeps the local and received tracks in `LocalTracks` and `RemoteTracks`. The events it
 * emits are listed in ../cascade-client.js.
 */
import { CascadeError } from './errors.js';
import { LocalTracks } from './publishing.js';
import { defaultServerUrl, defaultWsUrl } from './server.js';
import { Session } from './session.js';
import { RemoteTracks } from './tracks.js';

/**
 * @typedef {import('./types.js').ParticipantInfo} ParticipantInfo
 * @typedef {import('./types.js').TrackInfo} TrackInfo
 * @typedef {import('./types.js').JoinedInfo} JoinedInfo
 * @typedef {import('./types.js').TrackSource} TrackSource
 * @typedef {import('./types.js').ConnectionState} ConnectionState
 * @typedef {import('./types.js').ClientOptions} ClientOptions
 */

/** One participant: one WebSocket for signaling, one RTCPeerConnection for media (docs/client.md). */
export class CascadeClient extends EventTarget {
  #local = new LocalTracks();
  #remote = new RemoteTracks((type, detail) => this.#emit(type, detail));
  #session = new Session(this, {
    emit: (type, detail) => this.#emit(type, detail),
    local: this.#local,
    remote: this.#remote,
  });
  /** Participants other than us, by id. @type {Map<string, ParticipantInfo>} */
  participants = new Map();
  /** Every published track of the room (our own included), by id. @type {Map<string, TrackInfo>} */
  tracks = new Map();

  /** @param {ClientOptions} [options] */
  constructor(options = {}) {
    super();
    this.pingIntervalMs = options.pingIntervalMs ?? 10_000;
    this.log = options.log ?? (() => {});
    this.reconnect = options.reconnect ?? true;
    this.reconnectMinDelayMs = options.reconnectMinDelayMs ?? 500;
    this.reconnectMaxDelayMs = options.reconnectMaxDelayMs ?? 10_000;
    this.reconnectMaxAttempts = options.reconnectMaxAttempts ?? Infinity;
    /** Extra ICE servers, added to those the server sends in `joined`. */
    this.extraIceServers = options.iceServers ?? [];
    /** The Cascade server (`https://sfu.example.com`); `connect()` uses its `/ws`. */
    this.serverUrl = options.serverUrl ?? defaultServerUrl();
    /** `relay` uses TURN only (the media path of a network that blocks UDP); default `all`. */
    this.iceTransportPolicy = options.iceTransportPolicy ?? 'all';
    this.iceRestartDelayMs = options.iceRestartDelayMs ?? 2000;
    this.iceRestartTimeoutMs = options.iceRestartTimeoutMs ?? 4000;
    this.iceRestartMaxAttempts = options.iceRestartMaxAttempts ?? 3;
  }

  // ---- state --------------------------------------------------------------------------

  /** The current peer connection (a new one after each reconnect). */
  get pc() {
    return this.#session.pc;
  }

  /** The latest `joined` payload, once joined. */
  get info() {
    return this.#session.joined;
  }

  /** Our own participant (its id changes after a reconnect). */
  get participant() {
    return this.#session.joined?.participant ?? null;
  }

  /** @returns {ConnectionState} */
  get connectionState() {
    return this.#session.state;
  }

  /** Our local tracks with their Cascade track ids (null until published). */
  get localTracks() {
    return this.#local.all;
  }

  /** Received streams, one per remote participant id. */
  get remoteStreams() {
    return this.#remote.streams;
  }

  /**
   * The receiver transceivers currently carrying a track of `participantId`.
   * @param {string} participantId
   * @returns {{trackId: string, kind: string, receiver: RTCRtpReceiver}[]}
   */
  receiversOf(participantId) {
    return this.#remote.receiversOf(this.#session.pc, participantId);
  }

  // ---- session ------------------------------------------------------------------------

  /**
   * Opens the signaling WebSocket.
   * @param {string} [wsUrl] default `defaultWsUrl(this.serverUrl)`: `ws(s)://<server host>/ws`
   * @returns {Promise<void>} resolves when open
   */
  async connect(wsUrl = defaultWsUrl(this.serverUrl)) {
    await this.#session.connect(wsUrl);
  }

  /**
   * Joins the room named in the token and creates the peer connection.
   * @param {string} token access token
   * @param {{autoSubscribe?: boolean, room?: string}} [options] `room`: the room the page
   *   expects; a token for another room is then refused (`permission_denied`) instead of
   *   joining the token's room
   * @returns {Promise<JoinedInfo>}
   */
  join(token, { autoSubscribe = true, room = undefined } = {}) {
    return this.#session.join(token, { autoSubscribe, room });
  }

  /** Leaves the room, closes the peer connection and the socket. Local tracks are not stopped. */
  leave() {
    this.#session.send({ type: 'leave' });
    this.close();
  }

  /** Closes everything without sending `leave` (the server sees a dropped connection). */
  close() {
    this.#session.close();
  }

  // ---- publishing ---------------------------------------------------------------------

  /**
   * Publishes every track of a stream (one sendonly transceiver each); negotiation starts by
   * itself. Tracks are remembered and republished after a reconnect.
   * @param {MediaStream} mediaStream
   * @param {{source?: TrackSource}} [options] source for all tracks (default: camera/microphone by kind)
   * @returns {RTCRtpTransceiver[]}
   */
  publish(mediaStream, options = {}) {
    return mediaStream.getTracks().map((track) => this.publishTrack(track, { stream: mediaStream, source: options.source }));
  }

  /**
   * Publishes one track. Once the server has seen its media, `local_track_published` tells its
   * Cascade track id (also in `localTracks`).
   * @param {MediaStreamTrack} track
   * @param {{stream?: MediaStream, source?: TrackSource}} [options]
   * @returns {RTCRtpTransceiver}
   */
  publishTrack(track, { stream, source } = {}) {
    const pc = this.#session.requirePc();
    const joined = this.#session.joined;
    if (joined && !joined.participant.can_publish) {
      throw new CascadeError('permission_denied', 'this token may not publish');
    }
    return this.#local.add(pc, track, { stream, source });
  }

  /**
   * Stops publishing a track (renegotiates; the others get `track_unpublished`). The track
   * itself is not stopped.
   * @param {MediaStreamTrack} track
   */
  unpublishTrack(track) {
    const local = this.#local.remove(this.#session.pc, track);
    if (local?.trackId) this.tracks.delete(local.trackId);
  }

  /**
   * Replaces a published track by another of the same kind without renegotiating (e.g. another
   * camera). The Cascade track id stays the same.
   * @param {MediaStreamTrack} oldTrack
   * @param {MediaStreamTrack} newTrack
   */
  async replaceTrack(oldTrack, newTrack) {
    await this.#local.replace(oldTrack, newTrack);
  }

  /**
   * Mutes or unmutes a local track: sets `track.enabled` and tells the others (`mute`). A track
   * muted before its id is known is announced as soon as it is published.
   * @param {MediaStreamTrack | string} trackOrId a published MediaStreamTrack or its Cascade id
   * @param {boolean} muted
   */
  mute(trackOrId, muted) {
    const trackId = this.#local.setMuted(trackOrId, muted);
    if (trackId) {
      const info = this.tracks.get(trackId);
      if (info) info.muted = muted;
      this.#session.send({ type: 'mute', track: trackId, muted });
    }
  }

  // ---- subscribing, data ---------------------------------------------------------------

  /** @param {string[]} trackIds */
  subscribe(trackIds) {
    this.#session.send({ type: 'subscribe', tracks: trackIds, ref: 'subscribe' });
  }

  /** @param {string[]} trackIds */
  unsubscribe(trackIds) {
    this.#session.send({ type: 'unsubscribe', tracks: trackIds });
  }

  /**
   * Sends a JSON value to every other participant of the room (they get a `data` event).
   * Returns false if the socket is not open (nothing is queued).
   * @param {any} payload
   */
  sendData(payload) {
    if (!this.#session.joined) return false;
    return this.#session.send({ type: 'data', payload, ref: 'data' });
  }

  /**
   * @param {string} type
   * @param {unknown} detail
   */
  #emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}
