// @ts-check
/**
 * The peer connection and its negotiation: "perfect negotiation" with the server impolite and
 * this client polite, our offers held back while the server's first offer is due, our ICE
 * candidates queued until their description has been sent, and ICE restarts when the media path
 * dies while the signaling socket lives.
 */
import { CascadeError } from './errors.js';

/**
 * @typedef {import('./types.js').IceServer} IceServer
 * @typedef {import('./types.js').WireCandidate} WireCandidate
 * @typedef {import('./types.js').Emit} Emit
 * @typedef {import('./types.js').Log} Log
 * @typedef {{
 *   readonly iceTransportPolicy: RTCIceTransportPolicy,
 *   readonly iceRestartDelayMs: number,
 *   readonly iceRestartTimeoutMs: number,
 *   readonly iceRestartMaxAttempts: number,
 * }} NegotiationConfig
 * @typedef {{
 *   send: (msg: Record<string, any>) => boolean,
 *   log: Log,
 *   emit: Emit,
 *   fail: (where: string, e: unknown, during?: string) => void,
 *   restart: (reason: string) => void,
 *   mediaConnected: () => void,
 *   isClosed: () => boolean,
 *   connectionState: () => string,
 * }} NegotiationHost
 */

/**
 * The client's current RTCPeerConnection (a new one after each fresh join) and everything that
 * negotiates it with the server.
 */
export class Negotiation {
  /** @type {RTCPeerConnection | null} */
  #pc = null;
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
  /** ICE restarts made since ICE was last connected (0: none in flight). */
  #iceRestarts = 0;
  /** Fires the next ICE restart (after `disconnected` lasted, or an attempt timed out). @type {ReturnType<typeof setTimeout> | undefined} */
  #iceRestartTimer;
  #config;
  #host;

  /**
   * @param {NegotiationConfig} config read at each use (the client's options)
   * @param {NegotiationHost} host what negotiation needs from the client
   */
  constructor(config, host) {
    this.#config = config;
    this.#host = host;
  }

  /** The current peer connection, if any. */
  get pc() {
    return this.#pc;
  }

  /** The current peer connection; throws `not_joined` if there is none. */
  requirePc() {
    if (!this.#pc) throw new CascadeError('not_joined', 'join first');
    return this.#pc;
  }

  /**
   * Replaces the peer connection by a fresh one. With `holdOffers`, our offers wait for the
   * server's first offer (at most 3 s).
   * @param {IceServer[]} iceServers
   * @param {boolean} holdOffers
   * @returns {RTCPeerConnection}
   */
  start(iceServers, holdOffers) {
    this.close();
    const pc = this.#createPeerConnection(iceServers);
    this.#pc = pc;
    this.#offerDeferred = false;
    this.#holdOffers = holdOffers;
    if (holdOffers) this.#holdTimer = setTimeout(() => this.releaseOffers(), 3000);
    return pc;
  }

  /** Closes the peer connection, if any, and stops its timers. */
  close() {
    clearTimeout(this.#holdTimer);
    const pc = this.#pc;
    this.#pc = null;
    this.#stopIceRestarts();
    if (!pc) return;
    pc.onnegotiationneeded = pc.onicecandidate = pc.onconnectionstatechange = pc.oniceconnectionstatechange = pc.ontrack = null;
    pc.close();
  }

  /**
   * Answers a server offer. As the polite peer we always accept it; a colliding local offer is
   * rolled back implicitly by setRemoteDescription. If the offer cannot be applied, the session
   * restarts (the server would wait for our answer).
   * @param {RTCPeerConnection} pc
   * @param {string} sdp
   * @returns {Promise<boolean>} whether it was answered
   */
  async answer(pc, sdp) {
    if (this.#makingOffer || pc.signalingState !== 'stable') this.#host.log('cascade: glare, rolling back our offer');
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
      this.#host.fail('negotiation', e, 'offer');
      this.#host.restart('negotiation_failed');
      return false;
    }
    this.#host.send({ type: 'answer', sdp: pc.localDescription?.sdp });
    this.#flushCandidates();
    return true;
  }

  /** Lets our held-back offer go (after the first server offer, or a timeout). */
  releaseOffers() {
    clearTimeout(this.#holdTimer);
    this.#holdOffers = false;
    if (this.#offerDeferred && this.#pc) {
      this.#offerDeferred = false;
      this.#offer(this.#pc);
    }
  }

  /**
   * Applies the server's answer to our offer (ignored unless our offer is outstanding).
   * @param {string} sdp
   */
  async applyAnswer(sdp) {
    const pc = this.requirePc();
    if (pc.signalingState !== 'have-local-offer') {
      this.#host.log('cascade: ignoring answer in state', pc.signalingState);
      return;
    }
    await pc.setRemoteDescription({ type: 'answer', sdp });
  }

  /**
   * Adds a server ICE candidate.
   * @param {WireCandidate} c
   */
  async addCandidate(c) {
    const pc = this.requirePc();
    try {
      await pc.addIceCandidate({
        candidate: c.candidate,
        sdpMid: c.sdp_mid ?? null,
        sdpMLineIndex: c.sdp_mline_index ?? null,
        usernameFragment: c.username_fragment ?? null,
      });
    } catch (e) {
      // A candidate for a description that was rolled back or replaced: harmless.
      this.#host.log('cascade: addIceCandidate failed', String(e));
    }
  }

  /**
   * Rolls our outstanding offer back if the server refused it (an error with `ref: "offer-N"`),
   * as the protocol asks.
   * @param {unknown} ref
   */
  async onRefused(ref) {
    if (typeof ref === 'string' && ref.startsWith('offer-') && this.#pc?.signalingState === 'have-local-offer') {
      await this.#pc.setLocalDescription({ type: 'rollback' }).catch(() => {});
    }
  }

  /**
   * After a resumed session: makes again an offer whose answer was lost with the socket, and
   * restarts ICE if the media path broke too.
   * @param {RTCPeerConnection} pc
   */
  async resume(pc) {
    if (pc.signalingState === 'have-local-offer') {
      // Our offer (or its answer) was lost with the socket.
      await pc.setLocalDescription({ type: 'rollback' });
    }
    this.#stopIceRestarts();
    const ice = pc.iceConnectionState;
    if (ice === 'disconnected' || ice === 'failed') this.#restartIce(pc, 'resumed');
    else this.#offer(pc);
  }

  /** @param {IceServer[]} iceServers */
  #createPeerConnection(iceServers) {
    const pc = new RTCPeerConnection({
      iceServers,
      iceTransportPolicy: this.#config.iceTransportPolicy,
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
      else this.#host.send({ type: 'candidate', candidate: wire, ref: 'candidate' });
    };
    pc.onconnectionstatechange = () => {
      if (this.#pc !== pc) return;
      this.#host.log('cascade: pc', pc.connectionState);
      if (pc.connectionState === 'connected') this.#host.mediaConnected();
      this.#host.emit('connection_state', { state: this.#host.connectionState(), peer: pc.connectionState });
    };
    pc.oniceconnectionstatechange = () => {
      if (this.#pc === pc) this.#onIceState(pc);
    };
    pc.ontrack = () => {
      // Mapped to Cascade ids after the answer, by RemoteTracks.sync.
    };
    return pc;
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
        this.#host.send({ type: 'offer', sdp: pc.localDescription.sdp, ref: `offer-${++this.#offerSeq}` });
      }
    } catch (e) {
      if (this.#pc === pc) this.#host.fail('negotiation', e);
    } finally {
      this.#makingOffer = false;
      this.#flushCandidates();
    }
  }

  #flushCandidates() {
    const queued = this.#pendingCandidates;
    this.#pendingCandidates = null;
    for (const c of queued ?? []) this.#host.send({ type: 'candidate', candidate: c, ref: 'candidate' });
  }

  /**
   * Watches the media path: restarts ICE when it stays `disconnected` or `failed` (one restart in
   * flight at a time), and notes the recovery.
   * @param {RTCPeerConnection} pc
   */
  #onIceState(pc) {
    const state = pc.iceConnectionState;
    this.#host.log('cascade: ice', state);
    if (state === 'connected' || state === 'completed') {
      clearTimeout(this.#iceRestartTimer);
      this.#iceRestartTimer = undefined;
      if (this.#iceRestarts > 0) this.#host.emit('ice_restarted', { attempts: this.#iceRestarts });
      this.#iceRestarts = 0;
    } else if (this.#iceRestarts === 0 && state === 'failed') {
      clearTimeout(this.#iceRestartTimer);
      this.#restartIce(pc, 'failed');
    } else if (this.#iceRestarts === 0 && state === 'disconnected' && this.#iceRestartTimer === undefined) {
      this.#iceRestartTimer = setTimeout(() => this.#restartIce(pc, 'disconnected'), this.#config.iceRestartDelayMs);
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
    if (this.#pc !== pc || this.#host.isClosed()) return;
    const state = pc.iceConnectionState;
    if (state === 'connected' || state === 'completed') return;
    if (this.#iceRestarts >= this.#config.iceRestartMaxAttempts) {
      this.#iceRestarts = 0;
      this.#host.restart('ice_restart_failed');
      return;
    }
    const attempt = ++this.#iceRestarts;
    this.#host.log(`cascade: restarting ICE (attempt ${attempt}, ${reason})`);
    this.#host.emit('ice_restart', { attempt, reason });
    pc.restartIce();
    const timeoutMs = this.#config.iceRestartTimeoutMs * 2 ** (attempt - 1);
    this.#iceRestartTimer = setTimeout(() => this.#restartIce(pc, 'timeout'), timeoutMs);
  }

  #stopIceRestarts() {
    clearTimeout(this.#iceRestartTimer);
    this.#iceRestartTimer = undefined;
    this.#iceRestarts = 0;
  }
}
