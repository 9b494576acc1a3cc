// @ts-check
/**
 * Received tracks: which Cascade track each receiving transceiver (mid) carries, the `track` /
 * `track_removed` events, and one MediaStream per remote participant holding its tracks.
 */

/**
 * @typedef {import('./types.js').TrackInfo} TrackInfo
 * @typedef {import('./types.js').ParticipantInfo} ParticipantInfo
 * @typedef {import('./types.js').Emit} Emit
 * @typedef {{trackId: string, participantId: string, track: MediaStreamTrack}} Announced
 */

/** The tracks received on the current peer connection, mapped to Cascade track ids. */
export class RemoteTracks {
  /** Cascade track id forwarded on each receiving mid (from the latest server offer). @type {Map<string, string>} */
  #midTracks = new Map();
  /** Track announced (via `track`) on each mid. @type {Map<string, Announced>} */
  #announced = new Map();
  /** One MediaStream per remote participant, holding its received tracks. @type {Map<string, MediaStream>} */
  #streams = new Map();
  #emit;

  /** @param {Emit} emit */
  constructor(emit) {
    this.#emit = emit;
  }

  /** Received streams, one per remote participant id (a copy). */
  get streams() {
    return new Map(this.#streams);
  }

  /**
   * Notes the mid -> Cascade track id map of a server offer (applied by the next `sync`).
   * @param {Record<string, string>} tracks
   */
  expect(tracks) {
    this.#midTracks = new Map(Object.entries(tracks));
  }

  /**
   * Emits `track` for each receiving mid whose Cascade track is new since the last offer, and
   * `track_removed` for those no longer received.
   * @param {RTCPeerConnection} pc
   * @param {Map<string, TrackInfo>} tracks the room's tracks
   * @param {Map<string, ParticipantInfo>} participants the room's other participants
   */
  sync(pc, tracks, participants) {
    const live = new Set();
    for (const t of pc.getTransceivers()) {
      const mid = t.mid;
      if (mid === null) continue;
      live.add(mid);
      const trackId = this.#midTracks.get(mid);
      const receiving = t.currentDirection === 'recvonly' || t.currentDirection === 'sendrecv';
      const before = this.#announced.get(mid);
      if (before && (before.trackId !== trackId || !receiving)) this.#remove(mid, before);
      if (!trackId || !receiving || this.#announced.get(mid)?.trackId === trackId) continue;
      const info = tracks.get(trackId);
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
        identity: participants.get(participantId)?.identity ?? '',
        kind: mediaStreamTrack.kind,
        muted: info?.muted ?? false,
        mediaStreamTrack,
        stream,
        receiver: t.receiver,
        transceiver: t,
      });
    }
    for (const [mid, a] of this.#announced) {
      if (!live.has(mid)) this.#remove(mid, a);
    }
  }

  /**
   * Stops receiving an unpublished track (`track_removed` if it was received).
   * @param {string} trackId
   */
  unpublished(trackId) {
    for (const [mid, a] of this.#announced) {
      if (a.trackId === trackId) this.#remove(mid, a);
    }
  }

  /**
   * Forgets the stream of a participant who left.
   * @param {string} participantId
   */
  participantLeft(participantId) {
    this.#streams.delete(participantId);
  }

  /** Forgets everything received on the old peer connection (`track_removed` for each track). */
  reset() {
    for (const [mid, a] of this.#announced) {
      this.#announced.delete(mid);
      this.#emit('track_removed', { trackId: a.trackId, participantId: a.participantId });
    }
    this.#streams.clear();
    this.#midTracks.clear();
  }

  /**
   * The receiver transceivers of `pc` currently carrying a track of `participantId`.
   * @param {RTCPeerConnection | null} pc
   * @param {string} participantId
   * @returns {{trackId: string, kind: string, receiver: RTCRtpReceiver}[]}
   */
  receiversOf(pc, participantId) {
    const out = [];
    for (const t of pc?.getTransceivers() ?? []) {
      const a = t.mid === null ? undefined : this.#announced.get(t.mid);
      if (a && a.participantId === participantId) out.push({ trackId: a.trackId, kind: a.track.kind, receiver: t.receiver });
    }
    return out;
  }

  /**
   * @param {string} mid
   * @param {Announced} a
   */
  #remove(mid, a) {
    this.#announced.delete(mid);
    this.#streams.get(a.participantId)?.removeTrack(a.track);
    this.#emit('track_removed', { trackId: a.trackId, participantId: a.participantId });
  }
}
