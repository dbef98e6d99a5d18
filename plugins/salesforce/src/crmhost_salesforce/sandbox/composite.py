"""``POST /composite``: up to 25 subrequests, at most 5 of them collections or queries, one API call.

Subrequests run in order through the same endpoints as top-level requests. ``@{ref.path}``
references to earlier results are resolved in URLs and bodies. With ``allOrNone`` a failed
subrequest rolls back everything and the rest answer ``PROCESSING_HALTED``.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from crmhost.sandbox import WireResponse
from crmhost_salesforce.sandbox.api import ApiRequest, SalesforceApi, match_route
from crmhost_salesforce.sandbox.org import ApiError

__all__ = ["MAX_HEAVY", "MAX_SUBREQUESTS", "run_composite"]

MAX_SUBREQUESTS = 25
MAX_HEAVY = 5
_REF = re.compile(r"@\{([A-Za-z0-9_]+)((?:\.[A-Za-z0-9_]+|\[\d+\])*)\}")


def _resolve(value: Any, results: dict[str, Any]) -> Any:
    if isinstance(value, str):

        def lookup(match: re.Match[str]) -> str:
            ref, path = match.group(1), match.group(2)
            if ref not in results:
                raise ApiError(400, "INVALID_REFERENCE", f"reference {ref!r} is not an earlier subrequest")
            current = results[ref]
            for step in re.findall(r"\.([A-Za-z0-9_]+)|\[(\d+)\]", path):
                key, index = step
                try:
                    current = current[int(index)] if index else current[key]
                except (KeyError, IndexError, TypeError):
                    raise ApiError(400, "INVALID_REFERENCE", f"cannot resolve @{{{ref}{path}}}") from None
            return str(current)

        return _REF.sub(lookup, value)
    if isinstance(value, list):
        return [_resolve(v, results) for v in value]
    if isinstance(value, dict):
        return {k: _resolve(v, results) for k, v in value.items()}
    return value


def run_composite(api: SalesforceApi, request: ApiRequest) -> WireResponse:
    """Run a composite request; the caller counts it as one API call."""
    body = request.body
    if not isinstance(body, dict) or not isinstance(body.get("compositeRequest"), list):
        raise ApiError(400, "JSON_PARSER_ERROR", "compositeRequest must be a JSON list of subrequests")
    subrequests: list[Any] = body["compositeRequest"]
    if not subrequests:
        raise ApiError(400, "INVALID_INPUT", "compositeRequest must hold at least one subrequest")
    if len(subrequests) > MAX_SUBREQUESTS:
        raise ApiError(
            400,
            "LIMIT_EXCEEDED",
            f"a composite request may hold at most {MAX_SUBREQUESTS} subrequests, got {len(subrequests)}",
        )
    routed = []
    heavy = 0
    for index, sub in enumerate(subrequests):
        if (
            not isinstance(sub, dict)
            or not sub.get("method")
            or not sub.get("url")
            or not sub.get("referenceId")
        ):
            raise ApiError(
                400, "INVALID_INPUT", f"compositeRequest[{index}] needs method, url and referenceId"
            )
        path = urlsplit(str(sub["url"])).path
        found = match_route(str(sub["method"]).upper(), path)
        if found is None or found[0].handler == "composite":
            raise ApiError(
                400,
                "INVALID_INPUT",
                f"compositeRequest[{index}]: {sub['method']} {path} is not allowed in a composite request",
            )
        heavy += found[0].heavy
        routed.append(found)
    if heavy > MAX_HEAVY:
        raise ApiError(
            400,
            "LIMIT_EXCEEDED",
            f"a composite request may hold at most {MAX_HEAVY} sObject Collections or query "
            f"subrequests, got {heavy}",
        )
    all_or_none = bool(body.get("allOrNone", False))
    snapshot = api.org.snapshot() if all_or_none else None
    mark = len(api.written)
    results: dict[str, Any] = {}
    answers: list[dict[str, Any]] = []
    failed = False
    for sub, (route, params) in zip(subrequests, routed, strict=True):
        ref = str(sub["referenceId"])
        if failed and all_or_none:
            answers.append(
                {
                    "body": [
                        {
                            "errorCode": "PROCESSING_HALTED",
                            "message": "The transaction was rolled back since another operation "
                            "in the same transaction failed.",
                        }
                    ],
                    "httpHeaders": {},
                    "httpStatusCode": 400,
                    "referenceId": ref,
                }
            )
            continue
        try:
            url = _resolve(str(sub["url"]), results)
            sub_body = _resolve(sub.get("body"), results)
        except ApiError as exc:
            answer = WireResponse(exc.status, exc.body())
        else:
            parts = urlsplit(url)
            headers = {
                **request.headers,
                **{k.lower(): str(v) for k, v in (sub.get("httpHeaders") or {}).items()},
            }
            found = match_route(route.method, parts.path)
            params = found[1] if found else params
            answer = api.handle(
                route,
                ApiRequest(route.method, parts.path, params, dict(parse_qsl(parts.query)), sub_body, headers),
            )
        results[ref] = answer.body
        failed = failed or answer.status >= 400
        answers.append(
            {"body": answer.body, "httpHeaders": {}, "httpStatusCode": answer.status, "referenceId": ref}
        )
    if failed and snapshot is not None:
        api.org.restore(snapshot)
        del api.written[mark:]
    return WireResponse(200, {"compositeResponse": answers})
