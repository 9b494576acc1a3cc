// @ts-check
/** The client's error type, and the join errors after which reconnecting cannot help. */

/** Join errors after which reconnecting cannot help. */
export const FATAL_JOIN_ERRORS = new Set(['unauthorized', 'token_expired', 'permission_denied', 'invalid_name']);

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
