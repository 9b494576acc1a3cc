// @ts-check
/**
 * Cascade browser client: one WebSocket for signaling, one RTCPeerConnection for media.
 * Plain ES module, no dependencies, no build step. The API is documented in docs/client.md,
 * the protocol in docs/protocol.md.
 *
 * Negotiation follows "perfect negotiation" with fixed roles: the server is impolite, this
 * client is polite. When a server offer arrives while our own offer is outstanding, the browser
 * rolls our offer back (implicit rollback in setRemoteDescription), we answer, and the still
 * unnegotiated transceivers fire `negotiationneeded` again, so we offer again.
 *
 * When the WebSocket drops, the client reconnects with exponential backoff and jitter and
 * resumes the same participant with the resume token of its latest `joined` (same id, same
 * RTCPeerConnection, media never stopped). If the server refuses the resume, it joins again with
 * the same token (the server replaces the old session of the same identity), builds a fresh
 * RTCPeerConnection and republishes the same local tracks.
 *
 * When the media path dies while the WebSocket lives (a new network, a NAT rebinding, a blocked
 * port), the client restarts ICE on the same peer connection: ICE `disconnected` for
 * `iceRestartDelayMs`, or `failed`, calls `pc.restartIce()`, and the usual negotiationneeded path
 * sends the restart offer. One restart at a time, at most `iceRestartMaxAttempts`, each given
 * twice the time of the previous one; then the client gives up and rejoins as after a dropped socket.
 *
 * Events (all CustomEvent, payload in `detail`):
 * - `joined`               JoinedInfo (also after each successful reconnect)
 * - `participant_joined`   {participant}
 * - `participant_left`     {participantId, identity, reason}
 * - `track_published`      {track: TrackInfo}  (any track of the room, our own included)
 * - `local_track_published` {trackId, track: MediaStreamTrack, source, mid}
 * - `track`                {trackId, participantId, identity, kind, mediaStreamTrack, stream, receiver, transceiver}
 * - `track_removed`        {trackId, participantId}  (no longer received: unsubscribed or unpublished)
 * - `track_unpublished`    {trackId, participantId}
 * - `track_muted`          {trackId, participantId, muted}
 * - `data`                 {participantId, identity, payload}
 * - `connection_state`     {state, peer}  state: ConnectionState, peer: RTCPeerConnectionState | null
 * - `reconnecting`         {attempt, delayMs, reason}
 * - `reconnected`          JoinedInfo
 * - `resumed`              JoinedInfo (a dropped socket's participant went on: same id, same
 *                          peer connection; follows `joined`)
 * - `ice_restart`          {attempt, reason}  (the media path died: restarting ICE; reason `disconnected` | `failed` | `timeout`)
 * - `ice_restarted`        {attempts}  (ICE connected again after restarting)
 * - `left`                 {reason}  (the server ended the session: `replaced`, `server_shutdown`)
 * - `disconnected`         {code, reason, willReconnect}  (WebSocket closed)
 * - `error`                {code, message, ref}
 */

/**
 * @typedef {{id: string, identity: string, can_publish: boolean}} ParticipantInfo
 * @typedef {{id: string, participant: string, kind: 'audio' | 'video', codec?: string, muted: boolean, mid?: string}} TrackInfo
 * @typedef {{urls: string[], username?: string, credential?: string}} IceServer
 * @typedef {{candidate: string, sdp_mid?: string, sdp_mline_index?: number, username_fragment?: string}} WireCandidate
 * @typedef {{type: string, [key: string]: any}} Message
 * @typedef {{participant: ParticipantInfo, room: string, participants: ParticipantInfo[],
 *   tracks: TrackInfo[], iceServers: IceServer[]}} JoinedInfo
 * @typedef {'camera' | 'microphone' | 'screen' | 'screen_audio' | 'unknown'} TrackSource
 * @typedef {'idle' | 'connecting' | 'connected' | 'reconnecting' | 'disconnected' | 'closed'} ConnectionState
 * @typedef {{
 *   pingIntervalMs?: number,
 *   log?: (...args: any[]) => void,
 *   reconnect?: boolean,
 *   reconnectMinDelayMs?: number,
 *   reconnectMaxDelayMs?: number,
 *   reconnectMaxAttempts?: number,
 *   serverUrl?: string,
 *   iceServers?: IceServer[],
 *   iceTransportPolicy?: RTCIceTransportPolicy,
 *   iceRestartDelayMs?: number,
 *   iceRestartTimeoutMs?: number,
 *   iceRestartMaxAttempts?: number,
 * }} ClientOptions
 */

/**
 * A track this client publishes (or wants to publish).
 * @typedef {{
 *   track: MediaStreamTrack,
 *   stream: MediaStream,
 *   source: TrackSource,
 *   transceiver: RTCRtpTransceiver | null,
 *   trackId: string | null,
 *   muted: boolean,
 * }} LocalTrack
 */

/** Join errors after which reconnecting cannot help. */
const FATAL_JOIN_ERRORS = new Set(['unauthorized', 'token_expired', 'permission_denied', 'invalid_name']);

/** An `error` message from the server, or a local failure with a Cascade-style code. */
export class CascadeError extends Error {
  /**
   * @param {string} code
   * @param {string} message
   * @param {any} [ref]
   */
  constructor(code, message, ref) {
    super(`${code}: ${message}`);
    this.name = 'CascadeError';
    this.code = code;
    this.ref = ref;
  }
}

/**
 * The Cascade server this library was loaded from (`https://sfu.example.com`), the default for
 * every call: an application page on another origin that imports the library from the server
 * talks to that server. A copy served from elsewhere (or from a file) falls back to the page's
 * origin.
 * @returns {string}
 */
export function defaultServerUrl() {
  const origin = new URL(import.meta.url).origin;
  return /^https?:/.test(origin) ? origin : location.origin;
}

/**
 * The signaling URL of the server at `serverUrl`: `ws(s)://<host>/ws`.
 * @param {string} [serverUrl] default `defaultServerUrl()`
 * @returns {string}
 */
export function defaultWsUrl(serverUrl = defaultServerUrl()) {
  const url = new URL('/ws', serverUrl);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  return url.toString();
}

/**
 * Fetches a development token from a Cascade server running with its development key
 * (`GET /api/dev/token`). Rejects with a CascadeError that says what happened:
 * `not_found` (the server has a real API secret: tokens must come from your backend),
 * `not_a_cascade_server` (something else answered at `baseUrl`), `network_error` (no answer).
 * @param {{room: string, identity: string, role?: 'publisher' | 'viewer', baseUrl?: string}} params
 *   `baseUrl` default `defaultServerUrl()`
 * @returns {Promise<string>}
 */
export async function fetchDevToken({ room, identity, role = 'publisher', baseUrl = defaultServerUrl() }) {
  const url = `${baseUrl.replace(/\/$/, '')}/api/dev/token?${new URLSearchParams({ room, identity, role })}`;
  let res;
  try {
    res = await fetch(url);
  } catch (e) {
    throw new CascadeError('network_error', `cannot reach ${url} (${e instanceof Error ? e.message : e}): is the Cascade server at ${baseUrl} running and reachable from this page?`);
  }
  /** @type {any} */
  let body = null;
  try {
    body = await res.json();
  } catch {
    // not JSON: not a Cascade answer
  }
  if (res.ok && body && typeof body.token === 'string') return body.token;
  if (body?.error?.code) {
    const hint = body.error.code === 'not_found'
      ? ' Tokens must come from your backend (REST POST /api/tokens, or `cascade token --room ROOM --identity NAME` on the server).'
      : '';
    throw new CascadeError(body.error.code, `${body.error.message}.${hint}`);
  }
  throw new CascadeError('not_a_cascade_server', `GET ${url} answered HTTP ${res.status} without a Cascade error: is ${baseUrl} the Cascade server's URL? Pass it as baseUrl.`);
}

export class CascadeClient extends EventTarget {
  /** @type {WebSocket | null} */
  #ws = null;
  /** @type {RTCPeerConnection | null} */
  #pc = null;
  /** @type {ReturnType<typeof setInterval> | undefined} */
  #pingTimer;
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  #reconnectTimer;
  /** Serializes handling of server messages so SDP and candidates apply in order. */
  #inbox = Promise.resolve();
  #makingOffer = false;
  #offerSeq = 0;
  /**
   * Right after joining a room with tracks, the server offers them: our own offer waits until
   * that offer is answered, which avoids glare on every join.
   */
  #holdOffers = false;
  #offerDeferred = false;
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  #holdTimer;
  /** Our candidates wait here until the description they belong to has been sent. @type {WireCandidate[] | null} */
  #pendingCandidates = null;
  /** @type {{resolve: (info: JoinedInfo) => void, reject: (e: Error) => void} | null} */
  #pendingJoin = null;
  /** @type {JoinedInfo | null} */
  #joined = null;
  /** @type {string | null} */
  #wsUrl = null;
  /** @type {string | null} */
  #token = null;
  #autoSubscribe = true;
  /** @type {string | undefined} */
  #room = undefined;
  /** The `resume_token` of the latest `joined`: continues this participant after a drop. */
  /** @type {string | null} */
  #resumeToken = null;
  /** Set by `leave()`/`close()`, or when the session cannot be resumed: no more reconnects. */
  #closed = false;
  #reconnectAttempt = 0;
  #lastReceived = 0;
  /** ICE restarts made since ICE was last connected (0: none in flight). */
  #iceRestarts = 0;
  /** Fires the next ICE restart (after `disconnected` lasted, or an attempt timed out). @type {ReturnType<typeof setTimeout> | undefined} */
  #iceRestartTimer;
  /** @type {ConnectionState} */
  #state = 'idle';
  /** Participants other than us, by id. @type {Map<string, ParticipantInfo>} */
  participants = new Map();
  /** Every published track of the room (our own included), by id. @type {Map<string, TrackInfo>} */
  tracks = new Map();
  /** Our local tracks, in publishing order. @type {Map<MediaStreamTrack, LocalTrack>} */
  #local = new Map();
  /** Cascade track id forwarded on each receiving mid (from the latest server offer). @type {Map<string, string>} */
  #midTracks = new Map();
  /** Track announced (via `track`) on each mid. @type {Map<string, {trackId: string, participantId: string, track: MediaStreamTrack}>} */
  #announced = new Map();
  /** One MediaStream per remote participant, holding its received tracks. @type {Map<string, MediaStream>} */
  #streams = new Map();

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
    return this.#pc;
  }

  /** The latest `joined` payload, once joined. */
  get info() {
    return this.#joined;
  }

  /** Our own participant (its id changes after a reconnect). */
  get participant() {
    return this.#joined?.participant ?? null;
  }

  /** @returns {ConnectionState} */
  get connectionState() {
    return this.#state;
  }

  /** Our local tracks with their Cascade track ids (null until published). */
  get localTracks() {
    return [...this.#local.values()];
  }

  /** Received streams, one per remote participant id. */
  get remoteStreams() {
    return new Map(this.#streams);
  }

  /**
   * The receiver transceivers currently carrying a track of `participantId`.
   * @param {string} participantId
   * @returns {{trackId: string, kind: string, receiver: RTCRtpReceiver}[]}
   */
  receiversOf(participantId) {
    const out = [];
    for (const t of this.#pc?.getTransceivers() ?? []) {
      const a = t.mid === null ? undefined : this.#announced.get(t.mid);
      if (a && a.participantId === participantId) out.push({ trackId: a.trackId, kind: a.track.kind, receiver: t.receiver });
    }
    return out;
  }

  // ---- session ------------------------------------------------------------------------

  /**
   * Opens the signaling WebSocket.
   * @param {string} [wsUrl] default `defaultWsUrl(this.serverUrl)`: `ws(s)://<server host>/ws`
   * @returns {Promise<void>} resolves when open
   */
  async connect(wsUrl = defaultWsUrl(this.serverUrl)) {
    this.#wsUrl = wsUrl;
    this.#closed = false;
    this.#setState('connecting');
    await this.#openSocket();
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
    if (this.#pendingJoin || this.#joined) {
      return Promise.reject(new CascadeError('already_joined', 'join called twice'));
    }
    this.#token = token;
    this.#autoSubscribe = autoSubscribe;
    this.#room = room;
    return this.#sendJoin();
  }

  /** Leaves the room, closes the peer connection and the socket. Local tracks are not stopped. */
  leave() {
    this.#send({ type: 'leave' });
    this.close();
  }

  /** Closes everything without sending `leave` (the server sees a dropped connection). */
  close() {
    this.#closed = true;
    clearTimeout(this.#reconnectTimer);
    clearTimeout(this.#holdTimer);
    this.#stopPing();
    this.#pendingJoin?.reject(new CascadeError('closed', 'client closed'));
    this.#pendingJoin = null;
    this.#closePc();
    const ws = this.#ws;
    this.#ws = null;
    if (ws) {
      ws.onclose = ws.onmessage = ws.onerror = null;
      ws.close(1000);
      this.#emit('disconnected', { code: 1000, reason: 'leave', willReconnect: false });
    }
    this.#setState('closed');
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
    const pc = this.#requirePc();
    if (this.#joined && !this.#joined.participant.can_publish) {
      throw new CascadeError('permission_denied', 'this token may not publish');
    }
    const existing = this.#local.get(track);
    if (existing?.transceiver) return existing.transceiver;
    /** @type {LocalTrack} */
    const local = {
      track,
      stream: stream ?? new MediaStream([track]),
      source: source ?? (track.kind === 'audio' ? 'microphone' : 'camera'),
      transceiver: null,
      trackId: null,
      muted: !track.enabled,
    };
    this.#local.set(track, local);
    local.transceiver = pc.addTransceiver(track, { direction: 'sendonly', streams: [local.stream] });
    return local.transceiver;
  }

  /**
   * Stops publishing a track (renegotiates; the others get `track_unpublished`). The track
   * itself is not stopped.
   * @param {MediaStreamTrack} track
   */
  unpublishTrack(track) {
    const local = this.#local.get(track);
    if (!local) return;
    this.#local.delete(track);
    if (local.trackId) this.tracks.delete(local.trackId);
    const t = local.transceiver;
    if (t && this.#pc && this.#pc.signalingState !== 'closed' && t.currentDirection !== 'stopped') {
      this.#pc.removeTrack(t.sender);
    }
  }

  /**
   * Replaces a published track by another of the same kind without renegotiating (e.g. another
   * camera). The Cascade track id stays the same.
   * @param {MediaStreamTrack} oldTrack
   * @param {MediaStreamTrack} newTrack
   */
  async replaceTrack(oldTrack, newTrack) {
    const local = this.#local.get(oldTrack);
    if (!local) throw new CascadeError('track_not_found', 'not a published track');
    newTrack.enabled = !local.muted;
    await local.transceiver?.sender.replaceTrack(newTrack);
    this.#local.delete(oldTrack);
    local.stream.removeTrack(oldTrack);
    local.stream.addTrack(newTrack);
    local.track = newTrack;
    this.#local.set(newTrack, local);
  }

  /**
   * Mutes or unmutes a local track: sets `track.enabled` and tells the others (`mute`). A track
   * muted before its id is known is announced as soon as it is published.
   * @param {MediaStreamTrack | string} trackOrId a published MediaStreamTrack or its Cascade id
   * @param {boolean} muted
   */
  mute(trackOrId, muted) {
    const local =
      typeof trackOrId === 'string'
        ? [...this.#local.values()].find((l) => l.trackId === trackOrId)
        : this.#local.get(trackOrId);
    if (!local) throw new CascadeError('track_not_found', 'not a published track');
    local.muted = muted;
    local.track.enabled = !muted;
    if (local.trackId) {
      const info = this.tracks.get(local.trackId);
      if (info) info.muted = muted;
      this.#send({ type: 'mute', track: local.trackId, muted });
    }
  }

  // ---- subscribing, data ---------------------------------------------------------------

  /** @param {string[]} trackIds */
  subscribe(trackIds) {
    this.#send({ type: 'subscribe', tracks: trackIds, ref: 'subscribe' });
  }

  /** @param {string[]} trackIds */
  unsubscribe(trackIds) {
    this.#send({ type: 'unsubscribe', tracks: trackIds });
  }

  /**
   * Sends a JSON value to every other participant of the room (they get a `data` event).
   * Returns false if the socket is not open (nothing is queued).
   * @param {any} payload
   */
  sendData(payload) {
    if (!this.#joined) return false;
    return this.#send({ type: 'data', payload, ref: 'data' });
  }

  // ---- socket and reconnect -------------------------------------------------------------

  /** @returns {Promise<void>} */
  #openSocket() {
    const url = this.#wsUrl;
    if (!url) return Promise.reject(new CascadeError('not_connected', 'connect first'));
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url);
      this.#ws = ws;
      let opened = false;
      const timeout = setTimeout(() => {
        if (!opened) ws.close();
      }, 10_000);
      ws.onopen = () => {
        opened = true;
        clearTimeout(timeout);
        this.#lastReceived = Date.now();
        this.#startPing();
        resolve();
      };
      ws.onerror = () => {
        if (!opened) reject(new CascadeError('connect_failed', `WebSocket to ${url} failed`));
      };
      ws.onmessage = (ev) => {
        this.#lastReceived = Date.now();
        this.#receive(ev.data);
      };
      ws.onclose = (ev) => {
        clearTimeout(timeout);
        if (!opened) reject(new CascadeError('connect_failed', `WebSocket to ${url} closed (${ev.code})`));
        if (this.#ws === ws) this.#onSocketClosed(ev.code, ev.reason);
      };
    });
  }

  /**
   * @param {number} code
   * @param {string} reason
   */
  #onSocketClosed(code, reason) {
    this.#ws = null;
    this.#stopPing();
    const wasJoined = this.#joined !== null;
    const willReconnect = this.reconnect && !this.#closed && wasJoined && reason !== 'replaced' && reason !== 'leave';
    this.#pendingJoin?.reject(new CascadeError('disconnected', `socket closed (${code} ${reason})`));
    this.#pendingJoin = null;
    this.#emit('disconnected', { code, reason, willReconnect });
    // With a resume token the peer connection is kept: the server keeps ours for its grace
    // period, media flowing, and the next socket resumes the same participant.
    if (!willReconnect || this.#resumeToken === null) this.#closePc();
    if (willReconnect) {
      this.#scheduleReconnect(reason || `closed (${code})`);
    } else {
      this.#closed = true;
      this.#setState('disconnected');
    }
  }

  /** @param {string} reason */
  #scheduleReconnect(reason) {
    if (this.#closed) return;
    const attempt = ++this.#reconnectAttempt;
    if (attempt > this.reconnectMaxAttempts) {
      this.#closed = true;
      this.#setState('disconnected');
      this.#emit('error', { code: 'reconnect_failed', message: `gave up after ${attempt - 1} attempts` });
      return;
    }
    const base = Math.min(this.reconnectMaxDelayMs, this.reconnectMinDelayMs * 2 ** (attempt - 1));
    // Jitter: 50..100 % of the base, never below the minimum.
    const delayMs = Math.round(Math.max(this.reconnectMinDelayMs, base * (0.5 + Math.random() * 0.5)));
    this.#setState('reconnecting');
    this.log(`cascade: reconnecting in ${delayMs} ms (attempt ${attempt})`);
    this.#emit('reconnecting', { attempt, delayMs, reason });
    this.#reconnectTimer = setTimeout(() => this.#tryReconnect(), delayMs);
  }

  async #tryReconnect() {
    if (this.#closed) return;
    try {
      await this.#openSocket();
      if (this.#closed) return;
      if (this.#resumeToken !== null && this.#pc) {
        try {
          await this.#request({ type: 'resume', token: this.#resumeToken });
          return;
        } catch (e) {
          if (!(e instanceof CascadeError && e.code === 'resume_failed')) throw e;
          // Gone meanwhile (grace over, media lost, removed): join as a new participant.
          this.log('cascade: resume refused, joining afresh:', e.message);
          this.#resumeToken = null;
          this.#closePc();
        }
      }
      await this.#sendJoin();
    } catch (e) {
      if (this.#closed) return;
      const code = e instanceof CascadeError ? e.code : 'connect_failed';
      if (FATAL_JOIN_ERRORS.has(code)) {
        this.log('cascade: cannot rejoin:', code);
        this.#closed = true;
        const ws = this.#ws;
        this.#ws = null;
        if (ws) {
          ws.onclose = null;
          ws.close(1000);
        }
        this.#stopPing();
        this.#setState('disconnected');
        this.#emit('disconnected', { code: 1000, reason: code, willReconnect: false });
        return;
      }
      // The socket's close handler schedules the next attempt; if the socket is still open
      // (e.g. `room_full`), close it to get there.
      if (this.#ws && this.#ws.readyState === WebSocket.OPEN) this.#ws.close();
    }
  }

  /** @returns {Promise<JoinedInfo>} */
  #sendJoin() {
    const join = { type: 'join', token: this.#token, auto_subscribe: this.#autoSubscribe };
    if (this.#room !== undefined) Object.assign(join, { room: this.#room });
    return this.#request(join);
  }

  /**
   * Sends `join` or `resume` (with `ref: "join"`); resolves with the `joined` info, rejects with
   * the server's error.
   * @param {Message} message
   * @returns {Promise<JoinedInfo>}
   */
  #request(message) {
    return new Promise((resolve, reject) => {
      this.#pendingJoin = { resolve, reject };
      if (!this.#send({ ...message, ref: 'join' })) {
        this.#pendingJoin = null;
        reject(new CascadeError('not_connected', 'connect first'));
      }
    });
  }

  #startPing() {
    this.#stopPing();
    this.#pingTimer = setInterval(() => {
      // A socket that has been silent for 2.5 ping intervals is dead even if the browser has not
      // noticed yet: drop it and reconnect.
      const ws = this.#ws;
      if (ws && this.#joined && Date.now() - this.#lastReceived > this.pingIntervalMs * 2.5) {
        this.log('cascade: no answer from the server, dropping the socket');
        ws.onclose = ws.onmessage = ws.onerror = null;
        ws.close();
        this.#onSocketClosed(4000, 'ping timeout');
        return;
      }
      this.#send({ type: 'ping' });
    }, this.pingIntervalMs);
  }

  // ---- server messages ------------------------------------------------------------------

  /** @param {string} data */
  #receive(data) {
    /** @type {Message} */
    let msg;
    try {
      msg = JSON.parse(data);
    } catch {
      this.log('cascade: ignoring non-JSON frame');
      return;
    }
    if (msg.type !== 'pong' && msg.type !== 'candidate') this.log('cascade <-', msg.type);
    this.#inbox = this.#inbox.then(() => this.#dispatch(msg)).catch((e) => this.#fail('client', e, msg.type));
  }

  /** @param {Message} msg */
  async #dispatch(msg) {
    switch (msg.type) {
      case 'joined':
        return this.#onJoined(msg);
      case 'offer':
        return this.#onOffer(msg.sdp, msg.tracks ?? {});
      case 'answer':
        return this.#onAnswer(msg.sdp);
      case 'candidate':
        return this.#onCandidate(msg.candidate);
      case 'participant_joined':
        this.participants.set(msg.participant.id, msg.participant);
        return this.#emit('participant_joined', { participant: msg.participant });
      case 'participant_left':
        return this.#onParticipantLeft(msg.participant, msg.reason);
      case 'track_published':
        return this.#onTrackPublished(msg.track);
      case 'track_unpublished':
        return this.#onTrackUnpublished(msg.track, msg.participant);
      case 'track_muted': {
        const info = this.tracks.get(msg.track);
        if (info) info.muted = msg.muted;
        return this.#emit('track_muted', { trackId: msg.track, participantId: msg.participant, muted: msg.muted });
      }
      case 'data':
        return this.#emit('data', { participantId: msg.participant, identity: msg.identity, payload: msg.payload });
      case 'leave':
        // `replaced`: another connection took our identity; do not fight it. `server_shutdown`:
        // the socket closes right after and we reconnect (the server may be restarting).
        if (msg.reason !== 'server_shutdown') this.#closed = true;
        return this.#emit('left', { reason: msg.reason });
      case 'error':
        return this.#onError(msg);
      case 'pong':
        return;
      default:
        this.log('cascade: unknown message type', msg.type);
    }
  }

  /** @param {Message} msg */
  #onJoined(msg) {
    /** @type {JoinedInfo} */
    const info = {
      participant: msg.participant,
      room: msg.room,
      participants: msg.participants,
      tracks: msg.tracks,
      iceServers: msg.ice_servers ?? [],
    };
    this.#resumeToken = msg.resume_token ?? null;
    if (msg.resumed && this.#pc) return this.#onResumed(info, this.#pc);
    const rejoin = this.#joined !== null;
    if (rejoin) this.#reconcile(info);
    this.#joined = info;
    this.#reconnectAttempt = 0;
    this.participants = new Map(info.participants.map((p) => [p.id, p]));
    this.tracks = new Map(info.tracks.map((t) => [t.id, t]));
    this.#closePc();
    this.#pc = this.#createPeerConnection([...info.iceServers, ...this.extraIceServers]);
    clearTimeout(this.#holdTimer);
    this.#offerDeferred = false;
    this.#holdOffers = this.#autoSubscribe && info.tracks.length > 0;
    if (this.#holdOffers) this.#holdTimer = setTimeout(() => this.#releaseOffers(), 3000);
    // Republish our local tracks on the fresh peer connection.
    for (const local of this.#local.values()) {
      if (local.track.readyState === 'ended') {
        this.#local.delete(local.track);
        continue;
      }
      local.trackId = null;
      local.transceiver = this.#pc.addTransceiver(local.track, { direction: 'sendonly', streams: [local.stream] });
    }
    this.#setState('connected');
    this.#pendingJoin?.resolve(info);
    this.#pendingJoin = null;
    this.#emit('joined', info);
    if (rejoin) this.#emit('reconnected', info);
  }

  /**
   * The same participant goes on after a dropped socket: the room's changes meanwhile are told
   * (received tracks stay), an offer whose answer was lost is made again, and ICE restarts if
   * the media path broke too.
   * @param {JoinedInfo} info
   * @param {RTCPeerConnection} pc
   */
  async #onResumed(info, pc) {
    const others = new Map(info.participants.map((p) => [p.id, p]));
    for (const p of this.participants.values()) {
      if (!others.has(p.id)) this.#onParticipantLeft(p.id, 'disconnected');
    }
    for (const p of info.participants) {
      if (!this.participants.has(p.id)) this.#emit('participant_joined', { participant: p });
    }
    const tracks = new Set(info.tracks.map((t) => t.id));
    for (const t of this.tracks.values()) {
      if (t.participant !== info.participant.id && !tracks.has(t.id)) {
        this.#emit('track_unpublished', { trackId: t.id, participantId: t.participant });
      }
    }
    for (const t of info.tracks) {
      if (!this.tracks.has(t.id)) this.#emit('track_published', { track: t });
    }
    this.participants = others;
    this.tracks = new Map(info.tracks.map((t) => [t.id, t]));
    this.#joined = info;
    this.#reconnectAttempt = 0;
    this.#setState('connected');
    this.#pendingJoin?.resolve(info);
    this.#pendingJoin = null;
    this.#emit('joined', info);
    this.#emit('resumed', info);
    if (pc.signalingState === 'have-local-offer') {
      // Our offer (or its answer) was lost with the socket.
      await pc.setLocalDescription({ type: 'rollback' });
    }
    clearTimeout(this.#iceRestartTimer);
    this.#iceRestartTimer = undefined;
    this.#iceRestarts = 0;
    const ice = pc.iceConnectionState;
    if (ice === 'disconnected' || ice === 'failed') this.#restartIce(pc, 'resumed');
    else this.#offer(pc);
  }

  /**
   * After a rejoin: tells the app what changed in the room while we were away, and forgets the
   * tracks received on the old peer connection (they arrive again as new `track` events).
   * @param {JoinedInfo} info
   */
  #reconcile(info) {
    for (const [mid, a] of this.#announced) {
      this.#announced.delete(mid);
      this.#emit('track_removed', { trackId: a.trackId, participantId: a.participantId });
    }
    this.#streams.clear();
    this.#midTracks.clear();
    const ownOld = this.#joined?.participant.id;
    const newTracks = new Set(info.tracks.map((t) => t.id));
    for (const t of this.tracks.values()) {
      if (t.participant !== ownOld && !newTracks.has(t.id)) {
        this.#emit('track_unpublished', { trackId: t.id, participantId: t.participant });
      }
    }
    const newParticipants = new Set(info.participants.map((p) => p.id));
    for (const p of this.participants.values()) {
      if (!newParticipants.has(p.id)) {
        this.#emit('participant_left', { participantId: p.id, identity: p.identity, reason: 'disconnected' });
      }
    }
    for (const p of info.participants) {
      if (!this.participants.has(p.id)) this.#emit('participant_joined', { participant: p });
    }
    const oldTracks = new Set(this.tracks.keys());
    for (const t of info.tracks) {
      if (!oldTracks.has(t.id)) this.#emit('track_published', { track: t });
    }
  }

  /**
   * @param {string} participantId
   * @param {string} reason
   */
  #onParticipantLeft(participantId, reason) {
    const p = this.participants.get(participantId);
    this.participants.delete(participantId);
    this.#streams.delete(participantId);
    this.#emit('participant_left', { participantId, identity: p?.identity ?? '', reason });
  }

  /** @param {TrackInfo} track */
  #onTrackPublished(track) {
    this.tracks.set(track.id, track);
    const own = this.#joined && track.participant === this.#joined.participant.id;
    if (own && track.mid !== undefined) {
      const local = [...this.#local.values()].find((l) => l.transceiver && l.transceiver.mid === track.mid);
      if (local) {
        local.trackId = track.id;
        // Muted before the id was known (or before a reconnect): tell the others now.
        if (local.muted || track.muted) {
          track.muted = local.muted;
          this.#send({ type: 'mute', track: track.id, muted: local.muted });
        }
        this.#emit('local_track_published', { trackId: track.id, track: local.track, source: local.source, mid: track.mid });
      }
    }
    this.#emit('track_published', { track });
  }

  /**
   * A server offer. As the polite peer we always accept it; a colliding local offer is rolled
   * back implicitly by setRemoteDescription.
   * @param {string} sdp
   * @param {Record<string, string>} tracks mid -> Cascade track id
   */
  async #onOffer(sdp, tracks) {
    const pc = this.#requirePc();
    if (this.#makingOffer || pc.signalingState !== 'stable') this.log('cascade: glare, rolling back our offer');
    this.#midTracks = new Map(Object.entries(tracks));
    this.#pendingCandidates = [];
    try {
      await pc.setRemoteDescription({ type: 'offer', sdp });
      const answer = await pc.createAnswer();
      // The server is always the DTLS server (it answers our offers with `setup:passive`), so
      // the browser's default `setup:active` answer keeps the roles consistent.
      await pc.setLocalDescription(answer);
    } catch (e) {
      // The server waits for our answer and offers nothing until it gets one: start over with a
      // fresh session rather than stay stuck.
      this.#fail('negotiation', e, 'offer');
      this.#restart('negotiation_failed');
      return;
    }
    this.#send({ type: 'answer', sdp: pc.localDescription?.sdp });
    this.#flushCandidates();
    this.#syncReceivedTracks();
    this.#releaseOffers();
  }

  /** Lets our held-back offer go (after the first server offer, or a timeout). */
  #releaseOffers() {
    clearTimeout(this.#holdTimer);
    this.#holdOffers = false;
    if (this.#offerDeferred && this.#pc) {
      this.#offerDeferred = false;
      this.#offer(this.#pc);
    }
  }

  /**
   * Drops the current session and rejoins with a fresh peer connection (as after a dropped socket).
   * @param {string} reason
   */
  #restart(reason) {
    const ws = this.#ws;
    if (!ws || this.#closed) return;
    this.log('cascade: restarting the session:', reason);
    ws.onclose = ws.onmessage = ws.onerror = null;
    ws.close(1000);
    this.#onSocketClosed(4001, reason);
  }

  /** @param {string} sdp */
  async #onAnswer(sdp) {
    const pc = this.#requirePc();
    if (pc.signalingState !== 'have-local-offer') {
      this.log('cascade: ignoring answer in state', pc.signalingState);
      return;
    }
    await pc.setRemoteDescription({ type: 'answer', sdp });
  }

  /** @param {WireCandidate} c */
  async #onCandidate(c) {
    const pc = this.#requirePc();
    try {
      await pc.addIceCandidate({
        candidate: c.candidate,
        sdpMid: c.sdp_mid ?? null,
        sdpMLineIndex: c.sdp_mline_index ?? null,
        usernameFragment: c.username_fragment ?? null,
      });
    } catch (e) {
      // A candidate for a description that was rolled back or replaced: harmless.
      this.log('cascade: addIceCandidate failed', String(e));
    }
  }

  /**
   * @param {string} trackId
   * @param {string} participantId
   */
  #onTrackUnpublished(trackId, participantId) {
    this.tracks.delete(trackId);
    for (const [mid, a] of this.#announced) {
      if (a.trackId !== trackId) continue;
      this.#announced.delete(mid);
      this.#streams.get(a.participantId)?.removeTrack(a.track);
      this.#emit('track_removed', { trackId, participantId: a.participantId });
    }
    this.#emit('track_unpublished', { trackId, participantId });
  }

  /** @param {Message} msg */
  async #onError(msg) {
    const err = new CascadeError(msg.code, msg.message, msg.ref);
    if (msg.ref === 'join' && this.#pendingJoin) {
      this.#pendingJoin.reject(err);
      this.#pendingJoin = null;
    }
    if (msg.ref === 'candidate') {
      // Candidates for descriptions that were rolled back; the server learns our address anyway.
      this.log('cascade: candidate refused:', msg.message);
      return;
    }
    if (typeof msg.ref === 'string' && msg.ref.startsWith('offer-') && this.#pc?.signalingState === 'have-local-offer') {
      // Our offer was refused: roll it back as the protocol asks.
      await this.#pc.setLocalDescription({ type: 'rollback' }).catch(() => {});
    }
    this.#emit('error', { code: msg.code, message: msg.message, ref: msg.ref });
  }

  // ---- peer connection ------------------------------------------------------------------

  /** @param {IceServer[]} iceServers */
  #createPeerConnection(iceServers) {
    const pc = new RTCPeerConnection({
      iceServers,
      iceTransportPolicy: this.iceTransportPolicy,
      bundlePolicy: 'max-bundle',
      rtcpMuxPolicy: 'require',
    });
    this.#pendingCandidates = null;
    pc.onnegotiationneeded = () => this.#offer(pc);
    pc.onicecandidate = ({ candidate }) => {
      if (this.#pc !== pc || !candidate || !candidate.candidate) return;
      /** @type {WireCandidate} */
      const wire = { candidate: candidate.candidate };
      if (candidate.sdpMid !== null) wire.sdp_mid = candidate.sdpMid;
      if (candidate.sdpMLineIndex !== null) wire.sdp_mline_index = candidate.sdpMLineIndex;
      if (candidate.usernameFragment !== null) wire.username_fragment = candidate.usernameFragment;
      if (this.#pendingCandidates) this.#pendingCandidates.push(wire);
      else this.#send({ type: 'candidate', candidate: wire, ref: 'candidate' });
    };
    pc.onconnectionstatechange = () => {
      if (this.#pc !== pc) return;
      this.log('cascade: pc', pc.connectionState);
      this.#emit('connection_state', { state: this.#state, peer: pc.connectionState });
    };
    pc.oniceconnectionstatechange = () => {
      if (this.#pc === pc) this.#onIceState(pc);
    };
    pc.ontrack = () => {
      // Mapped to Cascade ids after the answer, in #syncReceivedTracks.
    };
    return pc;
  }

  /**
   * Watches the media path: restarts ICE when it stays `disconnected` or `failed` (one restart in
   * flight at a time), and notes the recovery.
   * @param {RTCPeerConnection} pc
   */
  #onIceState(pc) {
    const state = pc.iceConnectionState;
    this.log('cascade: ice', state);
    if (state === 'connected' || state === 'completed') {
      clearTimeout(this.#iceRestartTimer);
      this.#iceRestartTimer = undefined;
      if (this.#iceRestarts > 0) this.#emit('ice_restarted', { attempts: this.#iceRestarts });
      this.#iceRestarts = 0;
    } else if (this.#iceRestarts === 0 && state === 'failed') {
      clearTimeout(this.#iceRestartTimer);
      this.#restartIce(pc, 'failed');
    } else if (this.#iceRestarts === 0 && state === 'disconnected' && this.#iceRestartTimer === undefined) {
      this.#iceRestartTimer = setTimeout(() => this.#restartIce(pc, 'disconnected'), this.iceRestartDelayMs);
    }
  }

  /**
   * Restarts ICE (the restart offer goes out through negotiationneeded), and checks after a
   * growing timeout whether ICE connected again; past the last attempt, rejoins from scratch.
   * @param {RTCPeerConnection} pc
   * @param {string} reason
   */
  #restartIce(pc, reason) {
    this.#iceRestartTimer = undefined;
    if (this.#pc !== pc || this.#closed) return;
    const state = pc.iceConnectionState;
    if (state === 'connected' || state === 'completed') return;
    if (this.#iceRestarts >= this.iceRestartMaxAttempts) {
      this.#iceRestarts = 0;
      this.#restart('ice_restart_failed');
      return;
    }
    const attempt = ++this.#iceRestarts;
    this.log(`cascade: restarting ICE (attempt ${attempt}, ${reason})`);
    this.#emit('ice_restart', { attempt, reason });
    pc.restartIce();
    const timeoutMs = this.iceRestartTimeoutMs * 2 ** (attempt - 1);
    this.#iceRestartTimer = setTimeout(() => this.#restartIce(pc, 'timeout'), timeoutMs);
  }

  /**
   * Sends our offer (publishing changed).
   * @param {RTCPeerConnection} pc
   */
  async #offer(pc) {
    if (this.#pc !== pc || pc.signalingState !== 'stable' || this.#makingOffer) return;
    if (this.#holdOffers) {
      this.#offerDeferred = true;
      return;
    }
    try {
      this.#makingOffer = true;
      this.#pendingCandidates = [];
      await pc.setLocalDescription();
      // A server offer may have rolled ours back meanwhile; then negotiationneeded fires again.
      const signaling = /** @type {RTCSignalingState} */ (pc.signalingState);
      if (this.#pc === pc && pc.localDescription?.type === 'offer' && signaling === 'have-local-offer') {
        this.#send({ type: 'offer', sdp: pc.localDescription.sdp, ref: `offer-${++this.#offerSeq}` });
      }
    } catch (e) {
      if (this.#pc === pc) this.#fail('negotiation', e);
    } finally {
      this.#makingOffer = false;
      this.#flushCandidates();
    }
  }

  #flushCandidates() {
    const queued = this.#pendingCandidates;
    this.#pendingCandidates = null;
    for (const c of queued ?? []) this.#send({ type: 'candidate', candidate: c, ref: 'candidate' });
  }

  /** Emits `track` for each receiving mid whose Cascade track is new since the last offer. */
  #syncReceivedTracks() {
    const pc = this.#requirePc();
    const live = new Set();
    for (const t of pc.getTransceivers()) {
      const mid = t.mid;
      if (mid === null) continue;
      live.add(mid);
      const trackId = this.#midTracks.get(mid);
      const receiving = t.currentDirection === 'recvonly' || t.currentDirection === 'sendrecv';
      const before = this.#announced.get(mid);
      if (before && (before.trackId !== trackId || !receiving)) {
        this.#announced.delete(mid);
        this.#streams.get(before.participantId)?.removeTrack(before.track);
        this.#emit('track_removed', { trackId: before.trackId, participantId: before.participantId });
      }
      if (!trackId || !receiving || this.#announced.get(mid)?.trackId === trackId) continue;
      const info = this.tracks.get(trackId);
      const participantId = info?.participant ?? '';
      const mediaStreamTrack = t.receiver.track;
      this.#announced.set(mid, { trackId, participantId, track: mediaStreamTrack });
      let stream = this.#streams.get(participantId);
      if (!stream) {
        stream = new MediaStream();
        this.#streams.set(participantId, stream);
      }
      if (!stream.getTracks().includes(mediaStreamTrack)) stream.addTrack(mediaStreamTrack);
      this.#emit('track', {
        trackId,
        participantId,
        identity: this.participants.get(participantId)?.identity ?? '',
        kind: mediaStreamTrack.kind,
        muted: info?.muted ?? false,
        mediaStreamTrack,
        stream,
        receiver: t.receiver,
        transceiver: t,
      });
    }
    for (const [mid, a] of this.#announced) {
      if (live.has(mid)) continue;
      this.#announced.delete(mid);
      this.#streams.get(a.participantId)?.removeTrack(a.track);
      this.#emit('track_removed', { trackId: a.trackId, participantId: a.participantId });
    }
  }

  // ---- plumbing -------------------------------------------------------------------------

  /** @param {Record<string, any>} msg */
  #send(msg) {
    if (!this.#ws || this.#ws.readyState !== WebSocket.OPEN) return false;
    if (msg.type !== 'ping' && msg.type !== 'candidate') this.log('cascade ->', msg.type);
    this.#ws.send(JSON.stringify(msg));
    return true;
  }

  #requirePc() {
    if (!this.#pc) throw new CascadeError('not_joined', 'join first');
    return this.#pc;
  }

  #closePc() {
    const pc = this.#pc;
    this.#pc = null;
    clearTimeout(this.#iceRestartTimer);
    this.#iceRestartTimer = undefined;
    this.#iceRestarts = 0;
    if (!pc) return;
    pc.onnegotiationneeded = pc.onicecandidate = pc.onconnectionstatechange = pc.oniceconnectionstatechange = pc.ontrack = null;
    pc.close();
  }

  /**
   * Reports a local failure as an `error` event.
   * @param {string} where
   * @param {unknown} e
   * @param {string} [during]
   */
  #fail(where, e, during) {
    const message = e instanceof Error ? e.message : String(e);
    this.log(`cascade: ${where} error${during ? ` handling ${during}` : ''}:`, message);
    this.#emit('error', { code: e instanceof CascadeError ? e.code : `${where}_error`, message });
  }

  #stopPing() {
    clearInterval(this.#pingTimer);
    this.#pingTimer = undefined;
  }

  /** @param {ConnectionState} state */
  #setState(state) {
    if (this.#state === state) return;
    this.#state = state;
    this.#emit('connection_state', { state, peer: this.#pc?.connectionState ?? null });
  }

  /**
   * @param {string} type
   * @param {unknown} detail
   */
  #emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}
