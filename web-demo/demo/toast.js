// @ts-check
/**
 * Short notifications at the bottom of the page.
 */
import { $ } from './dom.js';

/** @type {ReturnType<typeof setTimeout> | undefined} */
let toastTimer;

/**
 * @param {string} text
 * @param {number} [ms]
 */
export function toast(text, ms = 3500) {
  const el = $('toast');
  el.textContent = text;
  el.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => (el.hidden = true), ms);
}
