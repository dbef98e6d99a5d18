"""The sandbox's CRM API under ``/crm/v8``: records, upsert, deleted records, COQL, metadata, watch.

Each handler takes the decoded request and answers ``(status, body)``; :mod:`.app` does the
authentication, the concurrency cap and Zoho's error bodies around them.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from crmhost_zoho.sandbox.coql import run_query
from crmhost_zoho.sandbox.schema import JSON_TYPES, field_meta
from crmhost_zoho.sandbox.search import matcher
from crmhost_zoho.sandbox.store import Org, ZohoError, error_entry, project

__all__ = ["DISCRETE_LIMIT", "Channel", "ZohoApi"]

#: records ``page`` may reach; past them only ``page_token`` pages
DISCRETE_LIMIT = 2000
MAX_PER_PAGE = 200
#: how long a channel lives unless the request says, and at most
DEFAULT_CHANNEL = timedelta(hours=1)
MAX_CHANNEL = timedelta(days=7)
_OPS = {"create": "insert", "edit": "update", "delete": "delete"}
#: the ``type``s of ``GET /users`` Zoho documents, and whether the org's one user (an active,
#: confirmed administrator) is of it
_USER_TYPES = {
    "AllUsers": True,
    "ActiveUsers": True,
    "ActiveConfirmedUsers": True,
    "ConfirmedUsers": True,
    "AdminUsers": True,
    "ActiveConfirmedAdmins": True,
    "CurrentUser": True,
    "DeactiveUsers": False,
    "NotConfirmedUsers": False,
    "DeletedUsers": False,
}


@dataclass
class Channel:
    """One notification channel."""

    channel_id: str
    events: list[str]
    expiry: datetime
    notify_url: str
    token: str | None = None
    affected_values: bool = False

    def wants(self, module: str, operation: str) -> bool:
        """Whether the channel watches ``operation`` (insert/update/delete) on ``module``."""
        for event in self.events:
            name, _, op = event.partition(".")
            if name == module and (op == "all" or _OPS.get(op) == operation):
                return True
        return False


@dataclass
class _PageToken:
    key: tuple[str, str | None, str, str]
    offset: int
    expires: datetime


@dataclass
class ZohoApi:
    """The API's state beside the org: page tokens and channels."""

    org: Org
    api_domain: Callable[[], str]
    org_meta: Callable[[], dict[str, Any]]
    allow_field_creation: bool = True
    channels: dict[str, Channel] = field(default_factory=dict)
    page_tokens: dict[str, _PageToken] = field(default_factory=dict)

    # ---------------------------------------------------------------- metadata

    def get_org(self) -> tuple[int, Any]:
        """``GET /org``: the org, its edition and licences."""
        return 200, {"org": [self.org_meta()]}

    def get_users(self, query: Mapping[str, str]) -> tuple[int, Any]:
        """``GET /users?type=``: the connected user for every type that takes it.

        The user is an active, confirmed admin; the types that take none (deactivated,
        unconfirmed, deleted users) answer 204.
        """
        kind = query.get("type", "AllUsers")
        if kind not in _USER_TYPES:
            raise ZohoError(400, "INVALID_DATA", "invalid data", {"api_name": "type"})
        if not _USER_TYPES[kind]:
            return 204, None
        user = {
            "id": "5725767000000412001",
            "first_name": "Sandbox",
            "last_name": "Admin",
            "full_name": "Sandbox Admin",
            "email": "admin@penguinmails.sandbox",
            "status": "active",
            "role": {"name": "CEO", "id": "5725767000000026005"},
            "profile": {"name": "Administrator", "id": "5725767000000026011"},
            "confirm": True,
        }
        return 200, {"users": [user], "info": {"per_page": 200, "count": 1, "page": 1, "more_records": False}}

    def get_modules(self) -> tuple[int, Any]:
        """``GET /settings/modules``: the modules, then the tabs without a records API."""
        listed = [*self.org.modules.values(), *self.org.tabs.values()]
        return 200, {"modules": [m.meta() for m in listed]}

    def get_module(self, api_name: str) -> tuple[int, Any]:
        """``GET /settings/modules/{api_name}``: one listed module (tabs too), in a one-entry list."""
        module = self.org.modules.get(api_name) or self.org.tabs.get(api_name)
        if module is None:
            raise ZohoError(400, "INVALID_MODULE", "the module name given seems to be invalid", {})
        return 200, {"modules": [module.detail()]}

    def get_fields(self, query: Mapping[str, str]) -> tuple[int, Any]:
        """``GET /settings/fields?module=``; errors name the parameter as fields.json types them."""
        name = query.get("module")
        if not name:
            raise ZohoError(
                400,
                "REQUIRED_PARAM_MISSING",
                "One of the expected parameter is missing",
                {"param_name": "module"},
            )
        module = self.org.modules.get(name)
        if module is None:
            raise ZohoError(
                400, "INVALID_MODULE", "the module name given seems to be invalid", {"api_name": "module"}
            )
        return 200, {"fields": list(module.fields.values())}

    def create_fields(self, query: Mapping[str, str], body: Any) -> tuple[int, Any]:
        """``POST /settings/fields?module=``: custom fields, api_name from the label; one entry each."""
        module = self.org.module(_required(query, "module"))
        if not self.allow_field_creation:
            raise ZohoError(
                403,
                "NO_PERMISSION",
                "permission denied to create fields",
                {"permissions": ["Crm_Implied_Customize_Zoho_CRM"]},
            )
        items = _members(body, "fields")
        answers = []
        for index, item in enumerate(items):
            label = item.get("field_label") if isinstance(item, dict) else None
            kind = item.get("data_type") if isinstance(item, dict) else None
            path = f"$.fields[{index}]"
            if not isinstance(label, str) or not label.strip():
                answers.append(
                    error_entry(
                        "MANDATORY_NOT_FOUND",
                        "required field not found",
                        api_name="field_label",
                        json_path=f"{path}.field_label",
                    )
                )
                continue
            if kind not in JSON_TYPES or kind in ("lookup", "ownerlookup"):
                answers.append(
                    error_entry(
                        "INVALID_DATA", "invalid data", api_name="data_type", json_path=f"{path}.data_type"
                    )
                )
                continue
            api_name = "_".join(label.split())
            if api_name in module.fields:
                answers.append(
                    error_entry(
                        "DUPLICATE_DATA",
                        "duplicate data",
                        api_name="field_label",
                        json_path=f"{path}.field_label",
                    )
                )
                continue
            unique = isinstance(item.get("unique"), dict) and bool(item["unique"])
            meta = field_meta(
                api_name, kind, label=label, custom=True, unique=unique, length=item.get("length")
            )
            module.fields[api_name] = meta
            answers.append(
                {
                    "code": "SUCCESS",
                    "details": {"id": meta["id"]},
                    "message": "field created",
                    "status": "success",
                }
            )
        return 201, {"fields": answers}

    # ---------------------------------------------------------------- records

    def list_records(
        self, module: str, query: Mapping[str, str], headers: Mapping[str, str]
    ) -> tuple[int, Any]:
        """``GET /{module}``: ``fields`` required; ``page`` up to 2,000 records, ``page_token`` past them.

        Answers 304 when nothing changed since ``If-Modified-Since``.
        """
        self.org.module(module)
        fields = [f for f in _required(query, "fields").split(",") if f.strip()]
        per_page = _int(query, "per_page", MAX_PER_PAGE)
        if not 1 <= per_page <= MAX_PER_PAGE:
            raise ZohoError(400, "INVALID_DATA", "per_page must be between 1 and 200", {"param": "per_page"})
        sort_by = query.get("sort_by", "id")
        if sort_by not in ("id", "Created_Time", "Modified_Time"):
            raise ZohoError(400, "INVALID_DATA", "invalid sort_by", {"param": "sort_by"})
        order = query.get("sort_order", "desc")
        since = _since(headers)
        key = (module, headers.get("if-modified-since"), sort_by, order)
        token = query.get("page_token")
        if token and "page" in query:
            raise ZohoError(
                400, "INVALID_REQUEST", "page and page_token cannot be given together", {"param": "page"}
            )
        if token:
            held = self.page_tokens.get(token)
            if held is None or held.key != key:
                raise ZohoError(400, "INVALID_DATA", "invalid page_token", {"param": "page_token"})
            if self.org.now() > held.expires:
                raise ZohoError(400, "TOKEN_EXPIRED", "the page_token has expired", {"param": "page_token"})
            offset, page = held.offset, held.offset // per_page + 1
        else:
            page = _int(query, "page", 1)
            offset = (page - 1) * per_page
            if page < 1 or offset + per_page > DISCRETE_LIMIT:
                raise ZohoError(
                    400,
                    "DISCRETE_PAGINATION_LIMIT_EXCEEDED",
                    "cannot fetch more than 2000 records with page; use page_token",
                    {"limit": DISCRETE_LIMIT},
                )
        rows = self.org.modified_since(module, since, sort_by, order == "desc")
        ids = query.get("ids")
        if ids:
            wanted = set(ids.split(","))
            rows = [r for r in rows if r["id"] in wanted]
        if not rows:
            return (304 if since is not None else 204), None
        chunk = rows[offset : offset + per_page]
        more = len(rows) > offset + per_page
        info: dict[str, Any] = {
            "per_page": per_page,
            "count": len(chunk),
            "page": page,
            "sort_by": sort_by,
            "sort_order": order,
            "more_records": more,
        }
        if more:
            # the tokens are sent only when there is a page to go to (the spec types them non-null)
            next_token = secrets.token_hex(24)
            expires = self.org.now() + timedelta(days=1)
            self.page_tokens[next_token] = _PageToken(key, offset + per_page, expires)
            info["next_page_token"] = next_token
            info["page_token_expiry"] = expires.isoformat()
        return 200, {"data": [project(r, fields) for r in chunk], "info": info}

    def search(self, module: str, query: Mapping[str, str]) -> tuple[int, Any]:
        """``GET /{module}/search``: ``criteria``, ``email``, ``phone`` or ``word``; 204 when none match."""
        spec = self.org.module(module)
        test = matcher(query, spec.fields)
        per_page = _int(query, "per_page", MAX_PER_PAGE)
        page = _int(query, "page", 1)
        if not 1 <= per_page <= MAX_PER_PAGE or page < 1 or page * per_page > DISCRETE_LIMIT:
            raise ZohoError(400, "INVALID_DATA", "invalid page or per_page", {"param": "per_page"})
        rows = [r for r in self.org.modified_since(module, None, "id", False) if test(r)]
        chunk = rows[(page - 1) * per_page : page * per_page]
        if not chunk:
            return 204, None
        fields = [f for f in query.get("fields", "").split(",") if f.strip()] or list(spec.fields)
        info = {
            "per_page": per_page,
            "count": len(chunk),
            "page": page,
            "more_records": len(rows) > page * per_page,
        }
        return 200, {"data": [project(r, fields) for r in chunk], "info": info}

    def get_record(self, module: str, record_id: str) -> tuple[int, Any]:
        """``GET /{module}/{id}``: every field; 204 for an unknown id."""
        spec = self.org.module(module)
        record = self.org.records[module].get(record_id)
        if record is None:
            return 204, None
        return 200, {"data": [project(record, list(spec.fields))]}

    def write(self, module: str, body: Any, mode: str, record_id: str | None = None) -> tuple[int, Any]:
        """``POST``/``PUT /{module}`` and ``POST /{module}/upsert``: one entry per record."""
        data = _members(body, "data")
        if record_id is not None:
            data = [{**row, "id": record_id} if isinstance(row, dict) else row for row in data[:1]]
        check = body.get("duplicate_check_fields") or []
        if not isinstance(check, list) or not all(isinstance(c, str) for c in check):
            raise ZohoError(400, "INVALID_DATA", "invalid data", {"api_name": "duplicate_check_fields"})
        return 200, {"data": self.org.write(module, data, mode=mode, check=check)}

    def delete(self, module: str, query: Mapping[str, str], record_id: str | None = None) -> tuple[int, Any]:
        """``DELETE /{module}?ids=`` (at most 100) or ``/{module}/{id}``: one entry per id."""
        ids = [record_id] if record_id else [i for i in _required(query, "ids").split(",") if i]
        if len(ids) > 100:
            raise ZohoError(400, "LIMIT_EXCEEDED", "the maximum number of ids allowed is 100", {"limit": 100})
        return 200, {"data": self.org.delete(module, ids)}

    def deleted(self, module: str, query: Mapping[str, str], headers: Mapping[str, str]) -> tuple[int, Any]:
        """``GET /{module}/deleted``: recycle-bin entries since ``If-Modified-Since``, newest first."""
        kind = query.get("type", "all")
        if kind not in ("all", "recycle", "permanent"):
            raise ZohoError(400, "INVALID_DATA", "type must be all, recycle or permanent", {"param": "type"})
        per_page = _int(query, "per_page", MAX_PER_PAGE)
        page = _int(query, "page", 1)
        if not 1 <= per_page <= MAX_PER_PAGE or page < 1:
            raise ZohoError(400, "INVALID_DATA", "invalid page or per_page", {"param": "per_page"})
        rows = [] if kind == "permanent" else self.org.deleted_since(module, _since(headers))
        chunk = rows[(page - 1) * per_page : page * per_page]
        if not chunk:
            return 204, None
        info = {
            "per_page": per_page,
            "count": len(chunk),
            "page": page,
            "more_records": len(rows) > page * per_page,
        }
        return 200, {"data": chunk, "info": info}

    def coql(self, body: Any) -> tuple[int, Any]:
        """``POST /coql``: a COQL query; 204 when nothing matches."""
        rows, more = run_query(self.org, body.get("select_query") if isinstance(body, dict) else None)
        if not rows:
            return 204, None
        return 200, {"data": rows, "info": {"count": len(rows), "more_records": more}}

    # ---------------------------------------------------------------- notifications

    def watch_list(self) -> tuple[int, Any]:
        """``GET /actions/watch``: the live channels."""
        live = [c for c in self.channels.values() if c.expiry > self.org.now()]
        if not live:
            return 204, None
        watch = [self._channel_view(c) for c in live]
        return 200, {
            "watch": watch,
            "info": {"per_page": 200, "page": 1, "count": len(watch), "more_records": False},
        }

    def watch_enable(self, body: Any, *, replace: bool) -> tuple[int, Any]:
        """``POST`` (create) or ``PUT``/``PATCH`` (replace details of) ``/actions/watch``."""
        items = _members(body, "watch")
        answers = []
        for index, item in enumerate(items):
            try:
                channel = self._channel(item, index)
            except ZohoError as exc:
                answers.append(exc.body())
                continue
            if replace and channel.channel_id not in self.channels:
                answers.append(
                    error_entry(
                        "NOT_SUBSCRIBED", "the channel is not subscribed", channel_id=channel.channel_id
                    )
                )
                continue
            self.channels[channel.channel_id] = channel
            message = (
                "Successfully updated the subscribe details"
                if replace
                else "Successfully subscribed for actions-watch of the given module"
            )
            answers.append(
                {
                    "code": "SUCCESS",
                    "details": {"events": self._events(channel)},
                    "message": message,
                    "status": "success",
                }
            )
        ok = all(a.get("status") == "success" for a in answers)
        return (200 if replace else 201) if ok else 202, {"watch": answers}

    def watch_patch(self, body: Any) -> tuple[int, Any]:
        """``PATCH /actions/watch``: update given details of channels, or drop events (``_delete_events``)."""
        items = _members(body, "watch")
        answers = []
        for index, item in enumerate(items):
            channel_id = str(item.get("channel_id")) if isinstance(item, dict) else ""
            current = self.channels.get(channel_id)
            if current is None:
                answers.append(
                    error_entry("NOT_SUBSCRIBED", "the channel is not subscribed", channel_id=channel_id)
                )
                continue
            if item.get("_delete_events"):
                drop = set(item.get("events") or [])
                current.events = [e for e in current.events if e not in drop]
                if not current.events:
                    del self.channels[channel_id]
                message = "Successfully removed the subscribe details"
            else:
                merged = {**self._channel_view(current), **item}
                try:
                    self.channels[channel_id] = self._channel(merged, index)
                except ZohoError as exc:
                    answers.append(exc.body())
                    continue
                current = self.channels[channel_id]
                message = "Successfully updated the subscribe details"
            answers.append(
                {
                    "code": "SUCCESS",
                    "details": {"events": self._events(current)},
                    "message": message,
                    "status": "success",
                }
            )
        return (200 if all(a["status"] == "success" for a in answers) else 202), {"watch": answers}

    def watch_disable(self, query: Mapping[str, str]) -> tuple[int, Any]:
        """``DELETE /actions/watch?channel_ids=``."""
        ids = [i for i in _required(query, "channel_ids").split(",") if i]
        answers = []
        for channel_id in ids:
            if self.channels.pop(channel_id, None) is None:
                answers.append(
                    error_entry("NOT_SUBSCRIBED", "the channel is not subscribed", channel_id=channel_id)
                )
            else:
                answers.append(
                    {
                        "code": "SUCCESS",
                        "details": {"channel_id": channel_id},
                        "message": "Successfully un-subscribed from actions-watch",
                        "status": "success",
                    }
                )
        return (200 if all(a["status"] == "success" for a in answers) else 202), {"watch": answers}

    def _channel(self, item: Any, index: int) -> Channel:
        path = f"$.watch[{index}]"
        if not isinstance(item, dict):
            raise ZohoError(400, "INVALID_DATA", "invalid data", {"json_path": path})
        channel_id = item.get("channel_id")
        if not str(channel_id or "").isdigit():
            raise ZohoError(
                400,
                "INVALID_DATA",
                "channel_id must be a number",
                {"api_name": "channel_id", "json_path": f"{path}.channel_id"},
            )
        events = item.get("events")
        if not isinstance(events, list) or not events:
            raise ZohoError(
                400,
                "MANDATORY_NOT_FOUND",
                "required field not found",
                {"api_name": "events", "json_path": f"{path}.events"},
            )
        for event in events:
            module, _, op = str(event).partition(".")
            if module not in self.org.modules or op not in ("all", *_OPS):
                raise ZohoError(
                    400,
                    "INVALID_DATA",
                    f"invalid event {event}",
                    {"api_name": "events", "json_path": f"{path}.events"},
                )
        url = item.get("notify_url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ZohoError(
                400,
                "INVALID_DATA",
                "notify_url must be a URL",
                {"api_name": "notify_url", "json_path": f"{path}.notify_url"},
            )
        token = item.get("token")
        if token is not None and (not isinstance(token, str) or len(token) > 50):
            raise ZohoError(
                400,
                "INVALID_DATA",
                "token must be at most 50 characters",
                {"api_name": "token", "json_path": f"{path}.token"},
            )
        now = self.org.now()
        expiry = now + DEFAULT_CHANNEL
        if item.get("channel_expiry"):
            try:
                expiry = datetime.fromisoformat(str(item["channel_expiry"]))
            except ValueError:
                expiry = now  # fails the check below
            if expiry.tzinfo is None or expiry <= now or expiry > now + MAX_CHANNEL:
                raise ZohoError(
                    400,
                    "INVALID_DATA",
                    "channel_expiry must be in the next 7 days",
                    {"api_name": "channel_expiry", "json_path": f"{path}.channel_expiry"},
                )
        return Channel(
            str(channel_id),
            [str(e) for e in events],
            expiry.astimezone(self.org.tz),
            url,
            token,
            bool(item.get("return_affected_field_values")),
        )

    def _events(self, channel: Channel) -> list[dict[str, Any]]:
        return [
            {
                "resource_name": name,
                "channel_expiry": channel.expiry.isoformat(),
                "resource_id": self.org.modules[name].id,
                "resource_uri": f"{self.api_domain()}/crm/v8/{name}",
                "channel_id": channel.channel_id,
                "notification_condition": [],
            }
            for name in dict.fromkeys(e.partition(".")[0] for e in channel.events)
        ]

    def _channel_view(self, channel: Channel) -> dict[str, Any]:
        return {
            "channel_id": channel.channel_id,
            "events": channel.events,
            "channel_expiry": channel.expiry.isoformat(),
            "notify_url": channel.notify_url,
            "token": channel.token,
            "return_affected_field_values": channel.affected_values,
            "notify_on_related_action": False,
        }


def _members(body: Any, name: str) -> list[Any]:
    """The non-empty list ``body[name]``, or Zoho's ``MANDATORY_NOT_FOUND`` naming it."""
    items = body.get(name) if isinstance(body, dict) else None
    if not isinstance(items, list) or not items:
        raise ZohoError(
            400,
            "MANDATORY_NOT_FOUND",
            "required field not found",
            {"api_name": name, "json_path": f"$.{name}"},
        )
    return items


def _required(query: Mapping[str, str], name: str) -> str:
    value = query.get(name)
    if not value:
        raise ZohoError(400, "REQUIRED_PARAM_MISSING", f"{name} is a mandatory parameter", {"param": name})
    return value


def _int(query: Mapping[str, str], name: str, default: int) -> int:
    try:
        return int(query.get(name, default))
    except ValueError:
        raise ZohoError(400, "INVALID_DATA", f"{name} must be a number", {"param": name}) from None


def _since(headers: Mapping[str, str]) -> datetime | None:
    raw = headers.get("if-modified-since")
    if not raw:
        return None
    try:
        since = datetime.fromisoformat(raw)
    except ValueError:
        raise ZohoError(
            400,
            "INVALID_DATA",
            "If-Modified-Since must be ISO 8601 with an offset",
            {"header": "If-Modified-Since"},
        ) from None
    if since.tzinfo is None:
        raise ZohoError(
            400, "INVALID_DATA", "If-Modified-Since needs an offset", {"header": "If-Modified-Since"}
        )
    return since
