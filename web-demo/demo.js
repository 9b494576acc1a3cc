// @ts-check
/**
 * The Cascade demo page: conference, broadcast host and broadcast viewer on top of
 * cascade-client.js. Its modules are in demo/ (one concern each: state, landing, call, render,
 * controls, chat, levels, stats, toast); this entry wires the controls and starts the landing
 * card. For tests, `window.cascadeDemo = {client, state}` and `data-testid` attributes (listed in
 * docs/client.md).
 */
import { $ } from './demo/dom.js';
import { session, state } from './demo/state.js';
import { initLanding, listDevices } from './demo/landing.js';
import { leave, rejoin } from './demo/call.js';
import { copyInvite, renderControls, toggleCamera, toggleMic, toggleScreen } from './demo/controls.js';
import './demo/chat.js';
import './demo/levels.js';
import './demo/stats.js';

Object.defineProperty(window, 'cascadeDemo', {
  value: Object.freeze({
    get client() {
      return session.client;
    },
    state,
  }),
});

$('mic').addEventListener('click', toggleMic);
$('camera').addEventListener('click', toggleCamera);
$('screen').addEventListener('click', () => toggleScreen());
$('stats-toggle').addEventListener('click', () => {
  state.showStats = !state.showStats;
  renderControls();
});
$('invite').addEventListener('click', () => copyInvite());
$('leave').addEventListener('click', leave);
$('rejoin').addEventListener('click', rejoin);
navigator.mediaDevices?.addEventListener?.('devicechange', () => {
  if (state.phase === 'landing' && session.previewStream) listDevices().catch(() => {});
});
window.addEventListener('pagehide', () => session.client?.leave());

initLanding();
