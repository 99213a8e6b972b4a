// @ts-check
// Which rows of a long list the page keeps in the DOM. Pure: no DOM, numbers in, numbers out.
//
// The fleet table is virtualized: only the rows in (or near) the viewport exist as elements, and two
// padding rows stand in for the rest, so 10,000 devices cost what 40 do. Every row has the same
// height (the stylesheet fixes it), which makes the mapping from scroll position to row index exact.

/**
 * @typedef {object} Viewport
 * @property {number} count rows in the list
 * @property {number} rowHeight px, > 0
 * @property {number} listTop px from the top of the viewport to the list's first row (negative when
 *   scrolled past it)
 * @property {number} viewHeight px, the viewport's height
 * @property {number} overscan rows kept on each side of the visible ones
 */

/**
 * @typedef {object} RowWindow
 * @property {number} first index of the first row to render
 * @property {number} last index after the last row to render (first === last: none)
 * @property {number} padTop px of list above the rendered rows
 * @property {number} padBottom px of list below them
 */

/**
 * The rows to render for a viewport: those visible plus `overscan` on each side, clamped to the list.
 * @param {Viewport} viewport
 * @returns {RowWindow}
 */
export function rowWindow({ count, rowHeight, listTop, viewHeight, overscan }) {
  const visibleFirst = Math.floor(-listTop / rowHeight);
  const visibleLast = Math.ceil((viewHeight - listTop) / rowHeight);
  const first = clamp(visibleFirst - overscan, 0, count);
  const last = clamp(visibleLast + overscan, first, count);
  return { first, last, padTop: first * rowHeight, padBottom: (count - last) * rowHeight };
}

/**
 * @param {number} value
 * @param {number} low
 * @param {number} high
 * @returns {number}
 */
function clamp(value, low, high) {
  return Math.min(high, Math.max(low, value));
}

