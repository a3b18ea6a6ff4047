"""`/docs`: the API's Swagger UI, served from this server alone.

FastAPI's own /docs page loads Swagger UI from a CDN: offline, or where the browser may
reach nothing else, it was a blank page. The Swagger UI files (5.x: it draws OpenAPI 3.1)
come from the fastapi-offline package instead, and the page starts them with a script of
ours (no inline script) on /openapi.json. Only the files named in FILES are served.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.responses import HTMLResponse, Response

FILES = {
    "swagger-ui.css": "text/css; charset=utf-8",
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "favicon.png": "image/png",
}
START = Path(__file__).resolve().parents[1] / "web" / "docs.js"


def _swagger_folder() -> Path:
    import fastapi_offline

    return Path(fastapi_offline.__file__).resolve().parent / "static"


PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>qrtrace API</title>
<link rel="icon" type="image/png" href="/docs/favicon.png">
<link rel="stylesheet" href="/docs/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/docs/swagger-ui-bundle.js"></script>
<script src="/docs/start.js"></script>
</body>
</html>
"""

# Swagger UI sets style attributes as it draws, hence 'unsafe-inline' for styles only.
HEADERS = {
    "Content-Security-Policy": "; ".join((
        "default-src 'none'", "script-src 'self'", "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:", "connect-src 'self'", "base-uri 'none'",
        "form-action 'none'", "frame-ancestors 'none'")),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}

router = APIRouter(include_in_schema=False)


@router.get("/docs")
def docs() -> HTMLResponse:
    return HTMLResponse(PAGE, headers=HEADERS)


@router.get("/docs/start.js")
def start() -> Response:
    return Response(START.read_bytes(), media_type="text/javascript; charset=utf-8",
                    headers=HEADERS)


@router.get("/docs/{name}")
def swagger_file(name: str) -> Response:
    media_type = FILES.get(name)
    if media_type is None:
        raise HTTPException(404, f"no file {name!r} here")
    return Response((_swagger_folder() / name).read_bytes(), media_type=media_type,
                    headers={**HEADERS, "Cache-Control": "max-age=86400"})
