"""The physician's viewer page: ``GET /view`` of the link service.

A static page and its script (``static/viewer.js``): the link follows in the URL fragment
(``/view#shlink:/…``), which browsers never send to a server, and the script fetches the
manifest, decrypts every file with Web Crypto and shows the summary, the records and the
photos — the key never leaves the browser. The page itself carries no data: it is the same
for every link. The CSP (script-src 'self', connect-src 'self', no inline script or style) is
the link service's, so this viewer opens the links of its own service only.
"""

from __future__ import annotations

from flask import Blueprint, Response, render_template

bp = Blueprint("viewer", __name__)


@bp.get("/view")
def view() -> Response:
    """The viewer page (the same for every link: the link stays in the fragment)."""
    response = Response(render_template("viewer.html"))
    # The fragment holds the key: no Referer from this page, whatever the server's default.
    response.headers["Referrer-Policy"] = "no-referrer"
    return response
