"""Several accounts of one CRM app behind one URL: each request reaches the account it belongs to."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from crmhost.sandbox import Sandbox, running
from crmhost.sandbox.accounts import Accounts, account_url, login_cookies

from .conftest import ToySandbox

REDIRECT = "https://host.example/v1/oauth/callback"


class ToyAccount(ToySandbox):
    """The toy CRM with an account id of its own, so the default ``new_account`` applies."""

    def __init__(self, *, client_id: str | None = None, client_secret: str | None = None) -> None:
        self.notes = {}
        Sandbox.__init__(
            self, client_id=client_id, client_secret=client_secret, account_id=secrets.token_hex(4)
        )


@pytest.fixture(name="front")
def fx_front() -> Accounts:
    first = ToyAccount()
    return Accounts([first, first.new_account(), first.new_account()])


@pytest.fixture(name="url")
def fx_url(front: Accounts) -> Iterator[str]:
    with running(front) as url:
        yield url


def _connect(url: str, front: Accounts, n: int) -> dict[str, str]:
    """The OAuth dance of an admin logged in to account ``n``: consent, then the code exchange."""
    app = front.boxes[0]
    params = {"client_id": app.client_id, "redirect_uri": REDIRECT, "response_type": "code", "state": "s"}
    with httpx.Client(base_url=url, cookies=login_cookies(n)) as browser:
        page = browser.get("/oauth/authorize", params=params)
        assert page.status_code == 200, page.text
        assert f"<strong>{front.boxes[n].account_id}</strong>" in page.text
        decided = browser.post("/oauth/authorize", data={**params, "decision": "allow"})
    code = parse_qs(urlsplit(decided.headers["location"]).query)["code"][0]
    with httpx.Client(base_url=url) as host:  # the host's call: no cookie, only the code
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT}
        answer = host.post(
            "/oauth/token", data={**form, "client_id": app.client_id, "client_secret": app.client_secret}
        )
    assert answer.status_code == 200, answer.text
    tokens: dict[str, str] = answer.json()
    return tokens


def test_the_accounts_are_one_app_with_accounts_of_their_own(front: Accounts) -> None:
    assert len({b.client_id for b in front.boxes}) == 1
    assert len({b.account_id for b in front.boxes}) == 3
    with pytest.raises(ValueError, match="same app"):
        Accounts([ToyAccount(), ToyAccount()])
    with pytest.raises(ValueError, match="twice"):
        Accounts([front.boxes[0], front.boxes[0]])


def test_each_connect_reaches_the_account_its_admin_is_logged_in_to(front: Accounts, url: str) -> None:
    with httpx.Client(timeout=10) as admin:
        admin.post(f"{account_url(url, 2)}/_sandbox/seed/notes", json=[{"text": "in account 2"}])
    two, one = _connect(url, front, 2), _connect(url, front, 1)
    with httpx.Client(base_url=url, timeout=10) as host:
        mine = host.get("/notes/1", headers={"Authorization": f"Bearer {two['access_token']}"})
        other = host.get("/notes/1", headers={"Authorization": f"Bearer {one['access_token']}"})
        app = front.boxes[0]
        form = {"grant_type": "refresh_token", "refresh_token": two["refresh_token"]}
        refreshed = host.post(
            "/oauth/token", data={**form, "client_id": app.client_id, "client_secret": app.client_secret}
        ).json()
        again = host.get("/notes/1", headers={"Authorization": f"Bearer {refreshed['access_token']}"})
    assert mine.status_code == 200 and mine.json()["text"] == "in account 2"
    assert other.status_code == 404  # account 1 has no notes
    assert again.status_code == 200
    assert [b.stats.snapshot()["calls"].get("GET /notes/{note_id}", 0) for b in front.boxes] == [0, 1, 2]


def test_what_names_no_account_goes_to_the_first(front: Accounts, url: str) -> None:
    with httpx.Client(base_url=url, timeout=10) as c:
        minted = c.post("/_sandbox/token", json={"scopes": ["notes"]}).json()
        c.post("/_sandbox/seed/notes", json=[{"text": "first"}])
        read = c.get("/notes/1", headers={"Authorization": f"Bearer {minted['access_token']}"})
        nowhere = c.get(f"{account_url(url, 3)}/_sandbox/stats")
    assert read.status_code == 200 and read.json()["text"] == "first"
    first, second = front.boxes[:2]
    assert isinstance(first, ToyAccount) and isinstance(second, ToyAccount)
    assert list(first.notes) == ["1"] and not second.notes
    assert nowhere.status_code == 404 and "no account '3'" in nowhere.json()["error"]
