"""Settings from the environment: each variable parsed, a bad value named in the error."""

from __future__ import annotations

from pathlib import Path

import pytest

from crmhost.errors import ConfigurationError
from crmhost.runtime import open_host
from crmhost.settings import load_settings


@pytest.mark.parametrize(("value", "expected"), [(None, True), ("on", True), ("OFF", False), ("0", False)])
def test_pace_requests_switch(value: str | None, expected: bool, tmp_path: Path) -> None:
    env = {"CRMHOST_DATA_DIR": str(tmp_path)}
    if value is not None:
        env["CRMHOST_PACE_REQUESTS"] = value
    assert load_settings(env).pace_requests is expected


def test_a_bad_switch_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="CRMHOST_PACE_REQUESTS must be on or off, not 'sometimes'"):
        load_settings({"CRMHOST_DATA_DIR": str(tmp_path), "CRMHOST_PACE_REQUESTS": "sometimes"})


@pytest.mark.parametrize("pace", [True, False])
async def test_the_host_paces_as_configured(pace: bool, tmp_path: Path) -> None:
    env = {"CRMHOST_DATA_DIR": str(tmp_path), "CRMHOST_PACE_REQUESTS": "on" if pace else "off"}
    async with open_host(load_settings(env), with_queue=False) as host:
        assert host.limiters.enabled is pace


def test_notify_allow_list(tmp_path: Path) -> None:
    env = {"CRMHOST_DATA_DIR": str(tmp_path)}
    assert load_settings(env).notify_allow == ()
    env["CRMHOST_NOTIFY_ALLOW"] = " 10.1.2.0/24, hooks.internal ,,"
    assert load_settings(env).notify_allow == ("10.1.2.0/24", "hooks.internal")
