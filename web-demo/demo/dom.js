// @ts-check
/**
 * DOM helpers: element lookup by id and a small element builder.
 */

/** @param {string} id */
export function $(id) {
  const el = document.getElementById(id);
  if (!el) throw new Error(`#${id} missing`);
  return el;
}

/** The input element with this id. */
export const input = (/** @type {string} */ id) => /** @type {HTMLInputElement} */ ($(id));

/** The select element with this id. */
export const select = (/** @type {string} */ id) => /** @type {HTMLSelectElement} */ ($(id));

/**
 * @template {keyof HTMLElementTagNameMap} K
 * @param {K} tag
 * @param {Record<string, string>} [attrs]
 * @param {(Node | string)[]} [children]
 * @returns {HTMLElementTagNameMap[K]}
 */
export function h(tag, attrs = {}, children = []) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') el.className = v;
    else el.setAttribute(k, v);
  }
  el.append(...children);
  return el;
}

/**
 * A name's initials for avatars: "ana-maria" -> "AM".
 * @param {string} name
 */
export function initials(name) {
  const parts = name.split(/[\s._-]+/).filter(Boolean);
  return ((parts[0]?.[0] ?? '?') + (parts[1]?.[0] ?? '')).toUpperCase();
}
