"""Mappings through the real HubSpot and Salesforce plugins: defaults, stored rows, both ways."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from crmhost.db.migrate import upgrade
from crmhost.db.models import Integration
from crmhost.db.syncstate import FieldMappingRow
from crmhost.errors import PermanentError
from crmhost.models import Change, FieldDirection, FieldMapping, MappingType, ObjectType
from crmhost.plugins import load_plugins
from crmhost.runtime import Host, open_host
from crmhost.security.tokens import generate_key_spec
from crmhost.services.integrations import create_integration
from crmhost.services.tenants import create_tenant
from crmhost.settings import Settings
from crmhost.sync.mapping import (
    default_mappings,
    field_times,
    incoming,
    load_mappings,
    outgoing,
    pushed_fields,
)

C = ObjectType.CONTACT
VALUES: dict[str, Any] = {
    "email": "ada@example.com",
    "first_name": "Ada",
    "last_name": "Lovelace",
    "company": "Analytical Engines",
    "lead_score": 80,
    "total_opens": 7,
    "total_clicks": None,
    "unsubscribed": False,
    "last_email_opened": datetime(2024, 5, 1, 12, 0, tzinfo=UTC),
    "custom.tier": "gold",
}


def computed(remote: str, kind: MappingType, expression: str, remote_type: str = "string") -> FieldMapping:
    return FieldMapping(
        object=C,
        local="",
        remote=remote,
        type=kind,
        expression=expression,
        direction=FieldDirection.TO_CRM,
        remote_type=remote_type,
    )


EXTRA = [
    computed("full_name", MappingType.FORMULA, "{{first_name}} {{last_name}}"),
    computed("temperature", MappingType.CONDITIONAL, 'lead_score >= 75 ? "Hot" : "Warm"'),
    computed("engagement", MappingType.AGGREGATION, "SUM(opens + clicks)", "number"),
]


async def _host(database_url: str, tmp_path: Path) -> AsyncIterator[Host]:
    await upgrade(database_url)
    settings = Settings(data_dir=tmp_path, database_url=database_url, encryption_keys=generate_key_spec("k1"))
    plugins = load_plugins(allow={"hubspot", "salesforce"})
    async with open_host(settings, plugins=plugins, with_queue=False, migrate=False) as host:
        yield host


@pytest.fixture(name="host")
async def fx_host(tmp_path: Path) -> AsyncIterator[Host]:
    async for host in _host(f"sqlite+aiosqlite:///{tmp_path / 'm.db'}", tmp_path):
        yield host


def _integration(provider: str, **settings: Any) -> Integration:
    # map_fields is pure: an unsaved row is all a context needs
    return Integration(id=f"i-{provider}", tenant_id="t", provider=provider, settings=settings)


def test_outgoing_hubspot_direct_and_computed(host: Host) -> None:
    integration = _integration("hubspot")
    mappings = default_mappings("hubspot", C, host=host) + EXTRA
    record = outgoing(host, integration, VALUES, mappings, object=C, key="Ada@Example.com", remote_id="901")
    assert record.remote_id == "901" and record.key == "Ada@Example.com"
    f = record.fields
    # direct fields exactly as the plugin maps them: HubSpot strings, ms-epoch datetimes
    assert (f["email"], f["firstname"], f["lastname"], f["company"]) == (
        "ada@example.com",
        "Ada",
        "Lovelace",
        "Analytical Engines",
    )
    assert f["penguinmails_lead_score"] == "80" and f["penguinmails_unsubscribed"] == "false"
    assert f["penguinmails_total_clicks"] == ""  # None clears
    assert f["penguinmails_last_email_opened"] == str(int(VALUES["last_email_opened"].timestamp() * 1000))
    # computed ones under their remote names, encoded with their remote_type
    assert (f["full_name"], f["temperature"], f["engagement"]) == ("Ada Lovelace", "Hot", "7")
    assert not any(k.startswith("=") for k in f)


def test_outgoing_salesforce_direct_and_computed(host: Host) -> None:
    integration = _integration("salesforce")
    mappings = [
        *default_mappings("salesforce", C, host=host),
        computed("Full_Name__c", MappingType.FORMULA, "{{first_name}} {{last_name}}"),
        computed("Total_Email_Engagement__c", MappingType.AGGREGATION, "SUM(opens + clicks)", "number"),
        FieldMapping(object=C, local="custom.tier", remote="Tier__c", direction=FieldDirection.FROM_CRM),
    ]
    record = outgoing(host, integration, VALUES, mappings, object=C, key="ada@example.com", remote_id=None)
    f = record.fields
    assert (f["Email"], f["FirstName"], f["PenguinMails_Lead_Score__c"]) == ("ada@example.com", "Ada", 80)
    assert f["PenguinMails_Unsubscribed__c"] is False
    assert f["Full_Name__c"] == "Ada Lovelace" and f["Total_Email_Engagement__c"] == 7
    assert "Company" not in f  # direction none in the Salesforce defaults
    assert "Tier__c" not in f  # from_crm only


def test_outgoing_encoding_failure_names_the_field(host: Host) -> None:
    bad = [computed("Score__c", MappingType.FORMULA, "{{first_name}}", "number")]
    with pytest.raises(PermanentError) as err:
        outgoing(host, _integration("salesforce"), VALUES, bad, object=C, key="a@b.c", remote_id=None)
    assert "Ada" in err.value.message and "Score__c" in err.value.message


def test_incoming_only_direct_from_crm_fields(host: Host) -> None:
    mappings = (
        default_mappings("hubspot", C, host=host)
        + EXTRA
        + [FieldMapping(object=C, local="custom.tier", remote="tier", direction=FieldDirection.FROM_CRM)]
    )
    at = datetime(2024, 6, 1, tzinfo=UTC)
    change = Change(
        object=C,
        remote_id="901",
        key="ada@example.com",
        fields={
            "firstname": "Ada",
            "lastname": "",
            "penguinmails_lead_score": "12",  # to_crm only in the defaults: never comes back
            "full_name": "Someone Else",  # computed: never comes back
            "tier": "silver",
            "hs_unmapped": "x",
        },
        modified_at=at,
        field_modified_at={"firstname": datetime(2024, 5, 1, tzinfo=UTC)},
        partial=True,
    )
    got = incoming(host, _integration("hubspot"), change, mappings)
    assert got == {"first_name": "Ada", "last_name": None, "custom.tier": "silver"}
    assert field_times(change, mappings) == {
        "first_name": datetime(2024, 5, 1, tzinfo=UTC),
        "last_name": at,
        "custom.tier": at,
    }


def test_incoming_salesforce_decodes_types(host: Host) -> None:
    change = Change(
        object=C,
        remote_id="003A",
        fields={"FirstName": "Ada", "PenguinMails_Lead_Score__c": 91.0, "PenguinMails_Unsubscribed__c": True},
    )
    got = incoming(host, _integration("salesforce"), change, default_mappings("salesforce", C, host=host))
    # the score and the unsubscribe are computed by the platform from events: Salesforce shows
    # them, never decides them
    assert got == {"first_name": "Ada"}


def test_pushed_fields_are_direct_outgoing_canonical_fields() -> None:
    mappings = [
        *default_mappings("hubspot", C),  # read from the installed plugin's entry point
        *EXTRA,
        FieldMapping(object=C, local="custom.tier", remote="tier", direction=FieldDirection.FROM_CRM),
        FieldMapping(object=C, local="custom.vip", remote="vip", direction=FieldDirection.BOTH),
    ]
    fields = pushed_fields(mappings)
    assert fields[:3] == ["email", "first_name", "last_name"]
    assert "lead_score" in fields and "custom.vip" in fields
    assert "custom.tier" not in fields and "" not in fields


async def test_load_mappings_defaults_then_stored(database_url: str, tmp_path: Path) -> None:
    async for host in _host(database_url, tmp_path):
        tenant_id, _ = await create_tenant(host, "Acme")
        integration = await create_integration(host, tenant_id, provider="hubspot")
        async with host.db.session(tenant_id) as session:
            assert await load_mappings(session, integration, C) == default_mappings("hubspot", C)
            companies = await load_mappings(session, integration, ObjectType.COMPANY, host=host)
            assert {m.remote for m in companies} >= {"name", "domain"}
        async with host.db.transaction(tenant_id) as session:
            for position, (obj, local, remote, kind, expression) in enumerate(
                [
                    ("contact", "last_name", "lastname", "direct", None),
                    ("contact", "", "full_name", "formula", "{{first_name}} {{last_name}}"),
                    ("company", "name", "name", "direct", None),
                ]
            ):
                session.add(
                    FieldMappingRow(
                        tenant_id=tenant_id,
                        integration_id=integration.id,
                        object=obj,
                        local=local,
                        remote=remote,
                        type=kind,
                        expression=expression,
                        direction="to_crm" if kind != "direct" else "both",
                        position=position,
                    )
                )
        async with host.db.session(tenant_id) as session:
            stored = await load_mappings(session, integration, C)
            assert [(m.remote, m.type) for m in stored] == [
                ("lastname", MappingType.DIRECT),
                ("full_name", MappingType.FORMULA),
            ]
            assert stored[1].direction is FieldDirection.TO_CRM
            # once any mapping is stored, defaults no longer fill in (other objects included)
            assert [m.remote for m in await load_mappings(session, integration, ObjectType.COMPANY)] == [
                "name"
            ]
            assert await load_mappings(session, integration, ObjectType.LEAD) == []


def test_a_new_list_of_mappings_is_planned_anew(host: Host) -> None:
    integration = _integration("salesforce")
    mappings = [FieldMapping(object=C, local="first_name", remote="FirstName")]
    first = outgoing(host, integration, VALUES, mappings, object=C, key="a@b.c", remote_id=None)
    assert first.fields == {"FirstName": "Ada"}
    again = [*mappings, computed("Score__c", MappingType.AGGREGATION, "MAX(lead_score, opens)", "number")]
    second = outgoing(host, integration, VALUES, again, object=C, key="a@b.c", remote_id=None)
    assert second.fields == {"FirstName": "Ada", "Score__c": 80}
    assert outgoing(host, integration, VALUES, mappings, object=C, key="a@b.c", remote_id=None) == first
