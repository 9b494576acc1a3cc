// @ts-check
/**
 * The chat: messages shown and sent as `data` payloads `{kind: "chat", text, name}`; on narrow
 * screens the drawer counts unread ones.
 */
import { chatDrawer } from './drawer.js';
import { $, h, input } from './dom.js';
import { session, state } from './state.js';
import { toast } from './toast.js';

/**
 * @typedef {import('./state.js').ChatEntry} ChatEntry
 */

/**
 * Shows a chat message (counted as unread if it is someone else's and the drawer is closed).
 * @param {ChatEntry} entry
 */
export function addChat(entry) {
  state.chat.push(entry);
  const list = $('chat-messages');
  const time = new Date(entry.time).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  if (!entry.local) drawer.messageArrived();
  list.append(
    h('li', { 'data-testid': 'chat-message', 'data-identity': entry.identity, class: entry.local ? 'mine' : '' }, [
      h('div', { class: 'meta' }, [h('span', { class: 'from', 'data-testid': 'chat-from' }, [entry.identity]), h('time', {}, [time])]),
      h('div', { class: 'text', 'data-testid': 'chat-text' }, [entry.text]),
    ]),
  );
  list.scrollTop = list.scrollHeight;
}

function sendChat() {
  const field = input('chat-input');
  const text = field.value.trim();
  if (!text || !session.client) return;
  if (!session.client.sendData({ kind: 'chat', text, name: state.identity })) {
    toast('Not connected: message not sent.');
    return;
  }
  field.value = '';
  addChat({ identity: state.identity, name: state.identity, text, local: true, time: Date.now() });
}

/** The drawer of narrow screens. */
const drawer = chatDrawer({ sidebar: $('sidebar'), toggle: $('chat-toggle'), close: $('drawer-close'), badge: $('unread') });

$('chat-form').addEventListener('submit', (e) => {
  e.preventDefault();
  sendChat();
});
