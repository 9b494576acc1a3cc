// @ts-check
/**
 * Where the demo's video tiles go on the stage: pure geometry, no DOM (unit-tested in
 * tests/layout.test.mjs). Tiles keep the video aspect ratio.
 *
 * - Without a shared screen, the tiles form the grid that makes them largest while the whole
 *   grid fits the stage (centered); a tile takes its whole cell when the cell's aspect is
 *   between 4:3 and 16:9 (cameras are cropped to fill, as in most meeting apps), else the
 *   nearest of those. Past what fits at a minimum width, rows overflow downwards (the stage
 *   scrolls).
 * - With a shared screen, the first screen takes the stage and every other tile goes to a
 *   filmstrip beside it (landscape stage) or below it (portrait stage); nothing overlaps.
 */

/** @typedef {{x: number, y: number, w: number, h: number}} Box */

/** Narrowest grid tile before rows overflow instead (on a phone: half the stage). */
export const MIN_TILE_WIDTH = 200;
/** The narrowest aspect ratio a grid tile takes (4:3); the widest is the video's. */
export const MIN_ASPECT = 4 / 3;

/**
 * The boxes of `count` tiles, the first `screens` of them shared screens, on a stage of
 * `width` × `height` with `gap` between tiles.
 * @param {{count: number, screens?: number, width: number, height: number, gap?: number, aspect?: number}} stage
 * @returns {Box[]}
 */
export function layoutTiles({ count, screens = 0, width, height, gap = 12, aspect = 16 / 9 }) {
  if (count <= 0 || width <= 0 || height <= 0) return [];
  if (screens > 0) return stageWithFilmstrip(count, width, height, gap, aspect);
  return grid(count, width, height, gap, aspect);
}

/**
 * @param {number} count
 * @param {number} width
 * @param {number} height
 * @param {number} gap
 * @param {number} aspect
 * @returns {Box[]}
 */
function grid(count, width, height, gap, aspect) {
  let best = { cols: 1, w: 0, h: 0 };
  for (let cols = 1; cols <= count; cols++) {
    const rows = Math.ceil(count / cols);
    const cellW = (width - gap * (cols - 1)) / cols;
    const cellH = (height - gap * (rows - 1)) / rows;
    let [w, h] = [cellW, cellH];
    if (w / h > aspect) w = h * aspect;
    else if (w / h < MIN_ASPECT) h = w / MIN_ASPECT;
    if (w * h > best.w * best.h) best = { cols, w, h };
  }
  // A phone's stage is narrower than two minimum tiles: two columns still fit it.
  const minW = Math.min(MIN_TILE_WIDTH, (width - gap) / 2);
  if (best.w < minW - 1e-9) {
    // Too many to fit: as many columns of the minimum width as the stage takes; rows scroll.
    const cols = Math.max(1, Math.min(count, Math.floor((width + gap) / (minW + gap))));
    const w = cols > 1 ? (width - gap * (cols - 1)) / cols : Math.min(minW, width);
    best = { cols, w, h: w / aspect };
  }
  const { cols, w, h } = best;
  const rows = Math.ceil(count / cols);
  const blockH = rows * h + (rows - 1) * gap;
  const top = Math.max(0, (height - blockH) / 2);
  /** @type {Box[]} */
  const boxes = [];
  for (let i = 0; i < count; i++) {
    const row = Math.floor(i / cols);
    // The last row is centered on its own.
    const inRow = row === rows - 1 ? count - row * cols : cols;
    const rowW = inRow * w + (inRow - 1) * gap;
    const left = (width - rowW) / 2;
    boxes.push({ x: left + (i - row * cols) * (w + gap), y: top + row * (h + gap), w, h });
  }
  return boxes;
}

/**
 * @param {number} count
 * @param {number} width
 * @param {number} height
 * @param {number} gap
 * @param {number} aspect
 * @returns {Box[]}
 */
function stageWithFilmstrip(count, width, height, gap, aspect) {
  const others = count - 1;
  if (others === 0) return [fit(0, 0, width, height, aspect)];
  /** @type {Box[]} */
  const boxes = [];
  if (width >= height) {
    // Filmstrip on the right: a column of tiles.
    const stripW = clamp(width * 0.2, 140, 320);
    const mainW = width - stripW - gap;
    boxes.push(fit(0, 0, mainW, height, aspect));
    const h = stripW / aspect;
    const stripH = others * h + (others - 1) * gap;
    const top = Math.max(0, (height - stripH) / 2);
    for (let i = 0; i < others; i++) boxes.push({ x: mainW + gap, y: top + i * (h + gap), w: stripW, h });
  } else {
    // Filmstrip below: a row of tiles (scrolls sideways past the stage width).
    const stripH = clamp(height * 0.2, 80, 180);
    const mainH = height - stripH - gap;
    boxes.push(fit(0, 0, width, mainH, aspect));
    const w = stripH * aspect;
    const stripW = others * w + (others - 1) * gap;
    const left = Math.max(0, (width - stripW) / 2);
    for (let i = 0; i < others; i++) boxes.push({ x: left + i * (w + gap), y: mainH + gap, w, h: stripH });
  }
  return boxes;
}

/**
 * The largest box of `aspect` inside the given one, centered.
 * @param {number} x
 * @param {number} y
 * @param {number} w
 * @param {number} h
 * @param {number} aspect
 * @returns {Box}
 */
function fit(x, y, w, h, aspect) {
  const bw = Math.min(w, h * aspect);
  const bh = bw / aspect;
  return { x: x + (w - bw) / 2, y: y + (h - bh) / 2, w: bw, h: bh };
}

/**
 * @param {number} v
 * @param {number} lo
 * @param {number} hi
 */
function clamp(v, lo, hi) {
  return Math.max(lo, Math.min(hi, v));
}
