"""The try-it page: static files shipped in the package, served as they are.

The page talks only to the public API, with URLs relative to its own
(`<prefix>/ui/` → `<prefix>/v1/…`), so it works under any route prefix and
behind a proxy that strips one. Hidden from the schema: it is not API.
"""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter
from fastapi.responses import RedirectResponse, Response

from voicegraph.core.errors import NotFoundError

router = APIRouter(include_in_schema=False)

_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css"}
_STATIC = resources.files(__package__) / "static"
_FILES = {
    entry.name: (entry.read_bytes(), _TYPES[entry.name[entry.name.rindex("."):]] + "; charset=utf-8")
    for entry in _STATIC.iterdir()
    if entry.is_file()
}

# The page runs only its own files; its audio plays from blob: URLs made of API answers.
_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; media-src 'self' blob:; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    # A redeploy changes the files under the same names.
    "Cache-Control": "no-cache",
}


@router.get("/")
@router.get("/ui")
async def to_page() -> RedirectResponse:
    # Relative, so the browser stays under whatever prefix it came through.
    return RedirectResponse("ui/", status_code=307)


@router.get("/ui/")
async def page() -> Response:
    return await page_file("index.html")


@router.get("/ui/{name}")
async def page_file(name: str) -> Response:
    if name not in _FILES:
        raise NotFoundError(f"the page has no file {name!r}")
    data, media_type = _FILES[name]
    return Response(data, media_type=media_type, headers=_HEADERS)
