"""Numba kernels for reading and writing check-in CSV: bytes in, arrays out, and back.

Nothing here but `@njit` functions over contiguous arrays and scalars; `tracing.csvio`
checks inputs, calls them and deals with whatever they do not accept. The parser takes
only the plain shape of a row (digits, ISO 8601 `YYYY-MM-DD[T ]HH:MM:SS` with `Z` or a
`+HH:MM`/`+HHMM` offset) and flags every other line for the slow path in Python, which
either accepts it or names the reason.
"""

from __future__ import annotations

import numpy as np
from numba import njit

# Row status codes returned by parse_lines.
ROW_OK = 0
ROW_BLANK = 1
ROW_SLOW = 2

# Largest time accepted: 9999-12-31T23:59:59Z.
MAX_TIME = 253402300799

_COMMA = 44
_NL = 10
_CR = 13


@njit(cache=True, nogil=True)
def _days_from_civil(y, m, d):
    # Howard Hinnant's algorithm: days since 1970-01-01 of a proleptic Gregorian date.
    if m <= 2:
        y -= 1
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    mp = (m + 9) % 12
    doy = (153 * mp + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


@njit(cache=True, nogil=True)
def _days_in_month(y, m):
    if m == 2:
        leap = (y % 4 == 0 and y % 100 != 0) or y % 400 == 0
        return 29 if leap else 28
    if m == 4 or m == 6 or m == 9 or m == 11:
        return 30
    return 31


@njit(cache=True, nogil=True)
def _digits(buf, start, count):
    # The value of `count` ASCII digits at `start`, or -1 when one is not a digit.
    value = 0
    for k in range(start, start + count):
        c = buf[k]
        if c < 48 or c > 57:
            return -1
        value = value * 10 + (c - 48)
    return value


@njit(cache=True, nogil=True)
def _parse_uint(buf, start, end):
    # Unsigned decimal in buf[start:end] (at most 18 digits, so it fits int64); -1 if not.
    n = end - start
    if n <= 0 or n > 18:
        return -1
    return _digits(buf, start, n)


@njit(cache=True, nogil=True)
def _parse_time(buf, start, end):
    # Epoch seconds or strict ISO 8601 with an offset; -1 when the slow path must look.
    n = end - start
    if n <= 0:
        return -1
    if n <= 12:
        value = _digits(buf, start, n)
        return value if 0 <= value <= MAX_TIME else -1
    if n < 20 or buf[start + 4] != 45 or buf[start + 7] != 45:
        return -1
    sep = buf[start + 10]
    if (sep != 84 and sep != 32) or buf[start + 13] != 58 or buf[start + 16] != 58:
        return -1
    y = _digits(buf, start, 4)
    mo = _digits(buf, start + 5, 2)
    d = _digits(buf, start + 8, 2)
    h = _digits(buf, start + 11, 2)
    mi = _digits(buf, start + 14, 2)
    s = _digits(buf, start + 17, 2)
    if y < 0 or mo < 1 or mo > 12 or d < 1 or h < 0 or h > 23 or mi < 0 or mi > 59:
        return -1
    if s < 0 or s > 59 or d > _days_in_month(y, mo):
        return -1
    p = start + 19
    offset = 0
    if n == 20 and buf[p] == 90:  # "Z"
        offset = 0
    elif buf[p] == 43 or buf[p] == 45:  # "+" or "-"
        if n == 25 and buf[p + 3] == 58:
            oh = _digits(buf, p + 1, 2)
            om = _digits(buf, p + 4, 2)
        elif n == 24:
            oh = _digits(buf, p + 1, 2)
            om = _digits(buf, p + 3, 2)
        else:
            return -1
        if oh < 0 or oh > 23 or om < 0 or om > 59:
            return -1
        offset = oh * 3600 + om * 60
        if buf[p] == 45:
            offset = -offset
    else:
        return -1
    t = _days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s - offset
    return t if 0 <= t <= MAX_TIME else -1


@njit(cache=True, nogil=True)
def parse_lines(buf, person, venue, t_in, t_out, status, line_start, line_end):
    """Parse every line of `buf` (uint8, whole lines) into the output columns.

    Outputs have room for one entry per line. Returns the number of lines. `status` is
    ROW_OK, ROW_BLANK (empty line) or ROW_SLOW (anything else: Python decides);
    `line_start`/`line_end` locate each line without its line break. A missing or
    empty check-out is 0.
    """
    n = buf.shape[0]
    row = 0
    pos = 0
    while pos < n:
        end = pos
        while end < n and buf[end] != _NL:
            end += 1
        next_pos = end + 1
        if end > pos and buf[end - 1] == _CR:
            end -= 1
        line_start[row] = pos
        line_end[row] = end
        if end == pos:
            status[row] = ROW_BLANK
            row += 1
            pos = next_pos
            continue
        status[row] = ROW_SLOW
        # Split into at most four fields.
        f1 = pos
        while f1 < end and buf[f1] != _COMMA:
            f1 += 1
        f2 = f1 + 1
        while f2 < end and buf[f2] != _COMMA:
            f2 += 1
        f3 = f2 + 1
        while f3 < end and buf[f3] != _COMMA:
            f3 += 1
        if f2 >= end:
            row += 1
            pos = next_pos
            continue
        f4 = end
        if f3 < end:
            f4 = f3 + 1
            while f4 < end and buf[f4] != _COMMA:
                f4 += 1
            if f4 < end:  # a fifth field
                row += 1
                pos = next_pos
                continue
        p = _parse_uint(buf, pos, f1)
        v = _parse_uint(buf, f1 + 1, f2)
        ti = _parse_time(buf, f2 + 1, min(f3, end))
        to = 0
        if f3 < end and f3 + 1 < end:
            to = _parse_time(buf, f3 + 1, end)
            if to <= ti:
                to = -1
        if p >= 0 and v >= 0 and ti >= 0 and to >= 0:
            person[row] = p
            venue[row] = v
            t_in[row] = ti
            t_out[row] = to
            status[row] = ROW_OK
        row += 1
        pos = next_pos
    return row


@njit(cache=True, nogil=True)
def _write_uint(out, pos, value):
    # Write a non-negative int64 in decimal at out[pos:]; returns the new position.
    if value == 0:
        out[pos] = 48
        return pos + 1
    digits = 0
    v = value
    while v > 0:
        digits += 1
        v //= 10
    k = pos + digits - 1
    v = value
    while v > 0:
        out[k] = 48 + v % 10
        v //= 10
        k -= 1
    return pos + digits


@njit(cache=True, nogil=True)
def format_rows(person, venue, t_in, t_out, out):
    """Write rows `person,venue,t_in,t_out\\n` into `out` (uint8, >= 84 bytes a row).

    A t_out of 0 or less is written as an empty field. Ids must be below 2^63.
    Returns the number of bytes written.
    """
    pos = 0
    for i in range(person.shape[0]):
        pos = _write_uint(out, pos, person[i])
        out[pos] = _COMMA
        pos = _write_uint(out, pos + 1, venue[i])
        out[pos] = _COMMA
        pos = _write_uint(out, pos + 1, t_in[i])
        out[pos] = _COMMA
        pos += 1
        if t_out[i] > 0:
            pos = _write_uint(out, pos, t_out[i])
        out[pos] = _NL
        pos += 1
    return pos


def empty_columns(n: int) -> tuple[np.ndarray, ...]:
    """Output buffers for parse_lines with room for `n` lines."""
    return (np.empty(n, np.int64), np.empty(n, np.int64), np.empty(n, np.int64),
            np.empty(n, np.int64), np.empty(n, np.uint8), np.empty(n, np.int64),
            np.empty(n, np.int64))
