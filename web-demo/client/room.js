// @ts-check
/**
 * The client's view of the room: its other participants and its published tracks (the client's
 * public `participants` and `tracks` maps), kept up to date from server messages and after a
 * resume or rejoin, with the events that tell the application what changed.
 */

/**
 * @typedef {import('./types.js').ParticipantInfo} ParticipantInfo
 * @typedef {import('./types.js').TrackInfo} TrackInfo
 * @typedef {import('./types.js').JoinedInfo} JoinedInfo
 * @typedef {import('./types.js').Emit} Emit
 * @typedef {import('./publishing.js').LocalTracks} LocalTracks
 * @typedef {import('./tracks.js').RemoteTracks} RemoteTracks
 * @typedef {{participants: Map<string, ParticipantInfo>, tracks: Map<string, TrackInfo>}} RoomMaps
 */

/** Updates the room's maps of a client and emits their changes. */
export class Room {
  #maps;
  #emit;
  #local;
  #remote;
  #send;

  /**
   * @param {RoomMaps} maps the client, which holds the maps
   * @param {{emit: Emit, local: LocalTracks, remote: RemoteTracks, send: (msg: Record<string, any>) => boolean}} parts
   */
  constructor(maps, { emit, local, remote, send }) {
    this.#maps = maps;
    this.#emit = emit;
    this.#local = local;
    this.#remote = remote;
    this.#send = send;
  }

  /**
   * Takes the room of a fresh `joined`. After a rejoin (`previous` is the session before), first
   * tells the app what changed in the room while we were away, and forgets the tracks received
   * on the old peer connection (they arrive again as new `track` events).
   * @param {JoinedInfo} info
   * @param {JoinedInfo | null} previous
   */
  joined(info, previous) {
    if (previous) this.#reconcile(info, previous.participant.id);
    this.#take(info);
  }

  /**
   * Takes the room of a resumed session, telling what changed meanwhile (received tracks stay).
   * @param {JoinedInfo} info
   */
  resumed(info) {
    const { participants, tracks } = this.#maps;
    const others = new Set(info.participants.map((p) => p.id));
    for (const p of participants.values()) {
      if (!others.has(p.id)) this.participantLeft(p.id, 'disconnected');
    }
    for (const p of info.participants) {
      if (!participants.has(p.id)) this.#emit('participant_joined', { participant: p });
    }
    const current = new Set(info.tracks.map((t) => t.id));
    for (const t of tracks.values()) {
      if (t.participant !== info.participant.id && !current.has(t.id)) {
        this.#emit('track_unpublished', { trackId: t.id, participantId: t.participant });
      }
    }
    for (const t of info.tracks) {
      if (!tracks.has(t.id)) this.#emit('track_published', { track: t });
    }
    this.#take(info);
  }

  /** @param {ParticipantInfo} participant someone joined */
  participantJoined(participant) {
    this.#maps.participants.set(participant.id, participant);
    this.#emit('participant_joined', { participant });
  }

  /**
   * Someone left.
   * @param {string} participantId
   * @param {string} reason
   */
  participantLeft(participantId, reason) {
    const p = this.#maps.participants.get(participantId);
    this.#maps.participants.delete(participantId);
    this.#remote.participantLeft(participantId);
    this.#emit('participant_left', { participantId, identity: p?.identity ?? '', reason });
  }

  /**
   * A track was published; one of ours (`ownId`) gets its Cascade id, and a mute made before is
   * told now.
   * @param {TrackInfo} track
   * @param {string | undefined} ownId our participant id
   */
  trackPublished(track, ownId) {
    this.#maps.tracks.set(track.id, track);
    const local = track.participant === ownId && track.mid !== undefined ? this.#local.published(track.mid, track.id) : undefined;
    if (local) {
      // Muted before the id was known (or before a reconnect): tell the others now.
      if (local.muted || track.muted) {
        track.muted = local.muted;
        this.#send({ type: 'mute', track: track.id, muted: local.muted });
      }
      this.#emit('local_track_published', { trackId: track.id, track: local.track, source: local.source, mid: track.mid });
    }
    this.#emit('track_published', { track });
  }

  /**
   * A track was unpublished (it is no longer received either).
   * @param {string} trackId
   * @param {string} participantId
   */
  trackUnpublished(trackId, participantId) {
    this.#maps.tracks.delete(trackId);
    this.#remote.unpublished(trackId);
    this.#emit('track_unpublished', { trackId, participantId });
  }

  /**
   * A track was muted or unmuted.
   * @param {string} trackId
   * @param {string} participantId
   * @param {boolean} muted
   */
  trackMuted(trackId, participantId, muted) {
    const info = this.#maps.tracks.get(trackId);
    if (info) info.muted = muted;
    this.#emit('track_muted', { trackId, participantId, muted });
  }

  /** @param {JoinedInfo} info */
  #take(info) {
    this.#maps.participants = new Map(info.participants.map((p) => [p.id, p]));
    this.#maps.tracks = new Map(info.tracks.map((t) => [t.id, t]));
  }

  /**
   * @param {JoinedInfo} info
   * @param {string} ownOld our participant id before the rejoin
   */
  #reconcile(info, ownOld) {
    this.#remote.reset();
    const { participants, tracks } = this.#maps;
    const newTracks = new Set(info.tracks.map((t) => t.id));
    for (const t of tracks.values()) {
      if (t.participant !== ownOld && !newTracks.has(t.id)) {
        this.#emit('track_unpublished', { trackId: t.id, participantId: t.participant });
      }
    }
    const newParticipants = new Set(info.participants.map((p) => p.id));
    for (const p of participants.values()) {
      if (!newParticipants.has(p.id)) {
        this.#emit('participant_left', { participantId: p.id, identity: p.identity, reason: 'disconnected' });
      }
    }
    for (const p of info.participants) {
      if (!participants.has(p.id)) this.#emit('participant_joined', { participant: p });
    }
    const oldTracks = new Set(tracks.keys());
    for (const t of info.tracks) {
      if (!oldTracks.has(t.id)) this.#emit('track_published', { track: t });
    }
  }
}
