"""Rendering: the template with its stylesheet, script and the report's data inlined, so that
the page is one file that opens from disk with no network.

Every piece of data reaches the page only as JSON inside a non-executable script element, with
`<`, `>` and `&` escaped, and the script writes it into the page as text, never as markup: an
account named `</script><script>...` stays a name. A Content-Security-Policy that allows only
this script (by hash) and no network at all backs that up.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import re
from importlib import resources

_ASSETS = resources.files("healthscore.report")
_SLOT = re.compile(r"__(CSP|TITLE|STYLE|DATA|SCRIPT)__")
_JSON_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def render(payload: dict) -> str:
    style, script = (_ASSETS / "report.css").read_text(), (_ASSETS / "report.js").read_text()
    csp = (f"default-src 'none'; script-src '{_digest(script)}'; style-src '{_digest(style)}'; "
           "img-src data:; base-uri 'none'; form-action 'none'")
    slots = {"CSP": csp, "TITLE": _text(payload["title"]), "STYLE": style, "DATA": script_json(payload), "SCRIPT": script}
    # one pass over the template only: nothing inserted is searched for slots again
    return _SLOT.sub(lambda m: slots[m.group(1)], (_ASSETS / "template.html").read_text())


def script_json(payload: dict) -> str:
    """JSON that cannot end its <script> element or open a comment, and that JavaScript parses."""
    text = json.dumps(payload, ensure_ascii=False, allow_nan=False, separators=(",", ":"), default=_iso)
    return re.sub("[<>&\u2028\u2029]", lambda m: _JSON_ESCAPES[m.group()], text)


def _digest(source: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(source.encode()).digest()).decode()


def _text(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def _iso(value):
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    raise TypeError(f"cannot put {type(value).__name__} into the report's data")
