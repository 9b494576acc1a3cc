// @ts-check
/**
 * The call controls: microphone and camera mutes, screen sharing, the invite link.
 */
import { $, h } from './dom.js';
import { renderAll } from './render.js';
import { session, state } from './state.js';
import { toast } from './toast.js';

/**
 * Renders a mute toggle: `[title, label]` of `live` while unmuted, of `muted` while muted.
 * @param {HTMLElement | null} button
 * @param {boolean} isMuted
 * @param {boolean} enabled
 * @param {[string, string]} live
 * @param {[string, string]} muted
 */
function renderMuteButton(button, isMuted, enabled, live, muted) {
  if (!button) return;
  const [title, label] = isMuted ? muted : live;
  button.dataset.muted = String(isMuted);
  button.setAttribute('aria-pressed', String(isMuted));
  button.toggleAttribute('disabled', !enabled);
  button.title = title;
  setLabel(button, label);
}

/** Renders the controls from the state: mute and share buttons, stats toggle, invite link. */
export function renderControls() {
  const mic = document.getElementById('mic');
  const cam = document.getElementById('camera');
  const screen = document.getElementById('screen');
  const hasMic = session.client?.localTracks.some((l) => l.source === 'microphone') ?? false;
  const hasCam = session.client?.localTracks.some((l) => l.source === 'camera') ?? false;
  renderMuteButton(mic, state.micMuted, hasMic, ['Mute microphone', 'Mute'], ['Unmute microphone', 'Unmute']);
  renderMuteButton(cam, state.cameraMuted, hasCam, ['Turn camera off', 'Stop video'], ['Turn camera on', 'Start video']);
  if (screen) {
    screen.dataset.sharing = String(state.sharing);
    screen.setAttribute('aria-pressed', String(state.sharing));
    setLabel(screen, state.sharing ? 'Stop share' : 'Share');
    screen.toggleAttribute('disabled', !navigator.mediaDevices?.getDisplayMedia);
  }
  $('stats-toggle').setAttribute('aria-pressed', String(state.showStats));
  $('invite').dataset.inviteUrl = state.inviteUrl;
  document.body.classList.toggle('hide-stats', !state.showStats);
}

/**
 * @param {HTMLElement} button
 * @param {string} text
 */
function setLabel(button, text) {
  const label = button.querySelector('.label');
  if (label) label.textContent = text;
}

/** Mutes or unmutes the published microphone. */
export function toggleMic() {
  if (!session.client) return;
  state.micMuted = !state.micMuted;
  for (const l of session.client.localTracks) if (l.source === 'microphone') session.client.mute(l.track, state.micMuted);
  renderAll();
}

/** Turns the published camera off or on. */
export function toggleCamera() {
  if (!session.client) return;
  state.cameraMuted = !state.cameraMuted;
  for (const l of session.client.localTracks) if (l.source === 'camera') session.client.mute(l.track, state.cameraMuted);
  renderAll();
}

/** Starts sharing a screen (the browser asks which), or stops. */
export async function toggleScreen() {
  if (!session.client) return;
  if (session.screenStream) {
    stopScreen();
    return;
  }
  try {
    const stream = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false });
    if (!session.client) return;
    session.screenStream = stream;
    const [track] = stream.getVideoTracks();
    track.contentHint = 'detail';
    track.addEventListener('ended', () => stopScreen());
    session.client.publishTrack(track, { stream, source: 'screen' });
    state.sharing = true;
  } catch (e) {
    if (!(e instanceof DOMException && e.name === 'NotAllowedError')) toast(`Screen sharing failed: ${e instanceof Error ? e.message : e}`);
  }
  renderAll();
}

/** Stops sharing the screen: unpublishes and stops its tracks. */
export function stopScreen() {
  const stream = session.screenStream;
  session.screenStream = null;
  state.sharing = false;
  for (const t of stream?.getTracks() ?? []) {
    session.client?.unpublishTrack(t);
    t.stop();
  }
  renderAll();
}

/** Copies the invite link (or shows it where the clipboard is not available). */
export async function copyInvite() {
  const url = state.inviteUrl;
  let copied = false;
  try {
    await navigator.clipboard.writeText(url);
    copied = true;
  } catch {
    const tmp = h('textarea', {}, [url]);
    document.body.append(tmp);
    tmp.select();
    try {
      copied = document.execCommand('copy');
    } catch {
      copied = false;
    }
    tmp.remove();
  }
  toast(copied ? `Invite link copied: ${url}` : `Invite link: ${url}`, 6000);
}
