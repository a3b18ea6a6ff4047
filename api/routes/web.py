"""The officials' page: `/` and its static files under `/static/` (no token needed to load
the page; every figure on it comes from the token-protected API, fetched by app.js).

The files live in api/web/ and are served as they are: no build step, nothing from
another origin. Every answer carries headers that keep the page to itself:

    Content-Security-Policy   scripts, styles and fetches from this origin only (no inline
                              script, no eval), pictures also from blob: (downloads, charts)
    X-Content-Type-Options    nosniff
    Referrer-Policy           no-referrer
    X-Frame-Options           DENY (and frame-ancestors 'none')

Only the files named in STATIC_FILES are served; any other name is 404, so no path
can reach outside the folder.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.responses import Response

WEB_DIR = Path(__file__).resolve().parents[1] / "web"

STATIC_FILES = {
    "app.js": "text/javascript; charset=utf-8",
    "case.js": "text/javascript; charset=utf-8",
    "adoption.js": "text/javascript; charset=utf-8",
    "charts.js": "text/javascript; charset=utf-8",
    "i18n.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}

CONTENT_SECURITY_POLICY = "; ".join((
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' blob: data:",
    "connect-src 'self'",
    "font-src 'none'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
))

SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
    # The files change with the code: the browser asks again (a 304-less small reload).
    "Cache-Control": "no-cache",
}

router = APIRouter(include_in_schema=False)


def _file(name: str, media_type: str) -> Response:
    try:
        body = (WEB_DIR / name).read_bytes()
    except FileNotFoundError:
        raise HTTPException(404, f"no file {name!r} in the page's folder") from None
    return Response(body, media_type=media_type, headers=SECURITY_HEADERS)


@router.get("/")
def page() -> Response:
    """The officials' page (index.html)."""
    return _file("index.html", "text/html; charset=utf-8")


@router.get("/static/{name}")
def static_file(name: str) -> Response:
    """One of the page's files (STATIC_FILES); any other name is 404."""
    media_type = STATIC_FILES.get(name)
    if media_type is None:
        raise HTTPException(404, f"no static file {name!r}")
    return _file(name, media_type)
