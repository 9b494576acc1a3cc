// @ts-check
/**
 * The session of a `CascadeClient`: connect, join, resume or rejoin after a dropped socket,
 * restart after a failed negotiation, close; and the handling of every server message, in
 * order, which keeps the client's view of the room (`participants`, `tracks`) up to date.
 */
import { CascadeError, FATAL_JOIN_ERRORS } from './errors.js';
import { Negotiation } from './negotiation.js';
import { Room } from './room.js';
import { SignalingSocket, reconnectDelay } from './socket.js';

/**
 * @typedef {import('./types.js').Message} Message
 * @typedef {import('./types.js').JoinedInfo} JoinedInfo
 * @typedef {import('./types.js').ConnectionState} ConnectionState
 * @typedef {import('./types.js').Emit} Emit
 * @typedef {import('./client.js').CascadeClient} CascadeClient
 * @typedef {import('./publishing.js').LocalTracks} LocalTracks
 * @typedef {import('./tracks.js').RemoteTracks} RemoteTracks
 */

/** The signaling session of one client, across reconnects. */
export class Session {
  #client;
  #emit;
  #local;
  #remote;
  #room;
  #socket;
  #negotiation;
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  #reconnectTimer;
  /** Serializes handling of server messages so SDP and candidates apply in order. */
  #inbox = Promise.resolve();
  /** @type {{resolve: (info: JoinedInfo) => void, reject: (e: Error) => void} | null} */
  #pendingJoin = null;
  /** @type {JoinedInfo | null} */
  #joined = null;
  /** @type {string | null} */
  #wsUrl = null;
  /** @type {string | null} */
  #token = null;
  #autoSubscribe = true;
  /** The room the page expects (`join`'s `room` option). @type {string | undefined} */
  #roomName = undefined;
  /** The `resume_token` of the latest `joined`: continues this participant after a drop. */
  /** @type {string | null} */
  #resumeToken = null;
  /** Set by `leave()`/`close()`, or when the session cannot be resumed: no more reconnects. */
  #closed = false;
  #reconnectAttempt = 0;
  /**
   * Fresh sessions started (`#restart`) since the media last connected: the reconnect backoff
   * goes on from there, so a session that keeps failing is not restarted at the minimum delay.
   */
  #restarts = 0;
  /** @type {ConnectionState} */
  #state = 'idle';

  /**
   * @param {CascadeClient} client its options (read at each use), its `participants`, `tracks`
   *   and `log`
   * @param {{emit: Emit, local: LocalTracks, remote: RemoteTracks}} parts
   */
  constructor(client, { emit, local, remote }) {
    this.#client = client;
    this.#emit = emit;
    this.#local = local;
    this.#remote = remote;
    this.#room = new Room(client, { emit, local, remote, send: (msg) => this.send(msg) });
    this.#socket = new SignalingSocket(client, {
      log: (...args) => client.log(...args),
      onMessage: (msg) => this.#receive(msg),
      onClose: (code, reason) => this.#onSocketClosed(code, reason),
      isJoined: () => this.#joined !== null,
    });
    this.#negotiation = new Negotiation(client, {
      send: (msg) => this.send(msg),
      log: (...args) => client.log(...args),
      emit,
      fail: (where, e, during) => this.#fail(where, e, during),
      restart: (reason) => this.#restart(reason),
      mediaConnected: () => {
        this.#restarts = 0;
      },
      isClosed: () => this.#closed,
      connectionState: () => this.#state,
    });
  }

  /** The current peer connection, if any. */
  get pc() {
    return this.#negotiation.pc;
  }

  /** The current peer connection; throws `not_joined` if there is none. */
  requirePc() {
    return this.#negotiation.requirePc();
  }

  /** The latest `joined` payload, once joined. */
  get joined() {
    return this.#joined;
  }

  /** @returns {ConnectionState} */
  get state() {
    return this.#state;
  }

  /**
   * Opens the signaling socket.
   * @param {string} wsUrl
   */
  async connect(wsUrl) {
    this.#wsUrl = wsUrl;
    this.#closed = false;
    this.#setState('connecting');
    await this.#socket.open(this.#wsUrl);
  }

  /**
   * Joins the room of the token (see `CascadeClient.join`).
   * @param {string} token
   * @param {{autoSubscribe: boolean, room: string | undefined}} options
   * @returns {Promise<JoinedInfo>}
   */
  join(token, { autoSubscribe, room }) {
    if (this.#pendingJoin || this.#joined) {
      return Promise.reject(new CascadeError('already_joined', 'join called twice'));
    }
    this.#token = token;
    this.#autoSubscribe = autoSubscribe;
    this.#roomName = room;
    return this.#sendJoin();
  }

  /** Closes everything, for good (`disconnected` if a socket was open, then state `closed`). */
  close() {
    this.#closed = true;
    clearTimeout(this.#reconnectTimer);
    this.#pendingJoin?.reject(new CascadeError('closed', 'client closed'));
    this.#pendingJoin = null;
    this.#negotiation.close();
    if (this.#socket.close()) this.#emit('disconnected', { code: 1000, reason: 'leave', willReconnect: false });
    this.#setState('closed');
  }

  /**
   * Sends a message if the socket is open (nothing is queued).
   * @param {Record<string, any>} msg
   * @returns {boolean} whether it was sent
   */
  send(msg) {
    return this.#socket.send(msg);
  }

  // ---- reconnect ------------------------------------------------------------------------

  /**
   * The signaling socket closed (or was dropped): reconnect if we were joined, else give up.
   * @param {number} code
   * @param {string} reason
   */
  #onSocketClosed(code, reason) {
    const wasJoined = this.#joined !== null;
    const willReconnect = this.#client.reconnect && !this.#closed && wasJoined && reason !== 'replaced' && reason !== 'leave';
    this.#pendingJoin?.reject(new CascadeError('disconnected', `socket closed (${code} ${reason})`));
    this.#pendingJoin = null;
    this.#emit('disconnected', { code, reason, willReconnect });
    // With a resume token the peer connection is kept: the server keeps ours for its grace
    // period, media flowing, and the next socket resumes the same participant.
    if (!willReconnect || this.#resumeToken === null) this.#negotiation.close();
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
    if (attempt > this.#client.reconnectMaxAttempts) {
      this.#closed = true;
      this.#setState('disconnected');
      this.#emit('error', { code: 'reconnect_failed', message: `gave up after ${attempt - 1} attempts` });
      return;
    }
    const delayMs = reconnectDelay(attempt, this.#client.reconnectMinDelayMs, this.#client.reconnectMaxDelayMs);
    this.#setState('reconnecting');
    this.#client.log(`cascade: reconnecting in ${delayMs} ms (attempt ${attempt})`);
    this.#emit('reconnecting', { attempt, delayMs, reason });
    this.#reconnectTimer = setTimeout(() => this.#tryReconnect(), delayMs);
  }

  /** Opens a new socket and resumes our participant, or joins afresh if it cannot be resumed. */
  async #tryReconnect() {
    if (this.#closed) return;
    try {
      await this.#socket.open(this.#wsUrl);
      if (this.#closed) return;
      if (this.#resumeToken !== null && this.#negotiation.pc) {
        try {
          await this.#request({ type: 'resume', token: this.#resumeToken });
          return;
        } catch (e) {
          if (!(e instanceof CascadeError && e.code === 'resume_failed')) throw e;
          // Gone meanwhile (grace over, media lost, removed): join as a new participant.
          this.#client.log('cascade: resume refused, joining afresh:', e.message);
          this.#resumeToken = null;
          this.#negotiation.close();
        }
      }
      await this.#sendJoin();
    } catch (e) {
      if (this.#closed) return;
      const code = e instanceof CascadeError ? e.code : 'connect_failed';
      if (FATAL_JOIN_ERRORS.has(code)) {
        this.#client.log('cascade: cannot rejoin:', code);
        this.#closed = true;
        this.#socket.close();
        this.#setState('disconnected');
        this.#emit('disconnected', { code: 1000, reason: code, willReconnect: false });
        return;
      }
      // The socket's close handler schedules the next attempt; if the socket is still open
      // (e.g. `room_full`), close it to get there.
      this.#socket.closeIfOpen();
    }
  }

  /**
   * Drops the current session and joins again with a fresh peer connection (as after a refused
   * resume). Not a resume: that would bring back the peer connection, and the server's pending
   * offer, that failed.
   * @param {string} reason
   */
  #restart(reason) {
    if (!this.#socket.active || this.#closed) return;
    this.#client.log('cascade: restarting the session:', reason);
    this.#resumeToken = null;
    this.#reconnectAttempt = this.#restarts++;
    this.#socket.drop(4001, reason, 1000);
  }

  /** @returns {Promise<JoinedInfo>} */
  #sendJoin() {
    const join = { type: 'join', token: this.#token, auto_subscribe: this.#autoSubscribe };
    if (this.#roomName !== undefined) Object.assign(join, { room: this.#roomName });
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
      if (!this.send({ ...message, ref: 'join' })) {
        this.#pendingJoin = null;
        reject(new CascadeError('not_connected', 'connect first'));
      }
    });
  }

  // ---- server messages ------------------------------------------------------------------

  /** @param {Message} msg */
  #receive(msg) {
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
        return this.#negotiation.applyAnswer(msg.sdp);
      case 'candidate':
        return this.#negotiation.addCandidate(msg.candidate);
      case 'participant_joined':
        return this.#room.participantJoined(msg.participant);
      case 'participant_left':
        return this.#room.participantLeft(msg.participant, msg.reason);
      case 'track_published':
        return this.#room.trackPublished(msg.track, this.#joined?.participant.id);
      case 'track_unpublished':
        return this.#room.trackUnpublished(msg.track, msg.participant);
      case 'track_muted':
        return this.#room.trackMuted(msg.track, msg.participant, msg.muted);
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
        this.#client.log('cascade: unknown message type', msg.type);
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
    const resumedPc = this.#negotiation.pc;
    if (msg.resumed && resumedPc) return this.#onResumed(info, resumedPc);
    const rejoin = this.#joined !== null;
    this.#room.joined(info, this.#joined);
    this.#joined = info;
    this.#reconnectAttempt = 0;
    const pc = this.#negotiation.start([...info.iceServers, ...this.#client.extraIceServers], this.#autoSubscribe && info.tracks.length > 0);
    // Republish our local tracks on the fresh peer connection.
    this.#local.republish(pc);
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
    this.#room.resumed(info);
    this.#joined = info;
    this.#reconnectAttempt = 0;
    this.#setState('connected');
    this.#pendingJoin?.resolve(info);
    this.#pendingJoin = null;
    this.#emit('joined', info);
    this.#emit('resumed', info);
    await this.#negotiation.resume(pc);
  }

  /**
   * A server offer: answered (see Negotiation.answer), then its tracks are announced.
   * @param {string} sdp
   * @param {Record<string, string>} tracks mid -> Cascade track id
   */
  async #onOffer(sdp, tracks) {
    const pc = this.#negotiation.requirePc();
    this.#remote.expect(tracks);
    if (!(await this.#negotiation.answer(pc, sdp))) return;
    this.#remote.sync(pc, this.#client.tracks, this.#client.participants);
    this.#negotiation.releaseOffers();
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
      this.#client.log('cascade: candidate refused:', msg.message);
      return;
    }
    await this.#negotiation.onRefused(msg.ref);
    this.#emit('error', { code: msg.code, message: msg.message, ref: msg.ref });
  }

  // ---- plumbing -------------------------------------------------------------------------

  /**
   * Reports a local failure as an `error` event.
   * @param {string} where
   * @param {unknown} e
   * @param {string} [during]
   */
  #fail(where, e, during) {
    const message = e instanceof Error ? e.message : String(e);
    this.#client.log(`cascade: ${where} error${during ? ` handling ${during}` : ''}:`, message);
    this.#emit('error', { code: e instanceof CascadeError ? e.code : `${where}_error`, message });
  }

  /** @param {ConnectionState} state */
  #setState(state) {
    if (this.#state === state) return;
    this.#state = state;
    this.#emit('connection_state', { state, peer: this.#negotiation.pc?.connectionState ?? null });
  }
}
