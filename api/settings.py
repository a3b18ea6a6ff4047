"""The service's settings: built once by `qrtrace serve` (or a test) and passed down.

Nothing reads the environment or module-level globals after start-up: `Settings` is made
at the entry point and handed to `create_app`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from api.ratelimit import ScanLimits

VIETNAM_OFFSET_S = 7 * 3600


@dataclass(frozen=True, repr=False)
class Secret:
    """A secret string that never shows in a repr, a log line or a traceback."""

    value: str

    def __repr__(self) -> str:
        return "Secret('**********')"


@dataclass(frozen=True)
class Limits:
    """Input limits of the HTTP API that are settings (requests beyond them are refused
    with 413 or 422); the sizes of JSON bodies (items, frames, field lengths) are bounds
    of the models in api/schemas.py."""

    max_body_bytes: int = 32 * 1024 * 1024   # a packed batch of 200,000 scans is 16.6 MB
    max_packed_rows: int = 400_000           # rows in one packed-v1 body
    future_skew_s: int = 300                 # a scan may be this far ahead of our clock


@dataclass(frozen=True)
class Settings:
    """Everything `create_app` needs. `data` is the data folder (keys, index, registry,
    audit log); `kafka` a bootstrap address to produce scans to Kafka instead of the
    embedded index; `admin_token` from QRTRACE_ADMIN_TOKEN (else one is created and
    printed once)."""

    data: Path
    kafka: str | None = None
    admin_token: Secret | None = None
    retention_days: int = 21
    tz_offset_s: int = VIETNAM_OFFSET_S
    scan_limits: ScanLimits = field(default_factory=ScanLimits)
    limits: Limits = field(default_factory=Limits)
    purge_every_s: float = 6 * 3600          # how often expired check-ins are deleted
    topic: str = "qrtrace.scans"
    group: str = "qrtrace-index"
    # an official's exposure page waits for its audit line's fsync (True), or only for its
    # write, the fsync following at once (False: see api/audit.py)
    audit_fsync_before_answer: bool = False
    # shard servers (`qrtrace shard`) whose check-ins officials' traces also cover, asked
    # with shard_token (QRTRACE_SHARD_TOKEN)
    shards: tuple[str, ...] = ()
    shard_token: Secret | None = None
