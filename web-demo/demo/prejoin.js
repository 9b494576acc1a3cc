// @ts-check
/**
 * The join card's two views. An invite link (`/?room=…&mode=…`) lands on the short pre-join
 * view: room and mode are given, so only the name, the device toggles and Join show, under a
 * title that names the room. Without a room the full form asks for everything.
 */

/** @typedef {'conference' | 'host' | 'watch'} Mode */

/** What the pre-join view says for each mode. */
const PREJOIN = {
  conference: { verb: 'Join', subtitle: 'A conference: everyone talks and is seen.' },
  host: { verb: 'Host', subtitle: 'A broadcast: you are on stage, viewers watch.' },
  watch: { verb: 'Watch', subtitle: 'A broadcast: you watch and listen; no camera or microphone needed.' },
};

/**
 * The card's title, subtitle and Join label.
 * @param {'prejoin' | 'full'} view
 * @param {Mode} mode
 * @param {string} room
 */
export function joinTexts(view, mode, room) {
  const button = { conference: 'Join conference', host: 'Start broadcast', watch: 'Watch' }[mode];
  if (view === 'full' || !room) return { title: 'Join a room', subtitle: '', button };
  const { verb, subtitle } = PREJOIN[mode];
  return { title: `${verb} ${room}`, subtitle, button: mode === 'conference' ? 'Join now' : button };
}

/**
 * Shows a device toggle's state: pressed (off) or not, with a label that says which.
 * @param {HTMLElement} button
 * @param {boolean} off
 * @param {boolean} available the preview has this kind of track
 * @param {string} what "Microphone" or "Camera"
 */
export function renderDeviceToggle(button, off, available, what) {
  button.dataset.muted = String(off);
  button.setAttribute('aria-pressed', String(off));
  button.setAttribute('aria-label', `${what} ${off ? 'off' : 'on'}`);
  button.title = off ? `Join with the ${what.toLowerCase()} on` : `Join with the ${what.toLowerCase()} off`;
  button.toggleAttribute('disabled', !available);
}
