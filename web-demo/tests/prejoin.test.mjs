// An invite lands on the short pre-join screen (desktop and phone): the room's name, the name
// field, camera and microphone toggles, Join in view without scrolling. A phone that joins with
// its camera off is seen with the camera off and can turn it on in the call; its room view keeps
// the stage and one row of controls, and chat and people live in a drawer whose button counts
// unread messages. Screenshots go to ARTIFACTS.
//
// Run inside a network namespace with only loopback (.ci/run does this).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { ARTIFACTS, waitFor, launchChromium, startServer, releaseAfter, describeValue } from './harness.mjs';

const DESKTOP = { width: 1366, height: 768 };
const PHONE = { width: 390, height: 844 };

/**
 * Opens `url` in a new context of `viewport`; console lines are printed with `name`.
 * @param {import('playwright-core').Browser} browser
 */
async function open(browser, url, viewport, name) {
  const context = await browser.newContext({ viewport, hasTouch: viewport === PHONE });
  context.setDefaultTimeout(10_000);
  const page = await context.newPage();
  page.on('console', (m) => {
    if (m.type() !== 'log' || /^demo:|error/.test(m.text())) console.log(`[${name}] ${m.type()}: ${m.text()}`);
  });
  page.on('pageerror', (e) => console.log(`[${name}] pageerror: ${e.message}`));
  await page.goto(url, { timeout: 10_000 });
  await page.getByTestId('join-form').waitFor({ state: 'visible' });
  return page;
}

/** The element's box, asserted to lie inside the viewport (seen without scrolling). */
async function assertInView(page, testId, viewport, what) {
  const box = await page.getByTestId(testId).boundingBox();
  assert.ok(box, `${what}: ${testId} has a box`);
  assert.ok(box.x >= 0 && box.y >= 0 && box.x + box.width <= viewport.width + 0.5 && box.y + box.height <= viewport.height + 0.5,
    `${what}: ${testId} is in view without scrolling: ${describeValue(box)} in ${describeValue(viewport)}`);
  return box;
}

/** Waits until `page` is in the room and connected. */
function waitInRoom(page, who) {
  return waitFor(`${who} in the room`, 20_000, () =>
    page.evaluate(() => document.body.dataset.phase === 'room' && /** @type {any} */ (window).cascadeDemo.client?.connectionState === 'connected'),
  );
}

/** `identity`'s camera tile as `page` shows it: {cameraMuted, video} or null. */
function tileOf(page, identity) {
  return page.evaluate((identity) => {
    const el = /** @type {HTMLElement | null} */ (document.querySelector(`[data-testid="tile"][data-identity="${identity}"]`));
    return el ? { cameraMuted: el.dataset.cameraMuted, video: el.dataset.video } : null;
  }, identity);
}

test('an invite lands on the pre-join screen; a phone joins camera-off, with one row of controls and a chat drawer with an unread count', { timeout: 120_000 }, async (t) => {
  let server;
  let browser;
  releaseAfter(t, () => [browser, server]);
  server = await startServer({ defaultDevKey: true });
  browser = await launchChromium([], undefined, 10);
  mkdirSync(ARTIFACTS, { recursive: true });

  // The full form (no room in the link) fits a laptop screen, Join included.
  const host = await open(browser, `${server.base}/`, DESKTOP, 'host');
  assert.equal(await host.getByTestId('room-input').isVisible(), true, 'the full form asks for the room');
  await assertInView(host, 'join', DESKTOP, 'full form at 1366x768');
  await host.getByTestId('room-input').fill('standup');
  await host.getByTestId('name-input').fill('hana');
  await host.getByTestId('join').click();
  await waitInRoom(host, 'hana');
  const invite = await waitFor('the invite link', 5_000, () => host.getByTestId('invite').getAttribute('data-invite-url'));
  assert.equal(new URL(invite).searchParams.get('room'), 'standup');

  // The invite on a laptop: the short pre-join view.
  const guest = await open(browser, invite, DESKTOP, 'guest');
  assert.equal((await guest.getByTestId('join-title').textContent())?.trim(), 'Join standup');
  assert.equal(await guest.getByTestId('room-input').isVisible(), false, 'the room is given, not asked');
  assert.equal(await guest.getByTestId('mode').isVisible(), false, 'the mode is given, not asked');
  assert.equal(await guest.getByTestId('name-input').isVisible(), true);
  await assertInView(guest, 'join', DESKTOP, 'pre-join at 1366x768');
  await assertInView(guest, 'prejoin-camera', DESKTOP, 'pre-join at 1366x768');
  await assertInView(guest, 'prejoin-mic', DESKTOP, 'pre-join at 1366x768');
  await guest.waitForTimeout(500);
  await guest.screenshot({ path: join(ARTIFACTS, 'demo-prejoin.png') });
  // "Another room or mode" opens the full form.
  await guest.getByTestId('more-options').click();
  assert.equal(await guest.getByTestId('room-input').isVisible(), true, 'the full form after "Another room or mode"');
  assert.equal(await guest.getByTestId('room-input').inputValue(), 'standup');
  await guest.context().close();

  // The invite on a phone: join with the camera off.
  const phone = await open(browser, invite, PHONE, 'pat');
  assert.equal((await phone.getByTestId('join-title').textContent())?.trim(), 'Join standup');
  await assertInView(phone, 'join', PHONE, 'pre-join at 390x844');
  await phone.getByTestId('prejoin-camera').click();
  assert.equal(await phone.getByTestId('prejoin-camera').getAttribute('aria-pressed'), 'true');
  await waitFor('the preview to say the camera is off', 5_000, async () => (await phone.locator('#preview-note').textContent()) === 'Your camera is off' && (await phone.locator('#preview-note').isVisible()));
  await phone.screenshot({ path: join(ARTIFACTS, 'demo-prejoin-phone.png') });
  await phone.getByTestId('name-input').fill('pat');
  await phone.getByTestId('join').click();
  await waitInRoom(phone, 'pat');
  assert.equal(await phone.getByTestId('camera').getAttribute('data-muted'), 'true', "pat's camera button shows it off");
  await waitFor("hana to see pat's camera off", 10_000, async () => (await tileOf(host, 'pat'))?.cameraMuted === 'true');

  // The phone's room view: stage and one row of controls, the sidebar out of the way.
  await waitFor("pat to show hana's tile", 15_000, async () => (await tileOf(phone, 'hana')) !== null);
  await assertInView(phone, 'grid', PHONE, 'phone room');
  const controls = await phone.locator('[data-testid="controls"] .ctl').evaluateAll((els) =>
    els.filter((el) => el.getBoundingClientRect().width > 0).map((el) => {
      const r = el.getBoundingClientRect();
      return { id: el.id, top: Math.round(r.top), right: r.right };
    }),
  );
  assert.ok(controls.length >= 6, `controls: ${describeValue(controls)}`);
  assert.equal(new Set(controls.map((c) => c.top)).size, 1, `one row of controls: ${describeValue(controls)}`);
  assert.ok(controls.every((c) => c.right <= PHONE.width + 0.5), `the controls fit the width: ${describeValue(controls)}`);
  assert.ok(controls.some((c) => c.id === 'leave'), 'Leave is in the row');
  assert.equal(await phone.getByTestId('sidebar').isVisible(), false, 'chat and people are in a closed drawer');

  // Messages that arrive while the drawer is closed are counted on its button.
  for (const [i, text] of ['Morning! Starting in 2 minutes.', 'Agenda: demo, then questions.'].entries()) {
    await host.getByTestId('chat-input').fill(text);
    await host.getByTestId('chat-send').click();
    await waitFor(`pat's unread count to be ${i + 1}`, 5_000, async () =>
      (await phone.getByTestId('unread-badge').isVisible()) && (await phone.getByTestId('unread-badge').textContent()) === String(i + 1));
  }
  await phone.waitForTimeout(300);
  await phone.screenshot({ path: join(ARTIFACTS, 'demo-phone-call.png') });

  // Opening the drawer shows the messages below the Chat heading (nothing clipped) and clears the count.
  await phone.getByTestId('chat-toggle').click();
  await waitFor('the drawer to open', 5_000, () => phone.getByTestId('sidebar').isVisible());
  const first = await phone.getByTestId('chat-message').first().boundingBox();
  const heading = await phone.locator('.panel.chat h2').boundingBox();
  const peopleHeading = await phone.locator('.panel.people h2').boundingBox();
  assert.ok(first && heading && peopleHeading, 'message and headings have boxes');
  assert.ok(first.y >= heading.y + heading.height - 0.5, `the first message starts below the Chat heading: ${describeValue({ first, heading })}`);
  assert.ok(heading.y >= peopleHeading.y + peopleHeading.height, 'the Chat heading does not overlap the People heading');
  assert.ok(first.y + first.height <= PHONE.height, 'the first message is in view');
  assert.equal(await phone.getByTestId('unread-badge').isVisible(), false, 'opening the drawer clears the count');
  await phone.waitForTimeout(300);
  await phone.screenshot({ path: join(ARTIFACTS, 'demo-phone-chat.png') });
  await phone.getByTestId('drawer-close').click();
  await waitFor('the drawer to close', 5_000, async () => !(await phone.getByTestId('sidebar').isVisible()));

  // The camera can be turned on in the call.
  await phone.getByTestId('camera').click();
  await waitFor("hana to see pat's camera on", 10_000, async () => (await tileOf(host, 'pat'))?.cameraMuted === 'false');
});
