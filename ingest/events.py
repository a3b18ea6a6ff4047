"""Scan events: one scan at a check-in point, and a batch of them held as columns.

A scan event is what a check-in point reports: the venue (from the device's binding), the
device id, the device's sequence number (so that a retried upload is recognisable), the
time of the scan, an optional check-out, and what was scanned: the person's token text,
or a camera frame (encoded PNG/JPEG/WebP bytes) that the worker decodes.

`ScanBatch` holds many events as numpy columns, the shape in which the worker verifies
tokens and appends to the index in one call each.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from decoder import TOKEN_LEN

TOKEN_DTYPE = np.dtype(f"S{TOKEN_LEN}")


@dataclass(frozen=True, slots=True)
class ScanEvent:
    """One scan. Times are integer seconds since the Unix epoch (UTC); t_out 0 = none.

    Exactly one of `token` (the scanned text) and `frame` (encoded image bytes) is set.
    """

    venue: int
    device: int
    seq: int
    t_in: int
    token: str | None = None
    frame: bytes | None = None
    t_out: int = 0


@dataclass(frozen=True)
class ScanBatch:
    """Scan events as columns, one row per event, in order.

    venue, device, seq: uint64; t_in, t_out: int64 (t_out 0 = none); token: S43 (empty
    where the row carries a frame instead); frames: row number -> encoded image bytes.
    """

    venue: np.ndarray
    device: np.ndarray
    seq: np.ndarray
    t_in: np.ndarray
    t_out: np.ndarray
    token: np.ndarray
    frames: dict[int, bytes] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.venue.shape[0])

    @classmethod
    def empty(cls) -> ScanBatch:
        """A batch of no events."""
        u, i = np.empty(0, np.uint64), np.empty(0, np.int64)
        return cls(u, u, u, i, i, np.empty(0, TOKEN_DTYPE))

    @classmethod
    def of(cls, events: list[ScanEvent]) -> ScanBatch:
        """Columns of `events`. Token texts must be ASCII (wire decoding checks that)."""
        n = len(events)
        frames = {i: e.frame for i, e in enumerate(events) if e.frame is not None}
        tokens = np.array([(e.token or "").encode("ascii") for e in events], dtype=TOKEN_DTYPE)
        return cls(
            np.fromiter((e.venue for e in events), np.uint64, n),
            np.fromiter((e.device for e in events), np.uint64, n),
            np.fromiter((e.seq for e in events), np.uint64, n),
            np.fromiter((e.t_in for e in events), np.int64, n),
            np.fromiter((e.t_out for e in events), np.int64, n),
            tokens.reshape(n),
            frames,
        )

    def events(self) -> list[ScanEvent]:
        """The rows as ScanEvent objects (for tests and small batches)."""
        out = []
        for i in range(len(self)):
            frame = self.frames.get(i)
            out.append(ScanEvent(
                int(self.venue[i]), int(self.device[i]), int(self.seq[i]), int(self.t_in[i]),
                None if frame is not None else self.token[i].decode("ascii"),
                frame, int(self.t_out[i]),
            ))
        return out

    def take(self, rows: np.ndarray) -> ScanBatch:
        """The rows selected by an index array or a boolean mask, in order."""
        idx = np.flatnonzero(rows) if rows.dtype == bool else rows
        frames = {}
        if self.frames:  # most batches carry tokens only: no map of rows to build
            back = {int(r): j for j, r in enumerate(idx.tolist())}
            frames = {back[r]: f for r, f in self.frames.items() if r in back}
        return ScanBatch(self.venue[idx], self.device[idx], self.seq[idx], self.t_in[idx],
                         self.t_out[idx], self.token[idx], frames)


def concat(batches: list[ScanBatch]) -> ScanBatch:
    """One batch holding the rows of `batches` in order."""
    if not batches:
        return ScanBatch.empty()
    if len(batches) == 1:
        return batches[0]
    frames: dict[int, bytes] = {}
    start = 0
    for b in batches:
        frames.update({start + r: f for r, f in b.frames.items()})
        start += len(b)
    cols = [np.concatenate([getattr(b, name) for b in batches])
            for name in ("venue", "device", "seq", "t_in", "t_out", "token")]
    return ScanBatch(*cols, frames)
