"""``make demo``, smaller: the same scenario and checks, so the demo cannot silently rot."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.slow
def test_demo_small_scenario_passes() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "crmhost.demo",
            "--contacts",
            "500",
            "--crm-contacts",
            "500",
            "--events",
            "2000",
            "--deletes",
            "10",
            "--timeout",
            "120",
        ],
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    report = done.stdout
    # the report covers both CRMs with the figures the issue asks for
    for heading in ("HubSpot (field_level)", "Salesforce (newest_wins)"):
        assert heading in report, report
    for line in ("conflicts ", "activities logged", "deletes ", "API calls, initial sync", "wall time"):
        assert report.count(line) >= 2, (line, report)
    assert "demo passed" in done.stderr


def test_demo_refuses_bad_arguments() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "crmhost.demo", "--limits", "sometimes"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2 and "--limits" in done.stderr
