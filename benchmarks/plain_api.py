"""The peer of the API benchmark: the plain FastAPI-and-pydantic per-item path.

    python -m benchmarks.plain_api --data DIR --port P

What a straightforward FastAPI service does with the same parts: a pydantic model per
scan, FastAPI's dependencies for the bearer token, and per item one token verification
and one index append (durable, so one fsync each unless appends overlap). It serves

    POST /plain/scan    one ScanIn                       -> {"seq", "status", "reason"?}
    POST /plain/scans   {"scans": [ScanIn, ...]}         -> {"accepted", "duplicates", ...}

over its own data folder (the index belongs to one process), with a device registered
by `prepare_device`. Not part of qrtrace: only the benchmark starts it.
"""

# no `from __future__ import annotations`: FastAPI must resolve the closures in Annotated

import argparse
from pathlib import Path
from typing import Annotated

import numpy as np
import uvicorn
from fastapi import Depends, FastAPI, HTTPException
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.keystore import load_keyring
from api.registry import Principal, Registry
from api.schemas import ScanBatchIn, ScanIn
from decoder import Kind, verify_token
from ingest.runtime import index_path
from tracing.index import CheckinIndex


def build_app(data: Path) -> FastAPI:
    """The plain app over `data` (keys, registry and index opened at once)."""
    keyring = load_keyring(data)
    registry = Registry(data)
    index = CheckinIndex.open(index_path(data))
    app = FastAPI()
    bearer = HTTPBearer()

    def device(credentials: Annotated[HTTPAuthorizationCredentials, Depends(bearer)]
               ) -> Principal:
        found = registry.authenticate(credentials.credentials)
        if found is None or found.role != "device":
            raise HTTPException(401, "not a device token")
        return found

    def store(scan: ScanIn, who: Principal) -> dict:
        checked = verify_token(scan.token, keyring)
        if not checked.ok or checked.kind is not Kind.PERSON:
            return {"seq": scan.seq, "status": "rejected", "reason": f"token: {checked.reason}"}
        result = index.append(np.array([checked.id], np.uint64),
                              np.array([who.venue], np.uint64),
                              np.array([scan.time], np.int64),
                              np.array([scan.check_out or 0], np.int64))
        return {"seq": scan.seq, "status": "duplicate" if result.duplicates else "accepted"}

    @app.post("/plain/scan")
    def plain_scan(scan: ScanIn, who: Annotated[Principal, Depends(device)]) -> dict:
        return store(scan, who)

    @app.post("/plain/scans")
    def plain_scans(body: ScanBatchIn, who: Annotated[Principal, Depends(device)]) -> dict:
        results = [store(scan, who) for scan in body.scans]
        statuses = [r["status"] for r in results]
        return {"accepted": statuses.count("accepted"),
                "duplicates": statuses.count("duplicate"),
                "rejected": statuses.count("rejected"), "results": results}

    return app


def main() -> None:
    """Serve the plain app until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(build_app(args.data), host="127.0.0.1", port=args.port, log_level="warning",
                access_log=False)


if __name__ == "__main__":
    main()
