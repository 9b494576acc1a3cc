// @ts-check
/**
 * Cascade browser client: one WebSocket for signaling, one RTCPeerConnection for media.
 *
 * Negotiation follows "perfect negotiation" with fixed roles: the server is impolite, this
 * client is polite. When a server offer arrives while our own offer is outstanding, the browser
 * rolls our offer back (implicit rollback in setRemoteDescription), we answer, and the still
 * unnegotiated sendonly transceivers fire `negotiationneeded` again, so we re-offer.
 *
 * Events (all CustomEvent, payload in `detail`):
 * - `joined`             {participant, room, participants, tracks, iceServers}
 * - `track`              {trackId, participantId, kind, mediaStreamTrack, stream}
 * - `track_published`    {track}
 * - `track_unpublished`  {trackId, participantId}
 * - `track_muted`        {trackId, participantId, muted}
 * - `participant_joined` {participant}
 * - `participant_left`   {participantId, reason}
 * - `left`               {reason}  (server ended the session)
 * - `disconnected`       {code, reason}  (WebSocket closed)
 * - `error`              {code, message, ref}
 *
 * The protocol is documented in docs/protocol.md.
 */

/**
 * @typedef {{id: string, identity: string, can_publish: boolean}} ParticipantInfo
 * @typedef {{id: string, participant: string, kind: 'audio' | 'video', codec?: string, muted: boolean}} TrackInfo
 * @typedef {{urls: string[], username?: string, credential?: string}} IceServer
 * @typedef {{candidate: string, sdp_mid?: string, sdp_mline_index?: number, username_fragment?: string}} WireCandidate
 * @typedef {{type: string, [key: string]: any}} Message
 * @typedef {{participant: ParticipantInfo, room: string, participants: ParticipantInfo[],
 *   tracks: TrackInfo[], iceServers: IceServer[]}} JoinedInfo
 * @typedef {{pingIntervalMs?: number, log?: (...args: any[]) => void}} ClientOptions
 */

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

export class CascadeClient extends EventTarget {
  /** @type {WebSocket | null} */
  #ws = null;
  /** @type {RTCPeerConnection | null} */
  #pc = null;
  /** @type {ReturnType<typeof setInterval> | undefined} */
  #pingTimer;
  /** Serializes handling of server messages so SDP and candidates apply in order. */
  #inbox = Promise.resolve();
  #makingOffer = false;
  /** @type {{resolve: (info: JoinedInfo) => void, reject: (e: Error) => void} | null} */
  #pendingJoin = null;
  /** @type {JoinedInfo | null} */
  #joined = null;
  /** Participants other than us, by id. @type {Map<string, ParticipantInfo>} */
  participants = new Map();
  /** Every published track of the room, by id. @type {Map<string, TrackInfo>} */
  tracks = new Map();
  /** Cascade track id forwarded on each receiving mid (from the latest server offer). */
  #midTracks = new Map();
  /** Track id announced (via `track`) on each mid. @type {Map<string, string>} */
  #announced = new Map();
  /** One MediaStream per remote participant, holding its received tracks. @type {Map<string, MediaStream>} */
  #streams = new Map();

  /** @param {ClientOptions} [options] */
  constructor(options = {}) {
    super();
    this.pingIntervalMs = options.pingIntervalMs ?? 10_000;
    this.log = options.log ?? (() => {});
  }

  /** The peer connection (exists after `join`). */
  get pc() {
    return this.#pc;
  }

  /** The `joined` payload, once joined. */
  get info() {
    return this.#joined;
  }

  /**
   * Opens the signaling WebSocket.
   * @param {string} wsUrl e.g. `ws://127.0.0.1:7880/ws`
   * @returns {Promise<void>} resolves when open
   */
  connect(wsUrl) {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(wsUrl);
      this.#ws = ws;
      ws.onopen = () => {
        this.#pingTimer = setInterval(() => this.#send({ type: 'ping' }), this.pingIntervalMs);
        resolve();
      };
      ws.onerror = () => reject(new CascadeError('connect_failed', `WebSocket to ${wsUrl} failed`));
      ws.onmessage = (ev) => this.#receive(ev.data);
      ws.onclose = (ev) => {
        this.#stopPing();
        this.#pendingJoin?.reject(new CascadeError('disconnected', `socket closed (${ev.code})`));
        this.#pendingJoin = null;
        this.#emit('disconnected', { code: ev.code, reason: ev.reason });
      };
    });
  }

  /**
   * Joins the room named in the token and creates the peer connection.
   * @param {string} token access token (`cascade token ...`)
   * @param {{autoSubscribe?: boolean}} [options]
   * @returns {Promise<JoinedInfo>}
   */
  join(token, { autoSubscribe = true } = {}) {
    if (this.#pendingJoin || this.#joined) {
      return Promise.reject(new CascadeError('already_joined', 'join called twice'));
    }
    return new Promise((resolve, reject) => {
      this.#pendingJoin = { resolve, reject };
      this.#send({ type: 'join', token, auto_subscribe: autoSubscribe });
    });
  }

  /**
   * Publishes every track of a stream (one sendonly transceiver each). Negotiation starts by
   * itself (`negotiationneeded`).
   * @param {MediaStream} mediaStream
   * @returns {RTCRtpTransceiver[]}
   */
  publish(mediaStream) {
    const pc = this.#requirePc();
    return mediaStream
      .getTracks()
      .map((track) => pc.addTransceiver(track, { direction: 'sendonly', streams: [mediaStream] }));
  }

  /** Leaves the room and closes the peer connection and the socket. */
  leave() {
    this.#send({ type: 'leave' });
    this.#close();
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
    this.#inbox = this.#inbox
      .then(() => this.#dispatch(msg))
      .catch((e) => this.#fail('client', e, msg.type));
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
        this.participants.delete(msg.participant);
        this.#streams.delete(msg.participant);
        return this.#emit('participant_left', { participantId: msg.participant, reason: msg.reason });
      case 'track_published':
        this.tracks.set(msg.track.id, msg.track);
        return this.#emit('track_published', { track: msg.track });
      case 'track_unpublished':
        return this.#onTrackUnpublished(msg.track, msg.participant);
      case 'track_muted': {
        const info = this.tracks.get(msg.track);
        if (info) info.muted = msg.muted;
        return this.#emit('track_muted', { trackId: msg.track, participantId: msg.participant, muted: msg.muted });
      }
      case 'leave':
        this.#emit('left', { reason: msg.reason });
        return this.#close();
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
    this.#joined = info;
    for (const p of info.participants) this.participants.set(p.id, p);
    for (const t of info.tracks) this.tracks.set(t.id, t);
    this.#pc = this.#createPeerConnection(info.iceServers);
    this.#pendingJoin?.resolve(info);
    this.#pendingJoin = null;
    this.#emit('joined', info);
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
    await pc.setRemoteDescription({ type: 'offer', sdp });
    await pc.setLocalDescription();
    this.#send({ type: 'answer', sdp: pc.localDescription?.sdp });
    this.#syncReceivedTracks();
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
    const init = {
      candidate: c.candidate,
      sdpMid: c.sdp_mid ?? null,
      sdpMLineIndex: c.sdp_mline_index ?? null,
      usernameFragment: c.username_fragment ?? null,
    };
    try {
      await pc.addIceCandidate(init);
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
    for (const [mid, id] of this.#announced) {
      if (id !== trackId) continue;
      this.#announced.delete(mid);
      const transceiver = this.#pc?.getTransceivers().find((t) => t.mid === mid);
      if (transceiver) this.#streams.get(participantId)?.removeTrack(transceiver.receiver.track);
    }
    this.#emit('track_unpublished', { trackId, participantId });
  }

  /** @param {Message} msg */
  #onError(msg) {
    const err = new CascadeError(msg.code, msg.message, msg.ref);
    if (this.#pendingJoin) {
      this.#pendingJoin.reject(err);
      this.#pendingJoin = null;
    }
    this.#emit('error', { code: msg.code, message: msg.message, ref: msg.ref });
  }

  // ---- peer connection ------------------------------------------------------------------

  /** @param {IceServer[]} iceServers */
  #createPeerConnection(iceServers) {
    const pc = new RTCPeerConnection({ iceServers, bundlePolicy: 'max-bundle', rtcpMuxPolicy: 'require' });
    pc.onnegotiationneeded = () => this.#offer();
    pc.onicecandidate = ({ candidate }) => {
      if (!candidate || !candidate.candidate) return;
      this.#send({
        type: 'candidate',
        candidate: {
          candidate: candidate.candidate,
          sdp_mid: candidate.sdpMid ?? undefined,
          sdp_mline_index: candidate.sdpMLineIndex ?? undefined,
          username_fragment: candidate.usernameFragment ?? undefined,
        },
      });
    };
    pc.onconnectionstatechange = () => this.log('cascade: pc', pc.connectionState);
    return pc;
  }

  /** Sends our offer (publishing changed). */
  async #offer() {
    const pc = this.#pc;
    if (!pc) return;
    try {
      this.#makingOffer = true;
      await pc.setLocalDescription();
      // A server offer may have rolled ours back meanwhile; then negotiationneeded fires again.
      if (pc.localDescription?.type === 'offer') this.#send({ type: 'offer', sdp: pc.localDescription.sdp });
    } catch (e) {
      this.#fail('negotiation', e);
    } finally {
      this.#makingOffer = false;
    }
  }

  /** Emits `track` for each receiving mid whose Cascade track is new since the last offer. */
  #syncReceivedTracks() {
    const pc = this.#requirePc();
    for (const t of pc.getTransceivers()) {
      const mid = t.mid;
      if (mid === null) continue;
      const trackId = this.#midTracks.get(mid);
      const receiving = t.currentDirection === 'recvonly' || t.currentDirection === 'sendrecv';
      if (!trackId || !receiving) {
        this.#announced.delete(mid);
        continue;
      }
      if (this.#announced.get(mid) === trackId) continue;
      this.#announced.set(mid, trackId);
      const info = this.tracks.get(trackId);
      const participantId = info?.participant ?? '';
      const mediaStreamTrack = t.receiver.track;
      let stream = this.#streams.get(participantId);
      if (!stream) {
        stream = new MediaStream();
        this.#streams.set(participantId, stream);
      }
      if (!stream.getTracks().includes(mediaStreamTrack)) stream.addTrack(mediaStreamTrack);
      this.#emit('track', {
        trackId,
        participantId,
        kind: mediaStreamTrack.kind,
        mediaStreamTrack,
        stream,
      });
    }
  }

  // ---- plumbing -------------------------------------------------------------------------

  /** @param {Record<string, any>} msg */
  #send(msg) {
    if (this.#ws?.readyState !== WebSocket.OPEN) return false;
    if (msg.type !== 'ping' && msg.type !== 'candidate') this.log('cascade ->', msg.type);
    this.#ws.send(JSON.stringify(msg));
    return true;
  }

  #requirePc() {
    if (!this.#pc) throw new CascadeError('not_joined', 'join first');
    return this.#pc;
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

  #close() {
    this.#stopPing();
    this.#pc?.close();
    this.#ws?.close();
  }

  /**
   * @param {string} type
   * @param {unknown} detail
   */
  #emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}
