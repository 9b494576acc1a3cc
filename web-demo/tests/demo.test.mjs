// End-to-end tests of the demo page (index.html + demo.js + cascade-client.js) in real Chromium
// against a real `cascade` server: a 3-party conference, a broadcast to 5 viewers, mute, leave,
// reconnect after a dropped WebSocket, chat, and the time to the first remote frame.
//
// Run inside a network namespace with only loopback:
//   unshare -n bash -c 'ip link set lo up; cd web-demo && node --test tests/demo.test.mjs'
// Environment:
//   CASCADE_BIN  server binary (default ../target/release/cascade; it embeds web-demo/, so
//                rebuild it after editing the page, or set DEMO_FROM_DISK=1)
//   CHROMIUM     browser (default /usr/bin/chromium)
//   DEMO_FROM_DISK=1  serve the page's .html/.js/.css from web-demo/ on disk instead of the
//                copies embedded in the binary (the server still answers /ws and /api);
//                DEMO_FROM_DISK=<dir> serves them from <dir>
//   DEMO_TRACE_SDP=1  log signaling SDP summaries and peer connection events in the page consoles
//   ARTIFACTS    screenshot directory (default <repo>/artifacts)
//
// The server runs with its default embedded development key, so the page can fetch its own
// tokens from GET /api/dev/token. One server and one browser serve every test; each participant
// has its own browser context (own fake camera and microphone).

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ROOT, ARTIFACTS, sleep, waitFor, describeValue, startServer, stopServer, launchChromium, dumpServerOutput } from './harness.mjs';

const FROM_DISK = Boolean(process.env.DEMO_FROM_DISK);
const ASSETS_DIR = FROM_DISK && process.env.DEMO_FROM_DISK !== '1' ? resolve(process.env.DEMO_FROM_DISK) : join(ROOT, 'web-demo');
const MEDIA_TIMEOUT_MS = 20_000;
/** A phone's viewport. */
const PHONE = { width: 390, height: 844 };

/** Runs `promise` but gives up after `ms` (for best-effort calls such as diagnostics). */
function within(ms, promise, fallback = 'no answer') {
  return Promise.race([promise, sleep(ms).then(() => fallback)]);
}

// ---- shared fixtures ------------------------------------------------------------------------

/** @type {import('./harness.mjs').Server | null} */
let server = null;
/** @type {import('playwright-core').Browser | null} */
let browser = null;
/** Every participant opened so far (for diagnostics and cleanup). */
const participants = [];
/** How much of the server output has been printed already. */
let serverDumped = 0;
/** Time to first remote frame of each joiner, for the summary. */
const ttffs = [];

/** Prints what helps to understand a failure: page consoles and state, server output. */
async function dumpDiagnostics(title) {
  console.error(`\n===== diagnostics: ${title} =====`);
  for (const p of participants) {
    // Each line once: later dumps show only what was logged since.
    const fresh = p.logs.slice(p.dumped ?? 0);
    p.dumped = p.logs.length;
    if (p.closed && !fresh.length) continue;
    console.error(`--- ${p.name} (room ${p.room}, ${p.mode})${p.closed ? ' [closed]' : ''} console${p.dumped > fresh.length ? ' (new lines)' : ''} ---`);
    console.error(fresh.slice(-300).join('\n') || '(empty)');
    if (!p.closed) {
      const state = await within(2000, pageSummary(p.page).catch((e) => `error: ${e.message}`));
      console.error(`--- ${p.name} page state: ${describeValue(state)}`);
    }
  }
  serverDumped = dumpServerOutput(server, { title: 'server output (tail, new lines)', from: serverDumped, tailLines: 400 });
  console.error(`===== end of diagnostics: ${title} =====\n`);
}

/** Wraps a test body: on failure, dumps diagnostics before rethrowing. */
function withDiagnostics(title, fn) {
  return async (t) => {
    try {
      await fn(t);
    } catch (e) {
      await dumpDiagnostics(title);
      throw e;
    }
  };
}

// ---- in-page probes -------------------------------------------------------------------------
// These run inside the page (page.evaluate); they use only the agreed hooks:
// window.cascadeDemo = {client, state}, data-testid attributes and the tiles' data-* attributes.

/** Installed before any page script: join-click timing and a first-remote-frame probe. */
function initScript({ traceSdp }) {
  const w = /** @type {any} */ (window);
  w.__demoTraceSdp = traceSdp;
  w.__demoTest = { clickAt: null, firstFrameAt: null, statusHistory: [], sockets: [] };
  if (w.__demoTraceSdp) {
    // DEMO_TRACE_SDP=1: log every peer connection's state changes and gathered candidates.
    const NativePc = window.RTCPeerConnection;
    let n = 0;
    window.RTCPeerConnection = class extends NativePc {
      constructor(...args) {
        super(...args);
        const id = ++n;
        const log = (what) => console.log(`pc#${id} ${what}`);
        log(`created ${JSON.stringify(args[0] ?? {})}`);
        for (const ev of ['signalingstatechange', 'icegatheringstatechange', 'iceconnectionstatechange', 'connectionstatechange']) {
          this.addEventListener(ev, () =>
            log(`${ev.replace('statechange', '')}=${{ signalingstatechange: this.signalingState, icegatheringstatechange: this.iceGatheringState, iceconnectionstatechange: this.iceConnectionState, connectionstatechange: this.connectionState }[ev]}`),
          );
        }
        this.addEventListener('icecandidate', (e) => log(`candidate ${e.candidate?.candidate || '(end)'}`));
        this.addEventListener('icecandidateerror', (e) => log(`candidate error ${e.errorCode} ${e.errorText}`));
      }
    };
  }
  // Remember the page's WebSockets so a test can drop the signaling connection (the client keeps
  // its socket private). Behaves exactly like the native WebSocket otherwise.
  const NativeWebSocket = window.WebSocket;
  window.WebSocket = class extends NativeWebSocket {
    constructor(...args) {
      super(...args);
      w.__demoTest.sockets.push(this);
      if (w.__demoTraceSdp) {
        // DEMO_TRACE_SDP=1: log the DTLS setup, direction and mid lines of every offer/answer.
        const brief = (dir, data) => {
          try {
            const m = JSON.parse(data);
            if (m.sdp) console.log(`sdp ${dir} ${m.type}: ${m.sdp.split('\r\n').filter((l) => /^a=(setup|mid|sendonly|recvonly|sendrecv|inactive|candidate|ice-ufrag|group|ice-lite)|^m=/.test(l)).join(' | ')}`);
            else if (m.type === 'error') console.log(`sdp ${dir} error: ${data}`);
          } catch {}
        };
        this.addEventListener('message', (ev) => brief('<-', ev.data));
        const send = this.send.bind(this);
        this.send = (data) => (brief('->', data), send(data));
      }
    }
  };
  // Time to first remote frame: from the join click to the first decoded remote video frame.
  document.addEventListener(
    'click',
    (ev) => {
      const el = /** @type {Element} */ (ev.target);
      if (!el?.closest?.('[data-testid="join"]') || w.__demoTest.clickAt !== null) return;
      w.__demoTest.clickAt = performance.now();
      const timer = setInterval(async () => {
        const pc = w.cascadeDemo?.client?.pc;
        if (!pc || w.__demoTest.firstFrameAt !== null) return;
        try {
          const stats = await pc.getStats();
          stats.forEach((s) => {
            if (s.type === 'inbound-rtp' && s.kind === 'video' && (s.framesDecoded ?? 0) > 0 && w.__demoTest.firstFrameAt === null) {
              w.__demoTest.firstFrameAt = performance.now();
              clearInterval(timer);
            }
          });
        } catch {
          // pc closed meanwhile (reconnect): try again
        }
      }, 20);
      setTimeout(() => clearInterval(timer), 60_000);
    },
    true,
  );
}

/** Summary of the page for diagnostics. */
function pageSummary(page) {
  return page.evaluate(async () => {
    const w = /** @type {any} */ (window);
    const c = w.cascadeDemo?.client;
    /** Transport-level view: candidates and pairs, to tell ICE from DTLS from media problems. */
    const transport = { localCandidates: [], remoteCandidates: [], pairs: [], dtls: [] };
    try {
      (await c?.pc?.getStats())?.forEach((s) => {
        if (s.type === 'local-candidate') transport.localCandidates.push(`${s.address}:${s.port}/${s.protocol} ${s.candidateType}`);
        else if (s.type === 'remote-candidate') transport.remoteCandidates.push(`${s.address}:${s.port}/${s.protocol}`);
        else if (s.type === 'candidate-pair') transport.pairs.push(`${s.state}${s.nominated ? ' nominated' : ''} sent=${s.requestsSent ?? 0} resp=${s.responsesReceived ?? 0}`);
        else if (s.type === 'transport') transport.dtls.push(`${s.dtlsState} ice=${s.iceState ?? ''} role=${s.iceRole ?? ''}`);
      });
    } catch (e) {
      transport.error = String(e);
    }
    const status = document.querySelector('[data-testid="status"]');
    return {
      phase: document.body.dataset.phase,
      status: status ? { state: /** @type {HTMLElement} */ (status).dataset.state, text: status.textContent?.trim() } : null,
      self: c?.participant ?? null,
      connectionState: c?.connectionState,
      pc: c?.pc
        ? { connection: c.pc.connectionState, signaling: c.pc.signalingState, ice: c.pc.iceConnectionState, gathering: c.pc.iceGatheringState, transport }
        : null,
      localTracks: c?.localTracks?.map((l) => ({ kind: l.track.kind, trackId: l.trackId, muted: l.muted })),
      tiles: [...document.querySelectorAll('[data-testid="tile"]')].map((t) => ({ ...(/** @type {HTMLElement} */ (t).dataset) })),
      joinError: document.querySelector('[data-testid="join-error"]')?.textContent,
      demoState: (() => {
        try {
          return JSON.parse(JSON.stringify(w.cascadeDemo?.state ?? null, (k, v) => (v instanceof Map ? Object.fromEntries(v) : typeof v === 'object' && v && v.constructor && !['Object', 'Array'].includes(v.constructor.name) ? `[${v.constructor.name}]` : v)));
        } catch (e) {
          return String(e);
        }
      })(),
    };
  });
}

/** Our own participant id, or null before joining. */
function selfId(page) {
  return page.evaluate(() => /** @type {any} */ (window).cascadeDemo?.client?.participant?.id ?? null);
}

/** The video tiles of other participants, as {participant, identity, muted, visible}. */
function remoteTiles(page) {
  return page.evaluate(() => {
    const self = /** @type {any} */ (window).cascadeDemo?.client?.participant?.id;
    return [...document.querySelectorAll('[data-testid="tile"]')]
      .map((t) => /** @type {HTMLElement} */ (t))
      .filter((t) => t.dataset.participant && t.dataset.participant !== self && t.dataset.local !== 'true')
      .map((t) => ({
        participant: t.dataset.participant,
        identity: t.dataset.identity,
        muted: t.dataset.muted,
        cameraMuted: t.dataset.cameraMuted,
        visible: t.checkVisibility ? t.checkVisibility() : t.offsetParent !== null,
      }));
  });
}

/**
 * The stage (the grid's padding box) and every tile's box on a page, with whether it is a screen.
 * @param {import('playwright-core').Page} page
 */
function tileBoxes(page) {
  return page.evaluate(() => {
    const grid = /** @type {HTMLElement} */ (document.querySelector('[data-testid="grid"]'));
    const g = grid.getBoundingClientRect();
    const style = getComputedStyle(grid);
    const stage = {
      x: g.x + parseFloat(style.paddingLeft),
      y: g.y + parseFloat(style.paddingTop),
      w: grid.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight),
      h: grid.clientHeight - parseFloat(style.paddingTop) - parseFloat(style.paddingBottom),
    };
    const tiles = [...grid.querySelectorAll('.tile')].map((t) => {
      const r = t.getBoundingClientRect();
      return { x: r.x, y: r.y, w: r.width, h: r.height, screen: t.classList.contains('screen'), participant: /** @type {HTMLElement} */ (t).dataset.participant };
    });
    return { stage, tiles };
  });
}

/** @param {{x: number, y: number, w: number, h: number}} a @param {{x: number, y: number, w: number, h: number}} b */
const boxesOverlap = (a, b) => a.x < b.x + b.w - 1 && b.x < a.x + a.w - 1 && a.y < b.y + b.h - 1 && b.y < a.y + a.h - 1;

/**
 * Per remote participant: video framesDecoded and audio packetsReceived, from the receivers the
 * client maps to that participant (`client.receiversOf`), with pc.getStats() as a fallback.
 */
function mediaStats(page) {
  return page.evaluate(async () => {
    const c = /** @type {any} */ (window).cascadeDemo?.client;
    const pc = c?.pc;
    if (!pc) return null;
    /** @type {Record<string, {video: number, audio: number, videoPackets: number}>} */
    const out = {};
    const ids = new Set([...(c.participants?.keys?.() ?? [])]);
    for (const t of document.querySelectorAll('[data-testid="tile"]')) {
      const id = /** @type {HTMLElement} */ (t).dataset.participant;
      if (id && id !== c.participant?.id) ids.add(id);
    }
    for (const id of ids) {
      const entry = (out[id] = { video: 0, audio: 0, videoPackets: 0 });
      for (const { receiver } of c.receiversOf(id)) {
        (await receiver.getStats()).forEach((s) => {
          if (s.type !== 'inbound-rtp') return;
          if (s.kind === 'video') {
            entry.video += s.framesDecoded ?? 0;
            entry.videoPackets += s.packetsReceived ?? 0;
          } else if (s.kind === 'audio') entry.audio += s.packetsReceived ?? 0;
        });
      }
    }
    return out;
  });
}

/**
 * Init script: getUserMedia captures only a camera of `width` x 3/4 `width`, whatever the page
 * asks for (no microphone).
 * @param {number} width
 */
function smallCameraOnly(width) {
  const md = navigator.mediaDevices;
  const original = md.getUserMedia.bind(md);
  md.getUserMedia = (c) => original(c?.video ? { video: { width: { exact: width }, height: { exact: (width * 3) / 4 } } } : c);
}

// ---- participants ---------------------------------------------------------------------------

/**
 * Opens the demo page in a new browser context and joins `room` as `name` in `mode` through the
 * landing form (`?room=…&mode=…` preselects room and mode; the test still types the name).
 * `in`: the browser (default: the suite's). `cameraWidth`: capture only a camera, at this width
 * (4:3) instead of the demo's 1280x720, and no microphone, to spare a small machine's CPU. `viewport`: default a
 * 1280x720 desktop.
 */
async function openParticipant(name, room, mode, { join: doJoin = true, in: inBrowser = browser, cameraWidth = 0, viewport = { width: 1280, height: 720 } } = {}) {
  const context = await inBrowser.newContext({ viewport });
  context.setDefaultTimeout(10_000);
  if (FROM_DISK) {
    await context.route(
      (url) => url.origin === server.base && (url.pathname === '/' || /\.(html|js|css)$/.test(url.pathname)),
      (route) => {
        const path = new URL(route.request().url()).pathname;
        return route.fulfill({ path: join(ASSETS_DIR, path === '/' ? 'index.html' : path) });
      },
    );
  }
  await context.addInitScript(initScript, { traceSdp: process.env.DEMO_TRACE_SDP === '1' });
  if (cameraWidth) await context.addInitScript(smallCameraOnly, cameraWidth);
  const page = await context.newPage();
  const p = { name, room, mode, context, page, logs: [], closed: false };
  participants.push(p);
  const tag = (line) => p.logs.push(`[${name} ${new Date().toISOString().slice(11, 23)}] ${line}`);
  page.on('console', (m) => tag(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => tag(`pageerror: ${e.message}`));
  page.on('requestfailed', (r) => tag(`requestfailed: ${r.url()} ${r.failure()?.errorText}`));
  page.on('websocket', (ws) => {
    tag(`websocket open ${ws.url()}`);
    ws.on('close', () => tag('websocket closed'));
  });
  await page.goto(`${server.base}/?room=${encodeURIComponent(room)}&mode=${mode}`, { timeout: 10_000 });
  if (doJoin) await joinFromForm(p);
  return p;
}

async function joinFromForm(p) {
  const { page, room, mode, name } = p;
  await page.getByTestId('join-form').waitFor({ state: 'visible', timeout: 5_000 });
  assert.equal(await page.getByTestId('room-input').inputValue(), room, '?room= prefills the room');
  assert.equal(await page.getByTestId(`mode-${mode}`).isChecked(), true, `?mode=${mode} preselects the mode`);
  await page.getByTestId('name-input').fill(name);
  await page.getByTestId('join').click();
  await waitFor(`${name} to join ${room}`, 30_000, async () => {
    const s = await page.evaluate(() => {
      const w = /** @type {any} */ (window);
      return {
        id: w.cascadeDemo?.client?.participant?.id ?? null,
        state: w.cascadeDemo?.client?.connectionState,
        error: document.querySelector('[data-testid="join-error"]')?.textContent?.trim() || null,
      };
    });
    if (s.error) throw new Error(`join error shown: ${s.error}`);
    return s.id && s.state === 'connected' ? s : null;
  });
}

/** Waits until the participant's microphone and camera tracks are published (have track ids). */
async function waitPublished(p, kinds = ['audio', 'video'], timeoutMs = 15_000) {
  await waitFor(`${p.name}'s ${kinds.join(' and ')} to be published`, timeoutMs, () =>
    p.page.evaluate((kinds) => {
      const locals = /** @type {any} */ (window).cascadeDemo?.client?.localTracks ?? [];
      return kinds.every((k) => locals.some((l) => l.track.kind === k && l.trackId)) ? locals.map((l) => l.trackId) : null;
    }, kinds),
  );
}

/** Waits for `p`'s first decoded remote frame and records/prints its TTFF. */
async function recordTtff(p, label) {
  const ms = await waitFor(`${p.name}'s first decoded remote frame`, MEDIA_TIMEOUT_MS, () =>
    p.page.evaluate(() => {
      const d = /** @type {any} */ (window).__demoTest;
      return d.clickAt !== null && d.firstFrameAt !== null ? Math.round(d.firstFrameAt - d.clickAt) : null;
    }),
  );
  ttffs.push({ name: p.name, label, ms });
  console.log(`TTFF_MS ${ms} (${label}: ${p.name}, join click to first decoded remote video frame)`);
  return ms;
}

/**
 * Saves a screenshot of `page` as a phone shows it (390x844), then gives the page its size back.
 * @param {import('playwright-core').Page} page
 * @param {string} file
 */
async function phoneScreenshot(page, file) {
  const size = page.viewportSize();
  await page.setViewportSize(PHONE);
  await page.waitForTimeout(500);
  await page.screenshot({ path: join(ARTIFACTS, file), timeout: 10_000 });
  if (size) await page.setViewportSize(size);
}

async function closeParticipant(p) {
  if (p.closed) return;
  p.closed = true;
  await within(5000, p.context.close().catch(() => {}));
}

/**
 * Waits until `viewer` decodes video (and, with `audio`, receives audio) from each participant id
 * in `from`, then until all of those counters grow; returns both samples.
 */
async function expectMediaFlowing(viewer, from, { audio = true, timeoutMs = MEDIA_TIMEOUT_MS } = {}) {
  const ok = (s, id) => s?.[id] && s[id].video > 0 && (!audio || s[id].audio > 0);
  const first = await waitFor(`${viewer.name} to decode media from ${from.join(', ')}`, timeoutMs, async () => {
    const s = await mediaStats(viewer.page);
    return from.every((id) => ok(s, id)) ? s : null;
  });
  await sleep(500);
  const second = await waitFor(`${viewer.name}'s media counters from ${from.join(', ')} to grow`, 5_000, async () => {
    const s = await mediaStats(viewer.page);
    return from.every((id) => ok(s, id) && s[id].video > first[id].video && (!audio || s[id].audio > first[id].audio)) ? s : null;
  });
  return { first, second };
}

// ---- tests ----------------------------------------------------------------------------------

/** The server's --public-url: invite links must point there, not at 127.0.0.1 (never contacted). */
const PUBLIC_URL = 'https://cascade.invalid:8443';

describe('demo page', { timeout: 300_000 }, () => {
  before(async () => {
    // The page mints its own tokens through /api/dev/token, which exists only with the default
    // development key and secret: make sure none is configured.
    server = await startServer({ defaultDevKey: true, publicUrl: PUBLIC_URL });
    const res = await fetch(`${server.base}/api/dev/token?room=probe&identity=probe`, { signal: AbortSignal.timeout(2000) });
    assert.equal(res.status, 200, 'the dev token endpoint answers (server must run with the default dev key)');
    // With DEMO_FROM_DISK the page comes from Playwright (no server address): Local Network Access
    // would then block its WebSocket to 127.0.0.1.
    browser = await launchChromium(FROM_DISK ? ['LocalNetworkAccessChecks'] : []);
  });

  after(async () => {
    for (const p of participants) await closeParticipant(p);
    await within(10_000, browser?.close().catch(() => {}));
    await stopServer(server);
    if (ttffs.length) {
      const all = ttffs.map((x) => x.ms);
      console.log(
        `TTFF summary: n=${all.length} min=${Math.min(...all)} median=${all.sort((a, b) => a - b)[Math.floor(all.length / 2)]} max=${Math.max(...all)} ms`,
      );
    }
  });

  /** The 3-party conference shared by the conference, mute, chat, reconnect and leave tests. */
  // Each run starts a fresh server, so fixed room names do not collide (and read well in the
  // screenshot).
  const conf = { room: 'design-review', people: /** @type {any[]} */ ([]) };
  const byName = (n) => conf.people.find((p) => p.name === n);
  const requireConference = () => assert.equal(conf.people.length, 3, 'the conference test set up the 3-party room');

  test('conference: 3 participants each see and hear the 2 others', { timeout: 90_000 }, withDiagnostics('conference', async () => {
    const alice = await openParticipant('alice', conf.room, 'conference');
    await waitPublished(alice);
    const bob = await openParticipant('bob', conf.room, 'conference');
    await waitPublished(bob);
    await recordTtff(bob, 'conference, 1 publisher present');
    const carol = await openParticipant('carol', conf.room, 'conference');
    await waitPublished(carol);
    await recordTtff(carol, 'conference, 2 publishers present');
    const people = [alice, bob, carol];
    const ids = Object.fromEntries(await Promise.all(people.map(async (p) => [p.name, await selfId(p.page)])));

    for (const p of people) {
      const others = people.filter((o) => o !== p);
      const tiles = await waitFor(`${p.name} to show 2 remote tiles`, 10_000, async () => {
        const t = await remoteTiles(p.page);
        return t.length === 2 && t.every((x) => x.visible) ? t : null;
      });
      assert.deepEqual(
        tiles.map((t) => t.participant).sort(),
        others.map((o) => ids[o.name]).sort(),
        `${p.name}'s remote tiles are the other two participants`,
      );
      assert.deepEqual(tiles.map((t) => t.identity).sort(), others.map((o) => o.name).sort(), `${p.name}'s tiles carry identities`);
    }
    await Promise.all(
      people.map(async (p) => {
        const { first, second } = await expectMediaFlowing(p, people.filter((o) => o !== p).map((o) => ids[o.name]));
        console.log(`${p.name} receives: ${describeValue(first)} then ${describeValue(second)}`);
      }),
    );
    conf.people = people;
    const invite = await alice.page.evaluate(() => document.querySelector('[data-testid="invite"]')?.getAttribute('data-invite-url'));
    if (!FROM_DISK) assert.equal(invite, `${PUBLIC_URL}/?room=${conf.room}&mode=conference`, 'the invite link uses --public-url');

    // Screenshot of the 3-person room for the README (let the videos render a moment).
    mkdirSync(ARTIFACTS, { recursive: true });
    await carol.page.waitForTimeout(500);
    const shot = join(ARTIFACTS, 'demo-3-party.png');
    await carol.page.screenshot({ path: shot, timeout: 10_000 });
    console.log(`screenshot: ${shot}`);
  }));

  test('mute: the others see camera and microphone mutes within 2 s; unmute resumes frames', { timeout: 30_000 }, withDiagnostics('mute', async () => {
    requireConference();
    const [alice, bob, carol] = ['alice', 'bob', 'carol'].map(byName);
    const aliceId = await selfId(alice.page);
    const tileOf = async (p) => (await remoteTiles(p.page)).find((t) => t.participant === aliceId);
    for (const p of [bob, carol]) {
      const tile = await tileOf(p);
      assert.equal(tile?.muted, 'false', `${p.name} shows alice's microphone unmuted at first`);
      assert.equal(tile?.cameraMuted, 'false', `${p.name} shows alice's camera on at first`);
    }
    /** Clicks `control` on alice's page and waits until bob and carol show `attr` = `value`. */
    const toggleAndSee = async (control, attr, value) => {
      await alice.page.getByTestId(control).click();
      const t0 = Date.now();
      await Promise.all(
        [bob, carol].map((p) =>
          waitFor(`${p.name} to show alice's ${control} ${attr}=${value}`, 2_000, async () => (await tileOf(p))?.[attr] === value, 50),
        ),
      );
      console.log(`alice ${control} -> ${attr}=${value} visible at bob and carol after ${Date.now() - t0} ms`);
    };
    // The tile's data-muted is the microphone state, data-camera-muted the camera state.
    await toggleAndSee('camera', 'cameraMuted', 'true');
    assert.equal((await tileOf(bob))?.muted, 'false', 'muting the camera leaves the microphone state alone');
    await toggleAndSee('camera', 'cameraMuted', 'false');
    // Frames keep being decoded after turning the camera back on.
    await Promise.all([bob, carol].map((p) => expectMediaFlowing(p, [aliceId], { audio: false, timeoutMs: 5_000 })));

    await toggleAndSee('mic', 'muted', 'true');
    await toggleAndSee('mic', 'muted', 'false');
    await Promise.all([bob, carol].map((p) => expectMediaFlowing(p, [aliceId], { timeoutMs: 5_000 })));
  }));

  test('chat: a message reaches the other pages of the room, not another room', { timeout: 30_000 }, withDiagnostics('chat', async () => {
    requireConference();
    const [alice, bob, carol] = ['alice', 'bob', 'carol'].map(byName);
    const outsider = await openParticipant('dave', 'another-room', 'conference');
    try {
      const text = 'Good morning! Agenda: the demo first, then questions.';
      await alice.page.getByTestId('chat-input').fill(text);
      await alice.page.getByTestId('chat-send').click();
      const shows = (p) => p.page.getByTestId('chat-messages').textContent({ timeout: 2_000 }).then((t) => (t ?? '').includes(text));
      await Promise.all([bob, carol].map((p) => waitFor(`${p.name} to show alice's message`, 3_000, () => shows(p))));
      // A livelier screenshot for the README: the same 3-person room with a chat message.
      await carol.page.screenshot({ path: join(ARTIFACTS, 'demo-3-party.png'), timeout: 10_000 });
      await phoneScreenshot(carol.page, 'demo-phone-3-party.png');
      // The sender's message is relayed to the others of the room only; give a stray copy time to arrive.
      await sleep(1000);
      assert.equal(await shows(outsider), false, 'a page in another room does not show the message');
    } finally {
      await closeParticipant(outsider);
    }
  }));

  test('reconnect: a page whose WebSocket drops shows reconnecting and resumes as the same participant; the others see no leave or join', { timeout: 40_000 }, withDiagnostics('reconnect', async () => {
    requireConference();
    const [alice, bob] = ['alice', 'bob'].map(byName);
    const oldId = await selfId(bob.page);
    // Record every state the status indicator goes through.
    await bob.page.evaluate(() => {
      const d = /** @type {any} */ (window).__demoTest;
      const el = /** @type {HTMLElement} */ (document.querySelector('[data-testid="status"]'));
      d.statusHistory = [el.dataset.state];
      new MutationObserver(() => d.statusHistory.push(`${el.dataset.state}:${el.textContent?.trim()}`)).observe(el, {
        attributes: true,
        childList: true,
        characterData: true,
        subtree: true,
      });
      const banner = /** @type {HTMLElement} */ (document.querySelector('[data-testid="connection-banner"]'));
      d.bannerShown = [];
      new MutationObserver(() => !banner.hidden && d.bannerShown.push(banner.textContent)).observe(banner, { attributes: true, childList: true });
    });
    // Record what alice hears of bob's comings and goings.
    await alice.page.evaluate((id) => {
      const w = /** @type {any} */ (window);
      w.__demoTest.bobEvents = [];
      for (const type of ['participant_left', 'participant_joined']) {
        w.cascadeDemo.client.addEventListener(type, (/** @type {any} */ ev) => {
          const who = ev.detail.participantId ?? ev.detail.participant?.id;
          if (who === id) w.__demoTest.bobEvents.push(type);
        });
      }
    }, oldId);
    // Close the open signaling socket recorded by the init script (as a proxy or network would).
    const cut = await bob.page.evaluate(() => {
      const open = /** @type {any} */ (window).__demoTest.sockets.filter((ws) => ws.readyState === WebSocket.OPEN && /\/ws$/.test(ws.url));
      if (open.length !== 1) return false;
      open[0].close();
      return true;
    });
    assert.ok(cut, 'bob has one open signaling socket to drop');
    await waitFor("bob's status to show reconnecting", 3_000, () =>
      bob.page.evaluate(() => /** @type {any} */ (window).__demoTest.statusHistory.some((s) => /^reconnecting/.test(s))),
    50);
    await waitFor('bob to resume', 15_000, async () => {
      const s = await bob.page.evaluate(() => {
        const c = /** @type {any} */ (window).cascadeDemo?.client;
        const el = /** @type {HTMLElement} */ (document.querySelector('[data-testid="status"]'));
        const open = /** @type {any} */ (window).__demoTest.sockets.filter((ws) => ws.readyState === WebSocket.OPEN);
        return { id: c?.participant?.id, state: c?.connectionState, status: el?.dataset.state, sockets: open.length };
      });
      return s.state === 'connected' && s.status === 'connected' && s.sockets === 1 ? s : null;
    });
    assert.equal(await selfId(bob.page), oldId, 'bob is the same participant');
    const history = await bob.page.evaluate(() => /** @type {any} */ (window).__demoTest.statusHistory);
    console.log(`bob's status went through: ${history.join(' -> ')}`);
    const banner = await bob.page.evaluate(() => /** @type {any} */ (window).__demoTest.bannerShown);
    assert.ok(banner.some((t) => /Connection to the server lost/.test(t)), `the stage said the connection was lost: ${describeValue(banner)}`);
    assert.equal(await bob.page.getByTestId('connection-banner').isVisible(), false, 'the banner is gone once resumed');
    const aliceId = await selfId(alice.page);
    await expectMediaFlowing(bob, [aliceId]);
    await expectMediaFlowing(alice, [oldId], { audio: false });
    assert.ok((await remoteTiles(alice.page)).some((t) => t.participant === oldId && t.identity === 'bob'), "alice still shows bob's tile");
    const heard = await alice.page.evaluate(() => /** @type {any} */ (window).__demoTest.bobEvents);
    assert.deepEqual(heard, [], 'alice saw bob neither leave nor join');
  }));

  test('leave: a leaving participant\'s tile disappears from the others within 2 s', { timeout: 20_000 }, withDiagnostics('leave', async () => {
    requireConference();
    const [alice, bob, carol] = ['alice', 'bob', 'carol'].map(byName);
    const carolId = await selfId(carol.page);
    for (const p of [alice, bob]) {
      assert.ok((await remoteTiles(p.page)).some((t) => t.participant === carolId), `${p.name} shows carol before she leaves`);
    }
    await carol.page.getByTestId('leave').click();
    const t0 = Date.now();
    await waitFor('alice to be told that carol left', 2_000, async () => /carol left/.test((await alice.page.getByTestId('toast').textContent()) ?? ''), 50);
    await Promise.all(
      [alice, bob].map((p) =>
        waitFor(`carol's tile to disappear from ${p.name}`, 2_000, async () => !(await remoteTiles(p.page)).some((t) => t.identity === 'carol'), 50),
      ),
    );
    console.log(`carol's tile gone from alice and bob after ${Date.now() - t0} ms`);
    for (const p of conf.people) await closeParticipant(p);
  }));

  test('layout: 6 people fill the stage (desktop and phone); a shared screen takes it, cameras beside it', { timeout: 150_000 }, withDiagnostics('layout', async () => {
    const room = 'all-hands';
    const people = [];
    // Six pages each encode a camera and decode five: at the fake camera's default 720p and 20 fps,
    // with sound, that saturates a 2-core CI machine, and the last joiner's negotiation crawls.
    // The layout depends on neither the frame rate, nor the size, nor the sound.
    const calm = await launchChromium(FROM_DISK ? ['LocalNetworkAccessChecks'] : [], undefined, 5);
    try {
      await sixPeopleAndAScreen(room, people, calm);
    } finally {
      for (const p of people) await closeParticipant(p);
      await within(10_000, calm.close().catch(() => {}));
    }
  }));

  /**
   * The layout test's body: 6 participants of `room` (pushed to `people`), then a shared screen.
   * @param {string} room
   * @param {any[]} people
   * @param {import('playwright-core').Browser} inBrowser
   */
  async function sixPeopleAndAScreen(room, people, inBrowser) {
    // fay is on a phone.
    for (const name of ['ana', 'ben', 'cho', 'dev', 'eli', 'fay']) {
      const t0 = Date.now();
      const viewport = name === 'fay' ? PHONE : undefined;
      const p = await openParticipant(name, room, 'conference', { in: inBrowser, cameraWidth: 320, viewport });
      people.push(p);
      await waitPublished(p, ['video'], 45_000);
      console.log(`${name} joined and published in ${Date.now() - t0} ms`);
    }
    const [ana, ben] = people;
    const grid = await waitFor('ana to show 6 tiles', 20_000, async () => {
      const b = await tileBoxes(ana.page);
      return b.tiles.length === 6 && b.tiles.every((t) => t.w > 0) ? b : null;
    });
    const filled = grid.tiles.reduce((sum, t) => sum + t.w * t.h, 0) / (grid.stage.w * grid.stage.h);
    console.log(`6 tiles fill ${(filled * 100).toFixed(0)} % of a ${Math.round(grid.stage.w)}x${Math.round(grid.stage.h)} stage`);
    assert.ok(filled >= 0.7, `6 tiles fill ${(filled * 100).toFixed(0)} % of the stage, want >= 70 %`);
    for (const [i, a] of grid.tiles.entries()) {
      for (const b of grid.tiles.slice(i + 1)) assert.ok(!boxesOverlap(a, b), `tiles overlap: ${describeValue([a, b])}`);
    }
    mkdirSync(ARTIFACTS, { recursive: true });
    await ana.page.waitForTimeout(500);
    await ana.page.screenshot({ path: join(ARTIFACTS, 'demo-6-party.png'), timeout: 10_000 });

    // On the phone all six tiles fit the stage (two columns), none overlapping.
    const fay = people[5];
    const phone = await waitFor('fay (phone) to show 6 tiles', 20_000, async () => {
      const b = await tileBoxes(fay.page);
      return b.tiles.length === 6 && b.tiles.every((t) => t.w > 0) ? b : null;
    });
    const { stage } = phone;
    for (const t of phone.tiles) {
      assert.ok(t.x >= stage.x - 0.5 && t.y >= stage.y - 0.5 && t.x + t.w <= stage.x + stage.w + 0.5 && t.y + t.h <= stage.y + stage.h + 0.5,
        `a tile outside the phone's stage: ${describeValue({ t, stage })}`);
    }
    assert.ok(stage.y + stage.h <= PHONE.height, "the phone's stage is in view");
    for (const [i, a] of phone.tiles.entries()) {
      for (const b of phone.tiles.slice(i + 1)) assert.ok(!boxesOverlap(a, b), `tiles overlap on the phone: ${describeValue([a, b])}`);
    }
    assert.equal(new Set(phone.tiles.map((t) => Math.round(t.x))).size, 2, 'two columns on the phone');
    await fay.page.screenshot({ path: join(ARTIFACTS, 'demo-phone-6-party.png'), timeout: 10_000 });

    // Ben shares a "screen" (a canvas: headless Chromium has no screen to capture).
    await ben.page.evaluate(() => {
      const canvas = document.createElement('canvas');
      canvas.width = 1280;
      canvas.height = 720;
      const ctx = /** @type {CanvasRenderingContext2D} */ (canvas.getContext('2d'));
      let n = 0;
      setInterval(() => {
        ctx.fillStyle = '#1e3a5f';
        ctx.fillRect(0, 0, 1280, 720);
        ctx.fillStyle = '#fff';
        ctx.font = '64px sans-serif';
        ctx.fillText(`Quarterly plan · slide ${1 + (Math.floor(n++ / 50) % 9)}`, 80, 200);
      }, 40);
      const track = canvas.captureStream(25).getVideoTracks()[0];
      /** @type {any} */ (window).cascadeDemo.client.publishTrack(track, { source: 'screen' });
    });
    const shared = await waitFor("ana to put ben's screen on the stage", 20_000, async () => {
      const b = await tileBoxes(ana.page);
      return b.tiles.some((t) => t.screen && t.w > 0) && b.tiles.length === 7 ? b : null;
    });
    const screen = /** @type {any} */ (shared.tiles.find((t) => t.screen));
    const cameras = shared.tiles.filter((t) => !t.screen);
    for (const c of cameras) assert.ok(!boxesOverlap(c, screen), `a camera covers the screen: ${describeValue([c, screen])}`);
    assert.ok(cameras.every((c) => c.w * c.h < screen.w * screen.h), 'the screen is the largest tile');
    const share = (screen.w * screen.h) / (shared.stage.w * shared.stage.h);
    assert.ok(share >= 0.5, `the screen takes ${(share * 100).toFixed(0)} % of the stage, want >= 50 %`);
    await ana.page.waitForTimeout(1000);
    await ana.page.screenshot({ path: join(ARTIFACTS, 'demo-screen-share.png'), timeout: 10_000 });
    // fay's phone: the screen above, the cameras in a filmstrip below it.
    await waitFor("fay (phone) to put ben's screen on the stage", 20_000, async () => {
      const b = await tileBoxes(fay.page);
      return b.tiles.some((t) => t.screen && t.w > 0) && b.tiles.length === 7 ? b : null;
    });
    await fay.page.waitForTimeout(500);
    await fay.page.screenshot({ path: join(ARTIFACTS, 'demo-phone-screen-share.png'), timeout: 10_000 });
  }

  test('broadcast: 5 viewers decode the host\'s video and cannot publish', { timeout: 90_000 }, withDiagnostics('broadcast', async () => {
    const room = 'launch-keynote';
    const host = await openParticipant('host', room, 'host');
    await waitPublished(host);
    const hostId = await selfId(host.page);
    const viewers = await Promise.all([1, 2, 3, 4, 5].map((i) => openParticipant(`viewer${i}`, room, 'watch')));
    await Promise.all(viewers.map((v) => recordTtff(v, 'broadcast viewer')));

    for (const v of viewers) {
      const tiles = await waitFor(`${v.name} to show the host's tile`, 10_000, async () => {
        const t = await remoteTiles(v.page);
        return t.some((x) => x.participant === hostId && x.visible) ? t : null;
      });
      assert.deepEqual(tiles.map((t) => t.identity), ['host'], `${v.name} shows only the host`);
      for (const control of ['mic', 'camera', 'screen']) {
        const loc = v.page.getByTestId(control);
        const visible = (await loc.count()) > 0 && (await loc.first().isVisible());
        assert.equal(visible, false, `${v.name} exposes no ${control} control`);
      }
      const self = await v.page.evaluate(() => /** @type {any} */ (window).cascadeDemo.client.participant);
      assert.equal(self.can_publish, false, `${v.name} joined with a viewer token`);
    }
    await Promise.all(viewers.map((v) => expectMediaFlowing(v, [hostId])));
    mkdirSync(ARTIFACTS, { recursive: true });
    await viewers[0].page.screenshot({ path: join(ARTIFACTS, 'demo-broadcast-viewer.png'), timeout: 10_000 });
    await phoneScreenshot(viewers[0].page, 'demo-phone-broadcast-viewer.png');

    // The host does not show viewers as video tiles.
    assert.deepEqual(await remoteTiles(host.page), [], 'the host shows no viewer tiles');

    // A viewer's client refuses to publish: either it throws permission_denied at once, or the
    // server's permission_denied comes back as an `error` event.
    const viewer = viewers[0];
    const outcome = await viewer.page.evaluate(async () => {
      const c = /** @type {any} */ (window).cascadeDemo.client;
      const canvas = document.createElement('canvas');
      canvas.getContext('2d')?.fillRect(0, 0, 10, 10);
      const stream = canvas.captureStream(5);
      const event = new Promise((res) => {
        c.addEventListener('error', (e) => res({ via: 'error event', code: e.detail?.code }), { once: true });
        setTimeout(() => res(null), 5000);
      });
      try {
        c.publish(stream);
      } catch (e) {
        return { via: 'throw', code: e.code ?? String(e) };
      }
      return await event;
    });
    console.log(`viewer publish attempt: ${describeValue(outcome)}`);
    assert.equal(outcome?.code, 'permission_denied', 'a viewer cannot publish');

    // And the server itself refuses media from a viewer token: a raw protocol client in the page
    // with a fresh viewer token joins, offers a sending video track and gets permission_denied.
    const raw = await viewer.page.evaluate(async (room) => {
      const res = await fetch(`/api/dev/token?room=${encodeURIComponent(room)}&identity=intruder&role=viewer`);
      const { token } = await res.json();
      const ws = new WebSocket(`ws://${location.host}/ws`);
      const inbox = [];
      const next = (type) =>
        new Promise((resolve, reject) => {
          const t = setTimeout(() => reject(new Error(`no ${type} (got ${JSON.stringify(inbox.map((m) => m.type))})`)), 5000);
          const check = () => {
            const m = inbox.find((x) => x.type === type || x.type === 'error');
            if (m) {
              clearTimeout(t);
              inbox.splice(inbox.indexOf(m), 1);
              resolve(m);
            } else setTimeout(check, 20);
          };
          check();
        });
      ws.onmessage = (ev) => inbox.push(JSON.parse(ev.data));
      await new Promise((r, j) => {
        ws.onopen = r;
        ws.onerror = () => j(new Error('raw WebSocket failed'));
      });
      // Without auto-subscription, so that no server offer is outstanding when we offer
      // (the server would ignore our offer as glare).
      ws.send(JSON.stringify({ type: 'join', token, auto_subscribe: false }));
      const joined = await next('joined');
      const pc = new RTCPeerConnection();
      const canvas = document.createElement('canvas');
      canvas.getContext('2d')?.fillRect(0, 0, 10, 10);
      pc.addTransceiver(canvas.captureStream(5).getVideoTracks()[0], { direction: 'sendonly' });
      await pc.setLocalDescription();
      ws.send(JSON.stringify({ type: 'offer', sdp: pc.localDescription.sdp, ref: 'viewer-offer' }));
      const reply = await next('answer');
      ws.send(JSON.stringify({ type: 'leave' }));
      pc.close();
      return { joined: joined.type, canPublish: joined.participant?.can_publish, reply };
    }, room);
    console.log(`raw viewer offer: ${describeValue(raw)}`);
    assert.equal(raw.joined, 'joined');
    assert.equal(raw.canPublish, false);
    assert.equal(raw.reply.type, 'error');
    assert.equal(raw.reply.code, 'permission_denied');
    assert.equal(raw.reply.ref, 'viewer-offer');

    // Viewers still decode the host after all that.
    await expectMediaFlowing(viewer, [hostId], { timeoutMs: 5_000 });

    // When the host leaves, the viewers are told so (not "waiting for the host to start").
    await host.page.getByTestId('leave').click();
    await waitFor('the viewer to say the host left', 5_000, async () => {
      const note = await viewer.page.getByTestId('empty-note');
      return (await note.isVisible()) && /host has left/.test((await note.textContent()) ?? '');
    }, 100);
  }));
});
