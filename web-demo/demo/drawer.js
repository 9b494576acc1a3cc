// @ts-check
/**
 * The chat and people drawer of narrow screens: the sidebar slides over the stage when the
 * Chat control is pressed, and the control counts the messages that arrived while it was
 * closed. On wide screens the sidebar is always shown and nothing is counted.
 */

/** Screens at most this wide show the sidebar as a drawer (demo.css uses the same width). */
const NARROW = '(max-width: 900px)';

/**
 * Wires the drawer's elements; returns what the chat calls on each message from someone else.
 * @param {{sidebar: HTMLElement, toggle: HTMLElement, close: HTMLElement, badge: HTMLElement}} els
 * @returns {{messageArrived: () => void, isOpen: () => boolean}}
 */
export function chatDrawer({ sidebar, toggle, close, badge }) {
  const narrow = window.matchMedia(NARROW);
  let unread = 0;
  const render = () => {
    badge.textContent = String(unread);
    badge.hidden = unread === 0;
    badge.setAttribute('aria-label', `${unread} unread ${unread === 1 ? 'message' : 'messages'}`);
    toggle.setAttribute('aria-expanded', String(sidebar.classList.contains('open')));
  };
  /** @param {boolean} open */
  const setOpen = (open) => {
    sidebar.classList.toggle('open', open);
    if (open) unread = 0;
    render();
  };
  toggle.addEventListener('click', () => setOpen(!sidebar.classList.contains('open')));
  close.addEventListener('click', () => setOpen(false));
  sidebar.addEventListener('keydown', (e) => {
    if (e.key === 'Escape') setOpen(false);
  });
  // Widening the window shows the sidebar: nothing is unread any more.
  narrow.addEventListener('change', () => {
    if (!narrow.matches) setOpen(false);
  });
  const isOpen = () => !narrow.matches || sidebar.classList.contains('open');
  return {
    messageArrived() {
      if (isOpen()) return;
      unread += 1;
      render();
    },
    isOpen,
  };
}
