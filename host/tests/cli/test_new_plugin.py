"""``crmhost new-plugin``: the package it writes passes its own tests, lint and types unchanged.

The generated package is never installed into the shared environment: its ``src/`` goes on
``PYTHONPATH`` beside a throwaway ``*.dist-info`` built from its ``pyproject.toml``, which is how
``importlib.metadata`` (and so the host's plugin and sandbox loaders) finds its entry points.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path, PurePosixPath

import pytest

from crmhost.cli import main
from crmhost.scaffold import MAX_SLUG, MAX_TITLE, PluginNames, render_files

ROOT = Path(__file__).resolve().parents[3]


def _run(
    args: list[str], *, env: dict[str, str], cwd: Path, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _dist_info(package: Path, site: Path) -> None:
    """A ``*.dist-info`` for the package, its entry points read from its ``pyproject.toml``."""
    project = tomllib.loads((package / "pyproject.toml").read_text())["project"]
    info = site / f"{project['name'].replace('-', '_')}-{project['version']}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n"
    )
    groups = project["entry-points"]
    (info / "entry_points.txt").write_text(
        "".join(
            f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in eps.items()) + "\n"
            for group, eps in groups.items()
        )
    )


@pytest.fixture(name="env")
def fx_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRMHOST_")}
    env["CRMHOST_DATA_DIR"] = str(tmp_path / "data")
    return env


def _scaffold(slug: str, title: str, out: Path, env: dict[str, str]) -> Path:
    done = _run(["-m", "crmhost", "new-plugin", slug, "--dir", str(out), "--title", title], env=env, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    package = Path(json.loads(done.stdout)["path"])
    assert package == out / slug
    return package


@pytest.mark.slow
def test_generated_package_passes_its_tests_lint_and_types(tmp_path: Path, env: dict[str, str]) -> None:
    package = _scaffold("acme_crm", "Acme CRM", tmp_path / "plugins", env)
    site = tmp_path / "site"
    _dist_info(package, site)
    env = {
        **env,
        "PYTHONPATH": os.pathsep.join([str(package / "src"), str(site)]),
        "CRMHOST_PLUGINS": "acme_crm",
    }

    listed = _run(["-m", "crmhost", "plugins"], env=env, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    [plugin] = [json.loads(line) for line in listed.stdout.splitlines()]
    assert (plugin["name"], plugin["loaded"], plugin["error"]) == ("acme_crm", True, None), plugin

    tests = _run(
        [
            "-m",
            "pytest",
            "-q",
            "-rs",
            "-p",
            "no:cacheprovider",
            "-c",
            str(ROOT / "pyproject.toml"),
            "--rootdir",
            str(package),
            "tests",
        ],
        env=env,
        cwd=package,
    )
    assert tests.returncode == 0, tests.stdout[-4000:] + tests.stderr[-2000:]
    assert " passed" in tests.stdout
    # the kit skips only what the template's CRM does not declare
    skips = [line for line in tests.stdout.splitlines() if line.startswith("SKIPPED")]
    assert all("does not declare" in line for line in skips), skips

    types = _run(
        ["-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"), str(package / "src")],
        env={**env, "MYPYPATH": str(package / "src")},
        cwd=ROOT,
    )
    assert types.returncode == 0, types.stdout + types.stderr


def _lint(package: Path, env: dict[str, str]) -> None:
    config = ["--config", str(ROOT / "pyproject.toml")]
    # the workspace's isort sections know plugins/*/src; the temp package's src is added alike
    first_party = ["--config", f"src = [{str(ROOT / 'host' / 'src')!r}, {str(package / 'src')!r}]"]
    fmt = _run(["-m", "ruff", "format", "--check", *config, "."], env=env, cwd=package)
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr
    lint = _run(["-m", "ruff", "check", *config, *first_party, "."], env=env, cwd=package)
    assert lint.returncode == 0, lint.stdout + lint.stderr


@pytest.mark.parametrize(
    ("slug", "title"),
    [("acme_crm", "Acme CRM"), ("ab", "A"), ("a_" * (MAX_SLUG // 2 - 1) + "zz", "T" * MAX_TITLE)],
    ids=["typical", "shortest", "longest"],
)
def test_generated_package_is_formatted_and_lint_clean(
    slug: str, title: str, tmp_path: Path, env: dict[str, str]
) -> None:
    # names change line lengths: the formatter must neither split nor join a line at either extreme
    _lint(_scaffold(slug, title, tmp_path, env), env)


def test_template_renders_stable_names_at_the_length_limits() -> None:
    long = PluginNames.from_slug("a" * MAX_SLUG, "T" * MAX_TITLE)
    files = render_files(long, workspace=True)
    code = {path: text for path, text in files.items() if path.suffix == ".py"}
    longest = max((len(line), str(path)) for path, text in code.items() for line in text.splitlines())
    assert longest[0] <= 110, longest
    pyproject = tomllib.loads(files[next(p for p in files if p.name == "pyproject.toml")])
    assert pyproject["project"]["name"] == f"crmhost-{'a' * MAX_SLUG}"
    assert pyproject["project"]["entry-points"]["crmhost"] == {long.slug: f"{long.package}.plugin"}
    assert pyproject["tool"]["uv"]["sources"] == {"crmhost": {"workspace": True}}
    outside = tomllib.loads(render_files(long, workspace=False)[PurePosixPath("pyproject.toml")])
    assert "uv" not in outside["tool"]


@pytest.mark.parametrize(
    ("slug", "extra", "message"),
    [
        ("Acme", [], "must match [a-z][a-z0-9_]*"),
        ("1acme", [], "must match [a-z][a-z0-9_]*"),
        ("acme-crm", [], "must match [a-z][a-z0-9_]*"),
        ("class", [], "is a Python keyword"),
        ("acme__crm", [], "must not end in '_' or contain '__'"),
        ("a" * (MAX_SLUG + 1), [], f"longer than {MAX_SLUG} characters"),
        ("hubspot", [], "already the name of an installed plugin"),
        ("acme", ["--title", 'say "hi"'], "without double quotes"),
        ("acme", ["--title", "T" * (MAX_TITLE + 1)], f"longer than {MAX_TITLE} characters"),
    ],
)
def test_bad_slug_or_title_is_one_line_exit_2_and_writes_nothing(
    slug: str, extra: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["new-plugin", slug, "--dir", str(tmp_path), *extra])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and err.startswith("crmhost new-plugin: ") and message in err, err
    assert list(tmp_path.iterdir()) == []


def test_existing_directory_is_refused_and_left_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "acme").mkdir()
    (tmp_path / "acme" / "mine.txt").write_text("keep")
    with pytest.raises(SystemExit) as exited:
        main(["new-plugin", "acme", "--dir", str(tmp_path)])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "already exists" in err
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["acme", "mine.txt"]


def test_default_dir_is_plugins_and_a_uv_workspace_is_detected(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.uv.workspace]\nmembers = ["plugins/*"]\n')
    monkeypatch.chdir(tmp_path)
    main(["new-plugin", "acme"])
    out = json.loads(capsys.readouterr().out)
    assert out == {"slug": "acme", "path": str(tmp_path / "plugins" / "acme")}
    pyproject = tomllib.loads((tmp_path / "plugins" / "acme" / "pyproject.toml").read_text())
    assert pyproject["tool"]["uv"]["sources"] == {"crmhost": {"workspace": True}}
    assert (tmp_path / "plugins" / "acme" / "src" / "crmhost_acme" / "py.typed").is_file()
    # the staging directory was renamed into place, nothing else is left beside it
    assert [p.name for p in (tmp_path / "plugins").iterdir()] == ["acme"]
