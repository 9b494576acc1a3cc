// @ts-check
/**
 * Local tracks: the tracks this client publishes, their sendonly transceivers, their Cascade
 * track ids once the server has seen their media, and their mute state. They outlive a peer
 * connection: a fresh one after a rejoin gets them again.
 */
import { CascadeError } from './errors.js';

/**
 * @typedef {import('./types.js').LocalTrack} LocalTrack
 * @typedef {import('./types.js').TrackSource} TrackSource
 */

/** Our local tracks, in publishing order. */
export class LocalTracks {
  /** @type {Map<MediaStreamTrack, LocalTrack>} */
  #local = new Map();

  /** The local tracks, in publishing order. */
  get all() {
    return [...this.#local.values()];
  }

  /**
   * Publishes `track` on `pc` with a sendonly transceiver (the existing one if it is published).
   * @param {RTCPeerConnection} pc
   * @param {MediaStreamTrack} track
   * @param {{stream?: MediaStream, source?: TrackSource}} options
   * @returns {RTCRtpTransceiver}
   */
  add(pc, track, { stream, source }) {
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
   * Stops publishing `track` (its sender leaves `pc`, which renegotiates).
   * @param {RTCPeerConnection | null} pc
   * @param {MediaStreamTrack} track
   * @returns {LocalTrack | undefined} the track that was published
   */
  remove(pc, track) {
    const local = this.#local.get(track);
    if (!local) return undefined;
    this.#local.delete(track);
    const t = local.transceiver;
    if (t && pc && pc.signalingState !== 'closed' && t.currentDirection !== 'stopped') {
      pc.removeTrack(t.sender);
    }
    return local;
  }

  /**
   * Sends `newTrack` instead of the published `oldTrack` (same transceiver, same track id).
   * @param {MediaStreamTrack} oldTrack
   * @param {MediaStreamTrack} newTrack
   */
  async replace(oldTrack, newTrack) {
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
   * Mutes or unmutes a local track (`track.enabled`).
   * @param {MediaStreamTrack | string} trackOrId a published MediaStreamTrack or its Cascade id
   * @param {boolean} muted
   * @returns {string | null} its Cascade track id, if known
   */
  setMuted(trackOrId, muted) {
    const local =
      typeof trackOrId === 'string'
        ? [...this.#local.values()].find((l) => l.trackId === trackOrId)
        : this.#local.get(trackOrId);
    if (!local) throw new CascadeError('track_not_found', 'not a published track');
    local.muted = muted;
    local.track.enabled = !muted;
    return local.trackId;
  }

  /**
   * Publishes the local tracks again on a fresh peer connection (ended tracks are dropped);
   * their track ids are new.
   * @param {RTCPeerConnection} pc
   */
  republish(pc) {
    for (const local of this.#local.values()) {
      if (local.track.readyState === 'ended') {
        this.#local.delete(local.track);
        continue;
      }
      local.trackId = null;
      local.transceiver = pc.addTransceiver(local.track, { direction: 'sendonly', streams: [local.stream] });
    }
  }

  /**
   * The local track sent on `mid`, now published as `trackId`: records the id.
   * @param {string} mid
   * @param {string} trackId
   * @returns {LocalTrack | undefined}
   */
  published(mid, trackId) {
    const local = [...this.#local.values()].find((l) => l.transceiver && l.transceiver.mid === mid);
    if (local) local.trackId = trackId;
    return local;
  }
}
