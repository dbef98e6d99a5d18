"""A minimal browser for OAuth consent pages: follow the authorize URL, press Allow or Deny.

Used by end-to-end tests and the demo to drive the real redirect chain (host -> CRM consent
page -> host callback) over HTTP, the way a user's browser would.
"""

from __future__ import annotations

from html.parser import HTMLParser
from urllib.parse import urljoin

import httpx

__all__ = ["ConsentPageError", "consent"]


class ConsentPageError(RuntimeError):
    """The authorize URL did not lead to a consent form with the wanted button."""


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.method = "get"
        self.fields: dict[str, str] = {}
        self.buttons: dict[str, tuple[str, str]] = {}  # label value -> (name, value)
        self._in_form = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form" and self.action is None:
            self._in_form = True
            self.action = a.get("action", "")
            self.method = a.get("method", "get").lower()
        elif self._in_form and tag == "input" and a.get("type", "text") == "hidden" and a.get("name"):
            self.fields[a["name"]] = a.get("value", "")
        elif self._in_form and tag == "button" and a.get("name"):
            self.buttons[a.get("value", "").lower()] = (a["name"], a.get("value", ""))

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._in_form = False


async def consent(client: httpx.AsyncClient, authorize_url: str, *, decision: str = "allow") -> str:
    """Open ``authorize_url``, submit the consent form with ``decision``; return the redirect target.

    Raises:
        ConsentPageError: no form, no such button, or no redirect after submitting.
    """
    page = await client.get(authorize_url, follow_redirects=True)
    if page.status_code != 200:
        raise ConsentPageError(f"authorize URL answered {page.status_code}: {page.text[:200]}")
    form = _FormParser()
    form.feed(page.text)
    if form.action is None:
        raise ConsentPageError("the authorize URL returned no form")
    button = form.buttons.get(decision.lower())
    if button is None:
        raise ConsentPageError(f"the consent form has no {decision!r} button (has {sorted(form.buttons)})")
    data = {**form.fields, button[0]: button[1]}
    target = urljoin(str(page.url), form.action)
    answer = (
        await client.post(target, data=data)
        if form.method == "post"
        else await client.get(target, params=data)
    )
    if answer.status_code not in (301, 302, 303, 307):
        raise ConsentPageError(f"the consent form answered {answer.status_code}, not a redirect")
    return answer.headers["location"]
