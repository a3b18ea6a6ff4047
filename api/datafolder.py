"""The data folder as the commands see it: its key ring and its index, opened together."""

from __future__ import annotations

from pathlib import Path

from api.cli import UsageError
from api.keystore import KEYS_FILE, KeystoreError, load_keyring
from decoder import KeyRing
from ingest.runtime import index_path, private_data_folder
from tracing.errors import TracingError
from tracing.index import CheckinIndex


def open_keys_and_index(data: Path) -> tuple[KeyRing, CheckinIndex]:
    """The key ring of `data`, which must exist (scans are verified with the keys that
    issued their tokens: a fresh ring would call every one forged), and its index
    (created on first use).

    Raises UsageError naming the folder and what is wrong with it.
    """
    if not (data / KEYS_FILE).is_file():
        raise UsageError(f"{data} holds no {KEYS_FILE}: scans are verified with the keys that "
                         "issued their tokens; name the data folder of the server (or of "
                         "qrtrace issue) that issued them")
    try:
        return load_keyring(data, create=False), open_index(data)  # makes the folder private
    except (KeystoreError, OSError) as exc:
        raise UsageError(f"cannot open the data folder {data}: {exc}") from None


def open_index(data: Path, retention_days: int | None = None) -> CheckinIndex:
    """The index of `data` (created on first use), with `retention_days` stored (None:
    the folder's, 21 for a new one). Raises UsageError naming the folder and the
    problem."""
    try:
        private_data_folder(data)
        return CheckinIndex.open(index_path(data), retention_days=retention_days)
    except (TracingError, OSError) as exc:
        raise UsageError(f"cannot open the data folder {data}: {exc}") from None
