"""Numba kernels of the QR locator: a local threshold, a finder-pattern scan, clustering.

Nothing but `@njit(nogil=True, cache=True)` functions over contiguous arrays and scalars;
`decoder.locate` checks the input, calls them and turns their output into regions. They
release the GIL, so frames on several threads locate in parallel.

A QR finder pattern crossed through its centre in any direction shows five runs whose
widths go 1:1:3:1:1 (dark, light, dark, light, dark; the other way round on an inverted
phone screen). The scan looks for that on every `2 * row_step`-th row whole and on the
rows `row_step` between them across the patterns found, confirms each hit on the column
through the middle of its centre run, and clusters the confirmed hits.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from decoder.prefetch import prefetch_read

# A hit: x, y (centre of the pattern), horizontal width, vertical height (both 7 modules),
# polarity (1: dark pattern on light, 0: light on dark).
HIT_FIELDS = 5


@njit(nogil=True, cache=True, inline="always")
def _prefetch_row(lines, y, w, h):
    """Ask for row y of a frame (`lines`: its pixels as an (h * w, 1) view) to be
    fetched into the caches, a cache line at a time; nothing past the last row. A frame
    arrives cold from memory, and the scans read it a few rows apart, each row's first
    lines a full memory latency away unless asked for ahead."""
    if y < h:
        for x in range(0, w, 64):
            prefetch_read(lines, y * w + x)


@njit(nogil=True, cache=True)
def block_statistics(gray, block, step):
    """The sum, count, darkest and lightest of the samples of every `block` x `block`
    tile, from every `step`-th row: what the thresholds are made of. Rows are
    summed into per-column accumulators first, in loops that LLVM vectorises."""
    h, w = gray.shape
    bh = (h + block - 1) // block
    bw = (w + block - 1) // block
    sums = np.zeros((bh, bw), np.int64)
    counts = np.zeros((bh, bw), np.int64)
    lows = np.full((bh, bw), 255, np.int64)
    highs = np.zeros((bh, bw), np.int64)
    lines = gray.reshape((h * w, 1))
    _prefetch_row(lines, step // 2, w, h)
    column_sums = np.zeros(w, np.int32)
    column_lows = np.zeros(w, np.uint8)
    column_highs = np.zeros(w, np.uint8)
    for by in range(bh):
        column_sums[:] = 0
        column_lows[:] = 255
        column_highs[:] = 0
        rows = 0
        for y in range(by * block + step // 2, min(h, by * block + block), step):
            _prefetch_row(lines, y + step, w, h)
            row = gray[y]
            # One loop per accumulator: LLVM vectorises each, not the three fused (20%
            # faster, measured on 720p frames).
            for x in range(w):
                column_sums[x] += np.int32(row[x])
            for x in range(w):
                column_lows[x] = min(column_lows[x], row[x])
            for x in range(w):
                column_highs[x] = max(column_highs[x], row[x])
            rows += 1
        for bx in range(bw):
            total = 0
            low = 255
            high = 0
            x1 = min(w, bx * block + block)
            for x in range(bx * block, x1):
                total += column_sums[x]
                low = min(low, np.int64(column_lows[x]))
                high = max(high, np.int64(column_highs[x]))
            sums[by, bx] = total
            counts[by, bx] = rows * (x1 - bx * block)
            lows[by, bx] = low
            highs[by, bx] = high
    return sums, counts, lows, highs


@njit(nogil=True, cache=True)
def neighbourhood_statistics(sums, counts, lows, highs, reach):
    """`block_statistics` summed (and their darkest and lightest taken) over the tiles
    within `reach` tiles of each: along rows, then along columns, once for all the scans
    of a frame that use that reach (the tiles themselves for reach 0)."""
    if reach == 0:
        return sums, counts, lows, highs
    along = _along_rows_transposed(sums, counts, lows, highs, reach)
    return _along_rows_transposed(along[0], along[1], along[2], along[3], reach)


@njit(nogil=True, cache=True)
def _along_rows_transposed(sums, counts, lows, highs, reach):
    """Each tile's statistics over the tiles of its row within `reach` of it, written
    transposed: a second call goes along the columns and turns them back."""
    bh, bw = sums.shape
    out_sums = np.empty((bw, bh), np.int64)
    out_counts = np.empty((bw, bh), np.int64)
    out_lows = np.empty((bw, bh), np.int64)
    out_highs = np.empty((bw, bh), np.int64)
    for by in range(bh):
        for bx in range(bw):
            total = 0
            n = 0
            low = 255
            high = 0
            for xx in range(max(0, bx - reach), min(bw, bx + reach + 1)):
                total += sums[by, xx]
                n += counts[by, xx]
                low = min(low, lows[by, xx])
                high = max(high, highs[by, xx])
            out_sums[bx, by] = total
            out_counts[bx, by] = n
            out_lows[bx, by] = low
            out_highs[bx, by] = high
    return out_sums, out_counts, out_lows, out_highs


@njit(nogil=True, cache=True)
def tile_thresholds(sums, counts, lows, highs, min_contrast, min_edge, edge_floor,
                    edge_percent, midrange_percent):
    """The threshold of every tile from its neighbourhood's statistics
    (`neighbourhood_statistics`): their mean, moved `midrange_percent` of the way to the
    middle of their darkest and lightest samples; 0 (all light) where those vary by less
    than `min_contrast` grey levels. And the edge a finder pattern must show there (see
    `_flag`): `edge_percent` of that variation, between `edge_floor` and `min_edge`, so
    that a faint code (low-contrast print, a dim corner) is held to its own contrast and
    a sharp one to `min_edge`."""
    bh, bw = sums.shape
    thresholds = np.zeros((bh, bw), np.uint8)
    edges = np.full((bh, bw), min_edge, np.uint8)
    for by in range(bh):
        for bx in range(bw):
            n = counts[by, bx]
            low = lows[by, bx]
            high = highs[by, bx]
            if n > 0 and high - low >= min_contrast:
                mean = (sums[by, bx] + n // 2) // n
                thresholds[by, bx] = ((100 - midrange_percent) * mean
                                      + midrange_percent * ((low + high) // 2)) // 100
                edges[by, bx] = max(edge_floor, min(min_edge, (high - low) * edge_percent // 100))
    return thresholds, edges


@njit(nogil=True, cache=True, inline="always")
def _is_finder(a, b, c, d, e):
    """Whether five run widths go 1:1:3:1:1 within a tolerance that blur and a module
    of two pixels need: each side run within 0.7 module (plus rounding) of one
    module, the centre within 1.4 modules of three. Branch-free: grain and noise
    make an edge every few pixels, and mispredicted branches would cost more than the
    arithmetic."""
    total = a + b + c + d + e
    limit = 7 * total + 20  # in tenths of a seventh: 0.7 module and 2/7 pixel
    return ((total >= 7) & (10 * abs(7 * a - total) <= limit)
            & (10 * abs(7 * b - total) <= limit) & (10 * abs(7 * d - total) <= limit)
            & (10 * abs(7 * e - total) <= limit) & (5 * abs(7 * c - 3 * total) <= limit))


# int32 constants keep the arithmetic of `_flag` in 32-bit lanes: an int64 literal
# would promote every product to int64 and halve what a vector instruction holds.
_I3, _I5, _I7, _I10, _I20 = np.int32(3), np.int32(5), np.int32(7), np.int32(10), np.int32(20)
_I16 = np.int32(16)


@njit(nogil=True, cache=True)
def _flag(widths, middles, run_edges, j, flags, side_weight):
    """flags[j] >= 0 when runs j..j+4 go 1:1:3:1:1 (as `_is_finder` says), the centre
    run is at least `side_weight` / 4 times the side runs' mean (0: no such bound), and
    their middles alternate by the centre run's edge (`run_edges`, int32 grey levels,
    from its tile) in either polarity. Arithmetic only (min, max, abs on int32; no
    tuples, which cost 3x here), so that the loop over a row's runs vectorises."""
    a = middles[j]
    b = middles[j + 1]
    c = middles[j + 2]
    d = middles[j + 3]
    e = middles[j + 4]
    contrast = max(min(b, d) - max(a, max(c, e)), min(a, min(c, e)) - max(b, d)) \
        - run_edges[j + 2]
    w0 = widths[j]
    w1 = widths[j + 1]
    w2 = widths[j + 2]
    w3 = widths[j + 3]
    w4 = widths[j + 4]
    total = w0 + w1 + w2 + w3 + w4
    limit = _I7 * total + _I20  # in tenths of a seventh: 0.7 module and 2/7 pixel
    margin = min(limit - _I10 * abs(_I7 * w0 - total), limit - _I10 * abs(_I7 * w1 - total))
    margin = min(margin, min(limit - _I10 * abs(_I7 * w3 - total),
                             limit - _I10 * abs(_I7 * w4 - total)))
    margin = min(margin, min(limit - _I5 * abs(_I7 * w2 - _I3 * total), total - _I7))
    margin = min(margin, _I16 * w2 - np.int32(side_weight) * (w0 + w1 + w3 + w4))
    flags[j] = min(margin, contrast)


@njit(nogil=True, cache=True)
def _contrasted(row, end, r0, r1, r2, r3, r4, colour, min_edge):
    """Whether the light runs of a candidate (sampled at their middles) are brighter
    than its dark runs by `min_edge` grey levels: grain and JPEG noise around the
    threshold make 1:1:3:1:1 runs too, but faintly."""
    e4 = end - r4 // 2 - 1
    e3 = end - r4 - r3 // 2 - 1
    e2 = end - r4 - r3 - r2 // 2 - 1
    e1 = end - r4 - r3 - r2 - r1 // 2 - 1
    e0 = end - r4 - r3 - r2 - r1 - r0 // 2 - 1
    outer_a = max(np.int64(row[e0]), max(np.int64(row[e2]), np.int64(row[e4])))
    outer_b = min(np.int64(row[e0]), min(np.int64(row[e2]), np.int64(row[e4])))
    inner_a = min(np.int64(row[e1]), np.int64(row[e3]))
    inner_b = max(np.int64(row[e1]), np.int64(row[e3]))
    if colour:  # dark pattern: rings light
        return inner_a - outer_a >= min_edge
    return outer_b - inner_b >= min_edge


@njit(nogil=True, cache=True)
def _vertical_runs(gray, column_thresholds, tile_of_row, x, y, colour, limit, runs):
    """Widths of the centre run through (x, y) and of the two runs above and below it,
    into runs[0..4] (top to bottom), and the centre's row into runs[5]; False if a run
    is missing or longer than `limit`. `column_thresholds` are the thresholds of the
    tiles of column x, `tile_of_row[y]` the tile row of y."""
    h = gray.shape[0]
    yy = y
    n = 0
    while yy >= 0 and n <= limit and \
            (gray[yy, x] < column_thresholds[tile_of_row[yy]]) == colour:
        yy -= 1
        n += 1
    up_centre = n
    for k in range(2):
        want = colour if k == 1 else not colour
        n = 0
        while yy >= 0 and n <= limit and \
                (gray[yy, x] < column_thresholds[tile_of_row[yy]]) == want:
            yy -= 1
            n += 1
        if n == 0 or n > limit:
            return False
        runs[1 - k] = n
    yy = y + 1
    n = 0
    while yy < h and n <= limit and \
            (gray[yy, x] < column_thresholds[tile_of_row[yy]]) == colour:
        yy += 1
        n += 1
    runs[2] = up_centre + n
    runs[5] = y - up_centre + (up_centre + n) // 2
    for k in range(2):
        want = colour if k == 1 else not colour
        n = 0
        while yy < h and n <= limit and \
                (gray[yy, x] < column_thresholds[tile_of_row[yy]]) == want:
            yy += 1
            n += 1
        if n == 0 or n > limit:
            return False
        runs[3 + k] = n
    return runs[2] <= limit


@njit(nogil=True, cache=True)
def _scan_row(gray, pixel_thresholds, pixel_edges, block, y, x0, x1, tile_columns,
              tile_of_row, work, vertical, hits, found, side_weight):
    """Scan pixels x0..x1 - 1 of row y for 1:1:3:1:1 runs in both polarities, confirm
    each on its centre column, and write the hits (HIT_FIELDS columns) into `hits` from
    `found`. Returns the new count (at most len(hits)). `pixel_thresholds` and
    `pixel_edges` hold each tile row's thresholds and edges pixel by pixel; `work` the
    scratch rows (binary, ends, widths, middles, flags, run edges), each at least w + 2
    long."""
    binary, ends, widths, middles, flags, run_edges = work
    n = x1 - x0
    row = gray[y, x0:x1]  # views: loops from 0 let LLVM vectorise them
    row_thresholds = pixel_thresholds[y // block, x0:x1]
    row_edges = pixel_edges[y // block, x0:x1]
    # Every loop over the row is branch-free, so that LLVM vectorises it and no noise
    # edge costs a mispredicted branch; only the rare candidates branch.
    for x in range(n):
        binary[x] = np.uint8(1) if row[x] < row_thresholds[x] else np.uint8(0)
    binary[n] = np.uint8(1) - binary[n - 1]  # an edge after the last pixel
    # Indices only ever go up from a loop variable that starts at 0: numba wraps
    # negative indices, and the check for them (x - 1) keeps LLVM from vectorising.
    ends[0] = 0
    k = 1
    for x in range(n):
        ends[k] = x + 1
        k += binary[x + 1] ^ binary[x]
    runs = k - 1
    for j in range(runs):
        widths[j] = ends[j + 1] - ends[j]
        middles[j] = row[(ends[j] + ends[j + 1] - 1) >> 1]
        run_edges[j] = row_edges[(ends[j] + ends[j + 1] - 1) >> 1]
    for j in range(runs - 4):
        _flag(widths, middles, run_edges, j, flags, side_weight)
    for j in range(runs - 4):
        if flags[j] < 0:
            continue
        end = ends[j + 5]
        r0, r1, r2, r3, r4 = widths[j], widths[j + 1], widths[j + 2], widths[j + 3], \
            widths[j + 4]
        colour = binary[end - 1] == 1
        if not _contrasted(row, end, r0, r1, r2, r3, r4, colour, run_edges[j + 2]):
            continue
        total = r0 + r1 + r2 + r3 + r4
        cx = x0 + end - r4 - r3 - (r2 + 1) // 2
        if not _vertical_runs(gray, tile_columns[cx // block], tile_of_row, cx, y,
                              colour, 2 * total, vertical):
            continue
        vt = vertical[0] + vertical[1] + vertical[2] + vertical[3] + vertical[4]
        if _is_finder(vertical[0], vertical[1], vertical[2], vertical[3], vertical[4]) \
                and 2 * vt >= total and vt <= 2 * total and found < len(hits):
            hits[found, 0] = cx
            hits[found, 1] = vertical[5]
            hits[found, 2] = total
            hits[found, 3] = vt
            hits[found, 4] = 1 if colour else 0
            found += 1
    return found


@njit(nogil=True, cache=True)
def scan_finders(gray, thresholds, edges, block, row_step, hits, side_weight):
    """Find 1:1:3:1:1 runs in both polarities on every `row_step`-th row (their centre
    run at least `side_weight` / 4 times their side runs' mean), each confirmed on its
    centre column; write the hits (HIT_FIELDS columns) into `hits` and return how many
    were written (at most len(hits)).

    Every other one of those rows is scanned whole; the rows in between only across the
    patterns found on those (coarse) rows, as wide as the pattern on either side of it
    and as high. A pattern's centre band (three modules of two pixels or more) holds a
    coarse row, and the rows in between then give it the hits it would have had: half
    the scan, and the same patterns but where noise fails the coarse row's test there
    (on 1,800 synthetic frames, 3 codes fewer read and 1 more). Hits on coarse rows
    come first, then the others, row by row."""
    h, w = gray.shape
    vertical = np.zeros(6, np.int64)
    work = (np.zeros(w + 2, np.uint8), np.zeros(w + 2, np.int64), np.zeros(w + 2, np.int32),
            np.zeros(w + 2, np.int32), np.zeros(w + 2, np.int32), np.zeros(w + 2, np.int32))
    # Each tile row's thresholds and edges pixel by pixel, once for the rows crossing it:
    # filled row by row, they cost a quarter of the scan (measured: 0.32 -> 0.24 ms a
    # frame over 450 benchmark frames, the same hits).
    bh, bw = thresholds.shape
    pixel_thresholds = np.empty((bh, w), np.uint8)
    pixel_edges = np.empty((bh, w), np.uint8)
    for by in range(bh):
        for bx in range(bw):
            # a slice filled from a scalar: a memset, where a loop over pixels took 4x
            # as long (14 us a 640x480 frame, a scan of a flat one 45 us in all)
            x0 = bx * block
            x1 = min(w, x0 + block)
            pixel_thresholds[by, x0:x1] = thresholds[by, bx]
            pixel_edges[by, x0:x1] = edges[by, bx]
    tile_of_row = np.arange(h) // block
    # thresholds column-major, so that a vertical walk reads one contiguous column
    tile_columns = np.ascontiguousarray(thresholds.T)
    first = row_step // 2
    coarse = 2 * row_step
    found = 0
    lines = gray.reshape((h * w, 1))
    for y in range(first, h, coarse):
        _prefetch_row(lines, y + coarse, w, h)
        found = _scan_row(gray, pixel_thresholds, pixel_edges, block, y, 0, w, tile_columns,
                          tile_of_row, work, vertical, hits, found, side_weight)
    # the rows in between, across each coarse hit: (row, x0, x1) spans, merged per row
    spans = np.empty((4 * found + 1, 3), np.int64)
    m = 0
    for i in range(found):
        cx, cy, total, vt = hits[i, 0], hits[i, 1], hits[i, 2], hits[i, 3]
        x0, x1 = max(0, cx - total), min(w, cx + total + 1)
        # the in-between rows (first + row_step + k * coarse) within half a height
        top, bottom = max(0, cy - (vt + 1) // 2), min(h - 1, cy + (vt + 1) // 2)
        base = first + row_step
        y = base + max(0, (top - base + coarse - 1) // coarse) * coarse
        while y <= bottom and x1 - x0 >= 8:
            if m == spans.shape[0]:
                grown = np.empty((2 * m, 3), np.int64)
                grown[:m] = spans
                spans = grown
            spans[m, 0], spans[m, 1], spans[m, 2] = y, x0, x1
            m += 1
            y += coarse
    order = np.argsort(spans[:m, 0] * (w + 1) + spans[:m, 1])
    j = 0
    while j < m:
        y, x0, x1 = spans[order[j], 0], spans[order[j], 1], spans[order[j], 2]
        j += 1
        while j < m and spans[order[j], 0] == y and spans[order[j], 1] <= x1:
            x1 = max(x1, spans[order[j], 2])
            j += 1
        found = _scan_row(gray, pixel_thresholds, pixel_edges, block, y, x0, x1, tile_columns,
                          tile_of_row, work, vertical, hits, found, side_weight)
    return found


# Cells of the grid that `cluster_hits` files clusters in, in pixels of the scanned image.
_CELL = 16


@njit(nogil=True, cache=True)
def cluster_hits(hits, n, clusters):
    """Merge the hits of one finder pattern (same polarity, centres within a module and
    a half, similar size) into clusters: x, y, size (7 modules), polarity, hit count.
    A hit joins the first cluster made (the lowest index) that it fits. Returns the
    number of clusters.

    Clutter makes thousands of hits, most of them a cluster of their own, and comparing
    each with every cluster made before cost 4-5 ms on such a frame. The clusters are
    filed in a grid of _CELL-pixel cells by their centre, and a hit is compared only
    with those in the cells within the farthest reach a fitting cluster can have (a
    fitting cluster is at most twice its size): the same clusters, in the same order."""
    if n == 0:
        return 0
    width = 0
    height = 0
    for i in range(n):
        width = max(width, hits[i, 0] + 1)
        height = max(height, hits[i, 1] + 1)
    columns = width // _CELL + 1
    rows = height // _CELL + 1
    head = np.full(columns * rows, -1, np.int64)  # each cell's last entry
    entry_cluster = np.empty(n, np.int64)  # a cluster filed in a cell...
    entry_next = np.empty(n, np.int64)  # ... and the cell's entry before it
    cell_of = np.full(min(n, len(clusters)), -1, np.int64)  # each cluster's cell now
    entries = 0
    k = 0
    for i in range(n):
        x = hits[i, 0]
        y = hits[i, 1]
        size = (hits[i, 2] + hits[i, 3]) / 2.0
        pol = hits[i, 4]
        far = 0.6 * size + 2.0  # over 0.3 * max(cs, size) + 1, as cs <= 2 size
        best = -1
        for cy in range(max(0, int((y - far) // _CELL)), min(rows, int((y + far) // _CELL) + 1)):
            for cx in range(max(0, int((x - far) // _CELL)),
                            min(columns, int((x + far) // _CELL) + 1)):
                cell = cy * columns + cx
                e = head[cell]
                while e >= 0:
                    j = entry_cluster[e]
                    e = entry_next[e]
                    # filed here before it moved on (entries are never removed)
                    if cell_of[j] != cell or (best >= 0 and j > best) \
                            or clusters[j, 3] != pol:
                        continue
                    cs = clusters[j, 2]
                    if size > 2 * cs or cs > 2 * size:
                        continue
                    reach = 0.3 * max(cs, size) + 1.0
                    dx = clusters[j, 0] - x
                    dy = clusters[j, 1] - y
                    if dx * dx + dy * dy <= reach * reach:
                        best = j
        if best >= 0:
            j = best
            c = clusters[j, 4]
            clusters[j, 0] = (clusters[j, 0] * c + x) / (c + 1)
            clusters[j, 1] = (clusters[j, 1] * c + y) / (c + 1)
            clusters[j, 2] = (clusters[j, 2] * c + size) / (c + 1)
            clusters[j, 4] = c + 1
        elif k < len(clusters):
            j = k
            clusters[k, 0] = x
            clusters[k, 1] = y
            clusters[k, 2] = size
            clusters[k, 3] = pol
            clusters[k, 4] = 1
            k += 1
        else:
            continue
        # file the cluster where its centre is now (a mean of hits: inside the grid)
        cell = int(clusters[j, 1]) // _CELL * columns + int(clusters[j, 0]) // _CELL
        if cell_of[j] != cell:
            cell_of[j] = cell
            entry_cluster[entries] = j
            entry_next[entries] = head[cell]
            head[cell] = entries
            entries += 1
    return k


@njit(nogil=True, cache=True)
def find_triples(clusters, k, triples):
    """Triples of clusters that could be the three finder patterns of one code: same
    polarity, sizes within 2x, the two legs from the corner pattern of similar length
    (14 to 80 modules) and roughly at a right angle. Writes (corner, a, b, score) rows,
    best score (smallest) first is the caller's job. Returns the number written."""
    m = 0
    for i in range(k):
        for j in range(i + 1, k):
            if clusters[i, 3] != clusters[j, 3]:
                continue
            for q in range(j + 1, k):
                if clusters[q, 3] != clusters[i, 3]:
                    continue
                s0 = clusters[i, 2]
                s1 = clusters[j, 2]
                s2 = clusters[q, 2]
                smax = max(s0, max(s1, s2))
                smin = min(s0, min(s1, s2))
                if smax > 2.0 * smin:
                    continue
                module = (s0 + s1 + s2) / 21.0
                # the corner is the pattern opposite the longest side
                best = -1
                best_err = 1e9
                for c in range(3):
                    if c == 0:
                        p, a, b = i, j, q
                    elif c == 1:
                        p, a, b = j, i, q
                    else:
                        p, a, b = q, i, j
                    ax = clusters[a, 0] - clusters[p, 0]
                    ay = clusters[a, 1] - clusters[p, 1]
                    bx = clusters[b, 0] - clusters[p, 0]
                    by = clusters[b, 1] - clusters[p, 1]
                    la = np.sqrt(ax * ax + ay * ay)
                    lb = np.sqrt(bx * bx + by * by)
                    if la < 1 or lb < 1:
                        continue
                    cos = (ax * bx + ay * by) / (la * lb)
                    if abs(cos) > 0.5:  # within about 30 degrees of a right angle
                        continue
                    if la > 1.8 * lb or lb > 1.8 * la:
                        continue
                    legs = (la + lb) / 2 / module
                    if legs < 10 or legs > 90:
                        continue
                    err = abs(cos) + abs(la - lb) / (la + lb)
                    if err < best_err:
                        best_err = err
                        best = c
                if best < 0 or m >= len(triples):
                    continue
                # Real finder patterns are crossed by several rows and match in size;
                # patterns that happen to appear in a code's data or in clutter seldom do.
                fewest = min(clusters[i, 4], min(clusters[j, 4], clusters[q, 4]))
                best_err += 0.5 * (smax / smin - 1.0) + 1.0 / fewest
                if best == 0:
                    triples[m, 0], triples[m, 1], triples[m, 2] = i, j, q
                elif best == 1:
                    triples[m, 0], triples[m, 1], triples[m, 2] = j, i, q
                else:
                    triples[m, 0], triples[m, 1], triples[m, 2] = q, i, j
                triples[m, 3] = best_err
                m += 1
    return m


@njit(nogil=True, cache=True, inline="always")
def _reciprocal(n):
    """Pillow's reciprocal of a box of `n` pixels: 2**32 / (256 n) in single precision,
    truncated."""
    return np.int64(np.float32(4294967296.0) / np.float32(256 * n))


@njit(nogil=True, cache=True, inline="always")
def _box_mean(total, n, reciprocal, invert):
    """The mean of `n` pixels summing to `total` (of the inverted pixels if `invert`),
    rounded as Pillow's Image.reduce rounds it: a 32-bit fixed-point multiply."""
    if invert:
        total = 255 * n - total
    return np.uint8((((total + n // 2) * reciprocal) & 0xFFFFFFFF) >> 24)


@njit(nogil=True, cache=True)
def crop_reduced(gray, x0, y0, x1, y1, invert, factor):
    """gray[y0:y1, x0:x1] as a new array, inverted (255 - v) if `invert`, then reduced
    `factor` times by box means, pixel for pixel what Pillow's Image.reduce(factor)
    gives (the last row and column of boxes may be narrower). One pass, without the
    GIL: Pillow's reduce and numpy's copies hold it around their work."""
    h = y1 - y0
    w = x1 - x0
    oh = (h + factor - 1) // factor
    ow = (w + factor - 1) // factor
    out = np.empty((oh, ow), np.uint8)
    if factor == 1:
        for y in range(h):
            source = gray[y0 + y, x0:x1]  # a view: indices from 0 let LLVM vectorise
            target = out[y]
            if invert:
                for x in range(w):
                    target[x] = np.uint8(255) - source[x]
            else:
                for x in range(w):
                    target[x] = source[x]
        return out
    columns = np.empty(w, np.int32)
    full = w // factor
    sums = np.empty(full, np.int32)
    for oy in range(oh):
        ya = y0 + oy * factor
        yb = min(y1, ya + factor)
        columns[:] = 0
        for y in range(ya, yb):
            source = gray[y, x0:x1]
            for x in range(w):
                columns[x] += np.int32(source[x])
        target = out[oy]
        n = (yb - ya) * factor
        reciprocal = _reciprocal(n)
        # Box sums a column offset at a time: loops of fixed stride that LLVM vectorises.
        sums[:] = 0
        for k in range(factor):
            for ox in range(full):
                sums[ox] += columns[ox * factor + k]
        for ox in range(full):
            target[ox] = _box_mean(np.int64(sums[ox]), n, reciprocal, invert)
        if ow > full:  # a last, narrower box
            total = np.int64(0)
            for x in range(full * factor, w):
                total += columns[x]
            n = (yb - ya) * (w - full * factor)
            target[full] = _box_mean(total, n, _reciprocal(n), invert)
    return out


@njit(nogil=True, cache=True, inline="always")
def _inside(x0, y0, x1, y1, x, y):
    return x0 <= x < x1 and y0 <= y < y1


@njit(nogil=True, cache=True)
def select_regions(clusters, triples, scale, height, width):
    """The regions of the best-fitting triples (smallest score first, ties in the order
    found), each finder pattern in one region at most, none whose middle lies in a
    better one's region or that holds a better one's middle (patterns in a code's data
    or in the clutter around it that happen to fit). A region is the parallelogram of
    the three patterns (in frame pixels: `scale` times the scanned ones), widened by
    six modules and a fifth of its longer leg, within the `height` x `width` frame.
    Returns boxes (x0, y0, x1, y1, end exclusive), modules, polarities (of the corner
    pattern) and which clusters are used. A busy frame has hundreds of triples: this
    loop in Python cost a third of a millisecond a frame on cluttered scenes."""
    order = np.argsort(triples[:, 3], kind="mergesort")
    used = np.zeros(len(clusters), np.bool_)
    boxes = np.empty((len(triples), 4), np.int64)
    middles = np.empty((len(triples), 2), np.float64)
    modules = np.empty(len(triples), np.float64)
    polarities = np.empty(len(triples), np.int64)
    n = 0
    for t in order:
        c, a, b = int(triples[t, 0]), int(triples[t, 1]), int(triples[t, 2])
        if used[c] or used[a] or used[b]:
            continue
        cx, cy = clusters[c, 0] * scale, clusters[c, 1] * scale
        ax, ay = clusters[a, 0] * scale, clusters[a, 1] * scale
        bx, by = clusters[b, 0] * scale, clusters[b, 1] * scale
        module = (clusters[c, 2] + clusters[a, 2] + clusters[b, 2]) * scale / 21
        mx, my = (ax + bx) / 2, (ay + by) / 2
        dx, dy = ax + bx - cx, ay + by - cy  # the fourth corner of the parallelogram
        leg = max(np.sqrt((ax - cx) ** 2 + (ay - cy) ** 2),
                  np.sqrt((bx - cx) ** 2 + (by - cy) ** 2))
        margin = 6 * module + 0.2 * leg
        x0 = max(0, int(min(min(cx, ax), min(bx, dx)) - margin))
        y0 = max(0, int(min(min(cy, ay), min(by, dy)) - margin))
        x1 = min(width, int(max(max(cx, ax), max(bx, dx)) + margin) + 1)
        y1 = min(height, int(max(max(cy, ay), max(by, dy)) + margin) + 1)
        clash = False
        for r in range(n):
            if _inside(boxes[r, 0], boxes[r, 1], boxes[r, 2], boxes[r, 3], mx, my) \
                    or _inside(x0, y0, x1, y1, middles[r, 0], middles[r, 1]):
                clash = True
                break
        if clash:
            continue
        boxes[n, 0], boxes[n, 1], boxes[n, 2], boxes[n, 3] = x0, y0, x1, y1
        middles[n, 0], middles[n, 1] = mx, my
        modules[n] = module
        polarities[n] = int(clusters[c, 3])
        used[c] = used[a] = used[b] = True
        n += 1
    return boxes[:n].copy(), modules[:n].copy(), polarities[:n].copy(), used


@njit(nogil=True, cache=True)
def locate_finders(gray, block, sample_step, min_contrast, row_step, min_edge, edge_floor,
                   edge_percent, midrange_percents, reaches, max_hits, max_clusters,
                   min_hits, max_finders, max_triples, scale, height, width,
                   half_midrange_percents, half_reaches, half_side_weight):
    """The whole scan in one call, without the GIL: thresholds, hits, clusters, regions.
    The tiles' thresholds are those of `tile_thresholds` with the first of
    `midrange_percents` and `reaches`; when that scan finds no code region, the scans
    of the image halved (`halve`) with each of `half_midrange_percents` and
    `half_reaches` in turn (and `half_side_weight`: see `scan_finders`), then those of
    the image itself with each next pair of `midrange_percents` and `reaches`; the
    first of those scans that finds one is kept, with the first scan's patterns outside
    its regions added as loose ones (else the first scan's answer). The tiles'
    statistics are gathered once for all the scans of an image, and their
    neighbourhoods (the first scan's reach) once for the scans of that reach. Returns
    the clusters crossed by at least `min_hits` rows, most hits first (ties in the order
    found), at most `max_finders` of them, in pixels of `gray`; and what
    `select_regions` makes of the triples `find_triples` finds among those (`scale`:
    how many times smaller `gray` is than the `height` x `width` frame)."""
    tiles = block_statistics(gray, block, sample_step)
    # the neighbourhoods of the first scan's reach, kept for the rescans of that reach
    near = neighbourhood_statistics(tiles[0], tiles[1], tiles[2], tiles[3], reaches[0])
    found = _scan_thresholded(gray, near, midrange_percents[0], 0, 1, block, row_step,
                              min_contrast, min_edge, edge_floor, edge_percent, max_hits,
                              max_clusters, min_hits, max_finders, max_triples, scale,
                              height, width)
    if len(found[1]) > 0:
        return found
    # a halved image under 21 pixels a side holds no code's finder pattern
    if len(half_midrange_percents) > 0 and min(gray.shape) >= 42:
        small = halve(gray)
        small_tiles = block_statistics(small, block, sample_step)
        for v in range(len(half_midrange_percents)):
            stats = neighbourhood_statistics(small_tiles[0], small_tiles[1], small_tiles[2],
                                             small_tiles[3], half_reaches[v])
            again = _scan_thresholded(small, stats, half_midrange_percents[v],
                                      half_side_weight, 2, block, row_step, min_contrast,
                                      min_edge, edge_floor, edge_percent, max_hits,
                                      max_clusters, min_hits, max_finders, max_triples,
                                      scale, height, width)
            if len(again[1]) > 0:
                return _with_loose(again, found[0], scale, max_finders)
    for v in range(1, len(midrange_percents)):
        if reaches[v] == reaches[0]:
            stats = near
        else:
            stats = neighbourhood_statistics(tiles[0], tiles[1], tiles[2], tiles[3],
                                             reaches[v])
        again = _scan_thresholded(gray, stats, midrange_percents[v], 0, 1, block, row_step,
                                  min_contrast, min_edge, edge_floor, edge_percent,
                                  max_hits, max_clusters, min_hits, max_finders,
                                  max_triples, scale, height, width)
        if len(again[1]) > 0:
            return _with_loose(again, found[0], scale, max_finders)
    return found


@njit(nogil=True, cache=True)
def halve(gray):
    """The image at half size: means of 2x2 boxes, rounded half up, (a + b + c + d + 2)
    // 4 (an odd last row or column is left out). Two rows are summed into a row of
    pairs first, in loops that LLVM vectorises: 0.08-0.13 ms a frame over 300 kiosk
    frames (640x480 and 720p), where numpy's sums of four strided views took 0.29-0.35
    ms."""
    h, w = gray.shape
    oh, ow = h // 2, w // 2
    out = np.empty((oh, ow), np.uint8)
    pairs = np.empty(2 * ow, np.uint16)
    for oy in range(oh):
        upper = gray[2 * oy, :2 * ow]
        lower = gray[2 * oy + 1, :2 * ow]
        for x in range(2 * ow):
            pairs[x] = np.uint16(upper[x]) + np.uint16(lower[x])
        target = out[oy]
        for x in range(ow):
            target[x] = np.uint8((pairs[2 * x] + pairs[2 * x + 1] + np.uint16(2)) >> np.uint16(2))
    return out


@njit(nogil=True, cache=True)
def _with_loose(found, earlier, scale, max_finders):
    """`found` (a scan's answer) with the clusters of an `earlier` scan of the frame that
    lie in none of its code regions added as loose patterns, up to `max_finders`
    clusters in all: a frame whose first scan saw patterns (which would have sent the
    part of it around them to the robust pass) keeps them."""
    chosen, boxes, modules, polarities, used = found
    keep = np.zeros(len(earlier), np.bool_)
    room = max_finders - len(chosen)
    for i in range(len(earlier)):
        if room <= 0:
            break
        x, y = earlier[i, 0] * scale, earlier[i, 1] * scale
        inside = False
        for r in range(len(boxes)):
            if _inside(boxes[r, 0], boxes[r, 1], boxes[r, 2], boxes[r, 3], x, y):
                inside = True
                break
        if not inside:
            keep[i] = True
            room -= 1
    extra = earlier[keep]
    merged = np.empty((len(chosen) + len(extra), 5), np.float64)
    merged[:len(chosen)] = chosen
    merged[len(chosen):] = extra
    merged_used = np.zeros(len(merged), np.bool_)
    merged_used[:len(chosen)] = used
    return merged, boxes, modules, polarities, merged_used


@njit(nogil=True, cache=True)
def _scan_thresholded(image, stats, midrange_percent, side_weight, factor, block, row_step,
                      min_contrast, min_edge, edge_floor, edge_percent, max_hits,
                      max_clusters, min_hits, max_finders, max_triples, scale, height,
                      width):
    """One scan of `image` (the scanned image reduced `factor` times: 1 or 2) at the
    thresholds and edges that `tile_thresholds` makes of the neighbourhood statistics
    `stats` with `midrange_percent`, and the centre-run bound `side_weight` (see
    `scan_finders`): see `locate_finders`. The patterns come back in pixels of the
    unreduced scanned image."""
    thresholds, edges = tile_thresholds(stats[0], stats[1], stats[2], stats[3],
                                        min_contrast, min_edge, edge_floor, edge_percent,
                                        midrange_percent)
    hits = np.empty((max_hits, HIT_FIELDS), np.int64)
    n = scan_finders(image, thresholds, edges, block, row_step, hits, side_weight)
    clusters = np.empty((max_clusters, 5), np.float64)
    k = cluster_hits(hits, n, clusters)
    order = np.empty(k, np.int64)
    kept = 0
    for i in range(k):
        if clusters[i, 4] >= min_hits:
            # insertion sort, stable: an earlier cluster stays first among equal counts
            j = kept
            while j > 0 and clusters[order[j - 1], 4] < clusters[i, 4]:
                order[j] = order[j - 1]
                j -= 1
            order[j] = i
            kept += 1
    kept = min(kept, max_finders)
    chosen = np.empty((kept, 5), np.float64)
    for r in range(kept):
        chosen[r] = clusters[order[r]]
    triples = np.empty((max_triples, 4), np.float64)
    m = find_triples(chosen, kept, triples)
    boxes, modules, polarities, used = select_regions(chosen, triples[:m], factor * scale,
                                                      height, width)
    chosen[:, :3] *= factor
    return chosen, boxes, modules, polarities, used
