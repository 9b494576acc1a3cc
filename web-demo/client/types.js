// @ts-check
/**
 * The shared JSDoc types of the client: the protocol's objects as the client hands them to
 * applications, its options and its local tracks. Types only: nothing here runs, and the browser
 * never loads this file (it is referenced from JSDoc `import()` types).
 */

/**
 * A participant of the room (`joined.participants`, `participant_joined`).
 * @typedef {{id: string, identity: string, can_publish: boolean}} ParticipantInfo
 */
/**
 * A track published in the room.
 * @typedef {{id: string, participant: string, kind: 'audio' | 'video', codec?: string, muted: boolean, mid?: string}} TrackInfo
 */
/**
 * An ICE server, as the server sends it in `joined` (the shape of RTCIceServer).
 * @typedef {{urls: string[], username?: string, credential?: string}} IceServer
 */
/**
 * An ICE candidate on the wire (`candidate` messages).
 * @typedef {{candidate: string, sdp_mid?: string, sdp_mline_index?: number, username_fragment?: string}} WireCandidate
 */
/**
 * A signaling message from the server.
 * @typedef {{type: string, [key: string]: any}} Message
 */
/**
 * What the client knows after `joined` (the `joined` and `reconnected` events' payload).
 * @typedef {{participant: ParticipantInfo, room: string, participants: ParticipantInfo[],
 *   tracks: TrackInfo[], iceServers: IceServer[]}} JoinedInfo
 */
/**
 * What a local track carries: the `source` a publisher gives it.
 * @typedef {'camera' | 'microphone' | 'screen' | 'screen_audio' | 'unknown'} TrackSource
 */
/**
 * The client's `connectionState`.
 * @typedef {'idle' | 'connecting' | 'connected' | 'reconnecting' | 'disconnected' | 'closed'} ConnectionState
 */
/**
 * The options of `new CascadeClient(options)` (docs/client.md lists their defaults).
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
/**
 * Emits a client event (a CustomEvent of this type, with this `detail`).
 * @typedef {(type: string, detail: unknown) => void} Emit
 */
/**
 * The client's debug log (`options.log`).
 * @typedef {(...args: any[]) => void} Log
 */

export {};
