"""DATA/revoked.json: the revoked token ids, exported for Kafka workers.

The registry (api/registry.py, SQLite) is where a revocation is made and what the API
checks. A worker on another machine has no registry: `qrtrace serve` writes the whole
list to revoked.json after each revocation (and at start), and a worker reads it with
`--revoked FILE` (default DATA/revoked.json: a copy, or the server's file on shared
storage), again whenever it changes::

    {"format": "qrtrace-revocations", "version": 1,
     "person": [17, 204], "venue": [9]}

Written atomically (temporary file, fsync, rename, folder fsync) under DATA/keys.lock, the
lock of the key ring, from the registry as it is at that moment: the file written last
holds every revocation made before it.

Errors::

    RevocationFileError (Exception)   the file is not a revocation list
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from api.filewatch import WatchedFile
from api.keystore import locked
from decoder import RevocationList
from tracing.storage import write_json

REVOKED_FILE = "revoked.json"
FORMAT = "qrtrace-revocations"
logger = logging.getLogger("qrtrace.keys")


class RevocationFileError(Exception):
    """A revocation file that cannot be read as one."""


def export_revocations(data_dir: Path, registry) -> None:
    """Write the registry's revoked ids to DATA/revoked.json."""
    with locked(data_dir):
        pairs = registry.revoked_token_ids()
        doc = {"format": FORMAT, "version": 1,
               "person": sorted(i for kind, i in pairs if kind == "person"),
               "venue": sorted(i for kind, i in pairs if kind == "venue")}
        write_json(Path(data_dir) / REVOKED_FILE, doc)


def read_revocations(path: Path) -> RevocationList:
    """The list in `path`; an empty one when there is no file. Raises
    RevocationFileError."""
    try:
        doc = json.loads(Path(path).read_bytes())
    except FileNotFoundError:
        return RevocationList.of(())
    except (OSError, ValueError) as exc:
        raise RevocationFileError(f"{path}: cannot read a revocation list ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or doc.get("version") != 1:
        raise RevocationFileError(f"{path}: not a {FORMAT} file of version 1")
    try:
        return RevocationList.of([*(("person", i) for i in doc["person"]),
                                  *(("venue", i) for i in doc["venue"])])
    except (KeyError, TypeError, ValueError) as exc:
        raise RevocationFileError(f"{path}: a bad id list ({exc})") from None


class RevocationFile(WatchedFile[RevocationList]):
    """A revocation file read again when it changes (api/filewatch.WatchedFile), as a
    worker checks scans against it; no file: nothing is revoked (logged). Raises
    RevocationFileError if the file is not a revocation list."""

    def __init__(self, path: str | Path) -> None:
        super().__init__(path, read_revocations, RevocationFileError, "revocation list")
        if not self.path.exists():
            logger.warning("no revocation list yet: no token is refused as revoked",
                           extra={"fields": {"path": str(self.path)}})
