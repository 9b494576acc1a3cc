// Unit tests of the demo's tile geometry (layout.js): no browser needed.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { layoutTiles, MIN_TILE_WIDTH } from '../layout.js';

/** @param {{x: number, y: number, w: number, h: number}} a @param {{x: number, y: number, w: number, h: number}} b */
const overlap = (a, b) => a.x < b.x + b.w - 0.5 && b.x < a.x + a.w - 0.5 && a.y < b.y + b.h - 0.5 && b.y < a.y + a.h - 0.5;

function assertDisjoint(boxes) {
  for (let i = 0; i < boxes.length; i++) {
    for (let j = i + 1; j < boxes.length; j++) {
      assert.ok(!overlap(boxes[i], boxes[j]), `tiles ${i} and ${j} overlap: ${JSON.stringify([boxes[i], boxes[j]])}`);
    }
  }
}

function assertInside(boxes, width, height) {
  for (const b of boxes) {
    assert.ok(b.x >= -0.5 && b.y >= -0.5 && b.x + b.w <= width + 0.5 && b.y + b.h <= height + 0.5, `outside the stage: ${JSON.stringify(b)}`);
  }
}

const area = (boxes) => boxes.reduce((sum, b) => sum + b.w * b.h, 0);

test('grids fill most of a desktop stage and never overlap', () => {
  // The stage the issue measured at 1366x768: 1034x640.
  for (const [count, least] of [[1, 0.7], [2, 0.45], [3, 0.6], [4, 0.7], [6, 0.7], [9, 0.6]]) {
    const boxes = layoutTiles({ count, width: 1034, height: 640 });
    assert.equal(boxes.length, count);
    assertDisjoint(boxes);
    assertInside(boxes, 1034, 640);
    const filled = area(boxes) / (1034 * 640);
    assert.ok(filled >= least, `${count} tiles fill ${(filled * 100).toFixed(0)} % of the stage, want >= ${least * 100} %`);
    for (const b of boxes) assert.ok(b.w / b.h <= 16 / 9 + 1e-9 && b.w / b.h >= 4 / 3 - 1e-9, 'tiles between 4:3 and 16:9');
  }
});

test('six tiles on a wide stage take two rows of three', () => {
  const boxes = layoutTiles({ count: 6, width: 1034, height: 640 });
  assert.equal(new Set(boxes.map((b) => Math.round(b.y))).size, 2);
});

test('six tiles on a phone take two columns and fit the stage', () => {
  const boxes = layoutTiles({ count: 6, width: 374, height: 730 });
  assertDisjoint(boxes);
  assert.equal(new Set(boxes.map((b) => Math.round(b.x))).size, 2, 'two columns');
  assert.ok(boxes.every((b) => b.x >= 0 && b.x + b.w <= 374.5 && b.y >= 0 && b.y + b.h <= 730.5), 'inside the stage');
});

test('too many tiles overflow downwards at the minimum width', () => {
  const boxes = layoutTiles({ count: 40, width: 900, height: 400 });
  assertDisjoint(boxes);
  assert.ok(boxes.every((b) => b.w >= MIN_TILE_WIDTH - 1e-9 && b.x + b.w <= 900.5));
  assert.ok(Math.max(...boxes.map((b) => b.y + b.h)) > 400, 'rows go below the stage (it scrolls)');
});

test('a shared screen takes the stage, cameras in a filmstrip beside or below it', () => {
  for (const [width, height] of [[1034, 640], [390, 700]]) {
    for (const count of [2, 4, 7]) {
      const boxes = layoutTiles({ count, screens: 1, width, height });
      assertDisjoint(boxes);
      const [screen, ...cameras] = boxes;
      assert.ok(cameras.every((c) => c.w * c.h < screen.w * screen.h), 'the screen is the largest tile');
      if (width > height) assert.ok(screen.w * screen.h >= 0.5 * width * height, `the screen takes the stage (${count})`);
      else assert.ok(screen.w >= 0.99 * width, `the screen spans the phone's width (${count})`);
      assertInside([screen], width, height);
      if (width > height) assert.ok(cameras.every((c) => c.x >= screen.x + screen.w), 'filmstrip beside the screen');
      else assert.ok(cameras.every((c) => c.y >= screen.y + screen.h), 'filmstrip below the screen');
    }
  }
  const alone = layoutTiles({ count: 1, screens: 1, width: 1034, height: 640 });
  assert.ok(area(alone) >= 0.8 * 1034 * 640, 'a screen alone fills the stage');
});

test('nothing to lay out', () => {
  assert.deepEqual(layoutTiles({ count: 0, width: 100, height: 100 }), []);
  assert.deepEqual(layoutTiles({ count: 3, width: 0, height: 100 }), []);
});
