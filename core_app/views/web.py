"""The chat page: `GET /` is core_app/static/index.html, and Flask's static route serves the files it loads
under /static/. Plain files shipped in the package, no build step.

Both are sent with a strict Content-Security-Policy: scripts, styles and connections from this origin
only, nothing inline, no framing. Should a message's text ever reach the page as markup, the browser
would still run none of it. No cache keeps a copy without asking: each load revalidates (a 304 when
nothing changed), so a deploy replaces the page and its assets together.
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app, request

bp = Blueprint("web", __name__)

PAGE = "index.html"
CONTENT_SECURITY_POLICY = "; ".join((
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "connect-src 'self'",
    "object-src 'none'",
    "frame-ancestors 'none'",
    "base-uri 'none'",
    "form-action 'self'",
))
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    # The page's URLs hold ids, never secrets; still, no other site learns them.
    "Referrer-Policy": "no-referrer",
}
PAGE_ENDPOINTS = ("web.index", "static")


@bp.get("/")
def index() -> Response:
    return current_app.send_static_file(PAGE)


@bp.after_app_request
def _page_headers(response: Response) -> Response:
    if request.endpoint not in PAGE_ENDPOINTS:
        return response
    response.headers.update(PAGE_HEADERS)
    if response.status_code < 400:
        # Kept, but revalidated on every use (ETag, Last-Modified): never stale after a deploy.
        response.headers["Cache-Control"] = "no-cache"
    return response
