"""A generic client's discovery walk: org, users, modules, each module's metadata, fields and records.

An outside client knows only Zoho's documented v8 paths and the standard module names: it reads
the org and its users, lists the modules, and for every module listed with ``api_supported``
reads the module's metadata, its fields and a first page of records (``fields`` is required in
v8; an empty module answers 204), then writes and reads records with what it learnt. It does so
once with the official SDK and once raw, the raw answers validated against Zoho's published
OpenAPI files where they cover the operation.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from zohocrmsdk.src.com.zoho.crm.api import ParameterMap
from zohocrmsdk.src.com.zoho.crm.api import record as zr
from zohocrmsdk.src.com.zoho.crm.api.fields import FieldsOperations, GetFieldsParam
from zohocrmsdk.src.com.zoho.crm.api.modules import ModulesOperations
from zohocrmsdk.src.com.zoho.crm.api.org import OrgOperations
from zohocrmsdk.src.com.zoho.crm.api.users import GetUsersParam, UsersOperations

from .oas import Checker

#: the standard modules of a fresh org, as Zoho's docs name them (not read from the sandbox)
STANDARD = (
    "Leads",
    "Contacts",
    "Accounts",
    "Deals",
    "Tasks",
    "Events",
    "Calls",
    "Products",
    "Quotes",
    "Sales_Orders",
    "Purchase_Orders",
    "Invoices",
    "Campaigns",
    "Vendors",
    "Price_Books",
    "Cases",
    "Solutions",
    "Notes",
)
#: a value of each field type that any org accepts in a new record
_SAMPLE: dict[str, Any] = {
    "text": "Sample",
    "textarea": "Sample text",
    "email": "sample@example.com",
    "phone": "+1 555 0100",
    "website": "https://example.com",
    "integer": 3,
    "double": 1.5,
    "currency": 10.25,
    "boolean": True,
    "date": "2026-01-02",
    "datetime": "2026-01-02T03:04:05+05:30",
}


def _sample(field: dict[str, Any]) -> Any:
    if field["data_type"] == "picklist":
        return field["pick_list_values"][0]["actual_value"]
    return _SAMPLE[field["data_type"]]


def _ok(response: Any, status: int = 200) -> Any:
    assert response is not None and response.get_status_code() == status, (
        response.get_status_code() if response is not None else None
    )
    return response.get_object()


def test_the_official_sdk_discovers_the_org(sdk: Any) -> None:
    org = sdk
    [about] = _ok(OrgOperations().get_organization()).get_org()
    assert str(about.get_id()) == org.sandbox.account_id
    for kind in ("CurrentUser", "AllUsers", "ActiveUsers"):
        params = ParameterMap()
        params.add(GetUsersParam.type, kind)
        [user] = _ok(UsersOperations().get_users(params)).get_users()
        assert user.get_email() == "admin@penguinmails.sandbox", kind
    modules = _ok(ModulesOperations().get_modules()).get_modules()
    served = [m.get_api_name() for m in modules if m.get_api_supported()]
    assert set(STANDARD) <= set(served)
    assert {m.get_api_name() for m in modules if not m.get_api_supported()} >= {"Home", "Reports"}
    for name in served:
        [detail] = _ok(ModulesOperations().get_module_by_api_name(name)).get_modules()
        assert detail.get_api_name() == name
        params = ParameterMap()
        params.add(GetFieldsParam.module, name)
        fields = {f.get_api_name(): f for f in _ok(FieldsOperations().get_fields(params)).get_fields()}
        assert {"Owner", "Created_Time", "Modified_Time"} <= set(fields), name
        assert detail.get_display_field()["api_name"] in fields, name  # the SDK types it a plain object
        listing = ParameterMap()
        listing.add(zr.GetRecordsParam.fields, ",".join(list(fields)[:5]))
        # a fresh org's modules hold no records: Zoho answers 204 with no body
        assert zr.RecordOperations(name).get_records(listing).get_status_code() == 204, name


def test_a_raw_client_follows_every_listed_module_and_meets_no_404(check: Checker, org: Any) -> None:
    # the walk spends ~80 calls; credits are the client's business, not this test's
    org.admin.put("/_sandbox/rate-limits", json={"tier": "off"})
    org.seed("Deals", [{"Deal_Name": f"Deal {i}", "Stage": "Qualification"} for i in range(3)])
    check("org", "GET", "/crm/v8/org", 200)
    for kind in ("CurrentUser", "ActiveUsers", "ActiveConfirmedUsers"):
        assert check("users", "GET", f"/crm/v8/users?type={kind}", 200)["users"], kind
    assert check("users", "GET", "/crm/v8/users?type=DeactiveUsers", 204) is None
    raw = check.session.get(f"{org.base_url}/crm/v8/users", params={"type": "AllUsers"})
    assert raw.status_code == 200 and len(raw.json()["users"]) == 1  # AllUsers: documented, not in the file
    listed = check("modules", "GET", "/crm/v8/settings/modules", 200)["modules"]
    served = [m["api_name"] for m in listed if m["api_supported"]]
    assert set(STANDARD) <= set(served) and len(served) == len(set(served))
    written: dict[str, str] = {}
    for entry in listed:
        name = entry["api_name"]
        [detail] = check("modules", "GET", f"/crm/v8/settings/modules/{name}", 200)["modules"]
        assert {k: detail[k] for k in entry} == entry, name
        if not entry["api_supported"]:
            continue
        fields = check("fields", "GET", f"/crm/v8/settings/fields?module={name}", 200)["fields"]
        names = [f["api_name"] for f in fields]
        assert detail["display_field"]["api_name"] in names, name
        # at most 50 fields a call, as Zoho allows
        wanted = ",".join(names[:50])
        if name == "Deals":
            page = check("record", "GET", f"/crm/v8/Deals?fields={wanted}", 200)
            assert page["info"]["count"] == 3 and set(page["data"][0]) == {"id", *names[:50]}
        else:
            empty = check.session.get(f"{org.base_url}/crm/v8/{name}", params={"fields": wanted})
            assert (empty.status_code, empty.content) == (204, b""), name
        # a generic client fills what the metadata says a new record needs, and nothing else
        required = {f["api_name"]: _sample(f) for f in fields if f["system_mandatory"]}
        [saved] = check("record", "POST", f"/crm/v8/{name}", 200, json={"data": [required]})["data"]
        assert saved["status"] == "success", (name, saved)
        written[name] = saved["details"]["id"]
        [read] = check("record", "GET", f"/crm/v8/{name}/{written[name]}", 200)["data"]
        assert all(read[k] == v for k, v in required.items()), name
    assert set(written) == set(served)
    assert not [c for c in check.checked if c.endswith(" 404")]


@pytest.mark.parametrize(
    ("spec", "path", "code", "details"),
    [
        ("modules", "/crm/v8/settings/modules/Widgets", "INVALID_MODULE", {}),
        ("fields", "/crm/v8/settings/fields?module=Widgets", "INVALID_MODULE", {"api_name": "module"}),
        ("fields", "/crm/v8/settings/fields", "REQUIRED_PARAM_MISSING", {"param_name": "module"}),
        # tabs without a records API are listed, but have no fields to read
        ("fields", "/crm/v8/settings/fields?module=Home", "INVALID_MODULE", {"api_name": "module"}),
    ],
)
def test_bad_discovery_requests_answer_zohos_errors(
    check: Checker, spec: str, path: str, code: str, details: dict[str, Any]
) -> None:
    body = check(spec, "GET", path, 400)
    assert body == {"code": code, "details": details, "message": body["message"], "status": "error"}
    assert body["message"]


def test_records_of_an_unknown_module_and_unknown_paths(check: Checker, org: Any) -> None:
    module = check.session.get(f"{org.base_url}/crm/v8/Widgets", params={"fields": "Name"})
    assert module.status_code == 400 and module.json()["code"] == "INVALID_MODULE"
    missing = check.session.get(f"{org.base_url}/crm/v8/settings/widgets")
    assert missing.status_code == 404 and missing.json()["code"] == "INVALID_URL_PATTERN"


@pytest.mark.parametrize(
    "path", ["/crm/v8/org", "/crm/v8/users?type=CurrentUser", "/crm/v8/settings/modules/Deals"]
)
def test_discovery_needs_a_token(org: Any, path: str) -> None:
    nothing = httpx.get(f"{org.base_url}{path}")
    assert nothing.status_code == 401
    assert nothing.json() == {
        "code": "AUTHENTICATION_FAILURE",
        "details": {},
        "message": "Authentication failed",
        "status": "error",
    }
    wrong = httpx.get(f"{org.base_url}{path}", headers={"Authorization": "Zoho-oauthtoken nope"})
    assert wrong.status_code == 401 and wrong.json()["code"] == "INVALID_TOKEN"
