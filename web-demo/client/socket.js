// @ts-check
/**
 * The signaling WebSocket: opening it, JSON framing, the keepalive that drops a socket the server
 * no longer answers on, and the backoff between reconnect attempts. What a reconnect does
 * (resume the participant or join again) is decided by the client.
 */
import { CascadeError } from './errors.js';

/**
 * @typedef {import('./types.js').Message} Message
 * @typedef {import('./types.js').Log} Log
 */

/**
 * The delay before reconnect attempt `attempt` (from 1): doubles from `minMs` up to `maxMs`,
 * with jitter (50..100 % of that), never below `minMs`.
 * @param {number} attempt
 * @param {number} minMs
 * @param {number} maxMs
 * @returns {number} milliseconds
 */
export function reconnectDelay(attempt, minMs, maxMs) {
  const base = Math.min(maxMs, minMs * 2 ** (attempt - 1));
  return Math.round(Math.max(minMs, base * (0.5 + Math.random() * 0.5)));
}

/**
 * One signaling connection at a time (a new WebSocket on each `open`). Server messages go to
 * `onMessage`; the end of the current socket, whoever ended it except `close()`, goes to
 * `onClose`. While `isJoined()`, a socket silent for 2.5 ping intervals counts as dead.
 */
export class SignalingSocket {
  /** @type {WebSocket | null} */
  #ws = null;
  /** @type {ReturnType<typeof setInterval> | undefined} */
  #pingTimer;
  #lastReceived = 0;
  #config;
  #handlers;

  /**
   * @param {{readonly pingIntervalMs: number}} config read at each use (the client's options)
   * @param {{log: Log, onMessage: (msg: Message) => void, onClose: (code: number, reason: string) => void,
   *   isJoined: () => boolean}} handlers
   */
  constructor(config, handlers) {
    this.#config = config;
    this.#handlers = handlers;
  }

  /** Whether there is a current socket (opening or open). */
  get active() {
    return this.#ws !== null;
  }

  /**
   * Opens a new socket to `url` (given up after 10 s) and starts the keepalive.
   * @param {string | null} url
   * @returns {Promise<void>} resolves when open
   */
  open(url) {
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
        if (this.#ws === ws) this.#closed(ev.code, ev.reason);
      };
    });
  }

  /**
   * Sends a message if the socket is open (nothing is queued).
   * @param {Record<string, any>} msg
   * @returns {boolean} whether it was sent
   */
  send(msg) {
    if (!this.#ws || this.#ws.readyState !== WebSocket.OPEN) return false;
    if (msg.type !== 'ping' && msg.type !== 'candidate') this.#handlers.log('cascade ->', msg.type);
    this.#ws.send(JSON.stringify(msg));
    return true;
  }

  /**
   * Closes the current socket without telling `onClose`.
   * @returns {boolean} whether there was one
   */
  close() {
    this.#stopPing();
    const ws = this.#ws;
    this.#ws = null;
    if (!ws) return false;
    ws.onclose = ws.onmessage = ws.onerror = null;
    ws.close(1000);
    return true;
  }

  /**
   * Closes the current socket at once and reports it to `onClose` as closed with `code` and
   * `reason`.
   * @param {number} code
   * @param {string} reason
   * @param {number} [closeCode] the close code sent to the server (default none)
   */
  drop(code, reason, closeCode) {
    const ws = this.#ws;
    if (!ws) return;
    ws.onclose = ws.onmessage = ws.onerror = null;
    ws.close(closeCode);
    this.#closed(code, reason);
  }

  /** Closes the current socket if it is open; `onClose` follows when it has closed. */
  closeIfOpen() {
    if (this.#ws && this.#ws.readyState === WebSocket.OPEN) this.#ws.close();
  }

  /**
   * @param {number} code
   * @param {string} reason
   */
  #closed(code, reason) {
    this.#ws = null;
    this.#stopPing();
    this.#handlers.onClose(code, reason);
  }

  /** @param {string} data */
  #receive(data) {
    /** @type {Message} */
    let msg;
    try {
      msg = JSON.parse(data);
    } catch {
      this.#handlers.log('cascade: ignoring non-JSON frame');
      return;
    }
    if (msg.type !== 'pong' && msg.type !== 'candidate') this.#handlers.log('cascade <-', msg.type);
    this.#handlers.onMessage(msg);
  }

  #startPing() {
    this.#stopPing();
    this.#pingTimer = setInterval(() => {
      // A socket that has been silent for 2.5 ping intervals is dead even if the browser has not
      // noticed yet: drop it and reconnect.
      if (this.#ws && this.#handlers.isJoined() && Date.now() - this.#lastReceived > this.#config.pingIntervalMs * 2.5) {
        this.#handlers.log('cascade: no answer from the server, dropping the socket');
        this.drop(4000, 'ping timeout');
        return;
      }
      this.send({ type: 'ping' });
    }, this.#config.pingIntervalMs);
  }

  #stopPing() {
    clearInterval(this.#pingTimer);
    this.#pingTimer = undefined;
  }
}
