// The demo page and tokens: on a server with its own API secret the landing form says a token is
// required and how to get one; a token for another room is refused with a message that says so
// (the page does not silently join the token's room).
//
// Run inside a network namespace with only loopback (.ci/run does this).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { waitFor, launchChromium, startServer, releaseAfter, mintToken } from './harness.mjs';

/** Opens the demo's landing page for `room` in a fresh context. */
async function landing(browser, server, room) {
  const page = await (await browser.newContext()).newPage();
  page.on('console', (m) => console.log(`[page] ${m.type()}: ${m.text()}`));
  await page.goto(`${server.base}/?room=${room}&mode=conference`, { timeout: 10_000 });
  await page.getByTestId('join-form').waitFor({ state: 'visible', timeout: 5_000 });
  return page;
}

/** Clicks Join and returns the join error the form shows (at most 10 s). */
async function joinError(page) {
  await page.getByTestId('join').click();
  return waitFor('a join error', 10_000, async () => (await page.getByTestId('join-error').textContent())?.trim() || null);
}

test('with a real API secret the form says a token is required and how to get one', { timeout: 60_000 }, async (t) => {
  let server;
  let browser;
  releaseAfter(t, () => [browser, server]);
  server = await startServer({ extraEnv: { CASCADE_API_SECRET: 'an-operator-secret-of-at-least-32-bytes!' } });
  browser = await launchChromium();
  const page = await landing(browser, server, 'standup');
  const help = await waitFor('the token help', 5_000, async () => (await page.getByTestId('token-help').textContent())?.trim() || null);
  assert.match(help, /POST \/api\/tokens/);
  assert.match(help, /cascade token --room/);
  assert.equal(await page.locator('#advanced').evaluate((d) => /** @type {HTMLDetailsElement} */ (d).open), true, 'the token field is shown');
  assert.match(await page.locator('#token-label').textContent() ?? '', /required/);
  const error = await joinError(page);
  assert.match(error, /does not hand out development tokens/);
  assert.match(error, /room "standup"/);
  assert.match(error, /cascade token/);
});

test('a token for another room is refused visibly, not joined', { timeout: 60_000 }, async (t) => {
  let server;
  let browser;
  releaseAfter(t, () => [browser, server]);
  server = await startServer({ defaultDevKey: true });
  browser = await launchChromium();
  const alphaToken = await mintToken(server, 'alpha', 'mallory');
  const page = await landing(browser, server, 'beta');
  assert.equal((await page.getByTestId('token-help').textContent())?.trim(), '', 'no token help on a development server');
  await page.locator('#advanced summary').click();
  await page.getByTestId('token-input').fill(alphaToken);
  const error = await joinError(page);
  assert.match(error, /cannot join room "beta"/);
  assert.match(error, /alpha/);
  const phase = await page.evaluate(() => document.body.dataset.phase);
  assert.equal(phase, 'landing', 'the page stays on the form');
  const status = await page.locator('[data-testid="status"] .status-text').textContent();
  assert.equal(status, 'not connected', 'a page that never joined does not say "left"');
  const info = await fetch(`${server.base}/api/info`).then((r) => r.json());
  assert.equal(info.dev_tokens, true);
});
