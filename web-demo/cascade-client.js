// @ts-check
/**
 * Cascade browser client: one WebSocket for signaling, one RTCPeerConnection for media.
 * Plain ES modules, no dependencies, no build step. The API is documented in docs/client.md,
 * the protocol in docs/protocol.md. This file is the entry point: it re-exports the public API
 * of the modules in client/ next to it, imported relatively so that they load from wherever this
 * file is served (docs/architecture.md lists them).
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
 * The public types, defined in client/types.js.
 * @typedef {import('./client/types.js').ParticipantInfo} ParticipantInfo
 * @typedef {import('./client/types.js').TrackInfo} TrackInfo
 * @typedef {import('./client/types.js').IceServer} IceServer
 * @typedef {import('./client/types.js').WireCandidate} WireCandidate
 * @typedef {import('./client/types.js').Message} Message
 * @typedef {import('./client/types.js').JoinedInfo} JoinedInfo
 * @typedef {import('./client/types.js').TrackSource} TrackSource
 * @typedef {import('./client/types.js').ConnectionState} ConnectionState
 * @typedef {import('./client/types.js').ClientOptions} ClientOptions
 * @typedef {import('./client/types.js').LocalTrack} LocalTrack
 */

export { CascadeClient } from './client/client.js';
export { CascadeError } from './client/errors.js';
export { defaultServerUrl, defaultWsUrl, fetchDevToken } from './client/server.js';
