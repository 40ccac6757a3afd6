"""The documentation site builds with ``mkdocs build --strict``: a broken link, a missing
anchor, a page left out of the nav or an unresolved API reference fails the build. The
generated reference pages cover every command and every setting."""

from __future__ import annotations

import html
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "scripts"))

import docs_reference  # noqa: E402


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    build = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={"NO_MKDOCS_2_WARNING": "1", "PATH": str(Path(sys.executable).parent)},
        timeout=240,
    )
    assert build.returncode == 0, build.stderr[-4000:]
    return out


def _text(page: Path) -> str:
    return html.unescape(page.read_text("utf-8"))


def test_the_site_builds_strict(site: Path) -> None:
    assert (site / "index.html").is_file()
    assert (site / "ARCHITECTURE" / "index.html").is_file()


def test_the_cli_page_lists_every_command(site: Path) -> None:
    page = _text(site / "cli" / "index.html")
    paths = docs_reference.command_paths()
    assert "modelyard monitor alerts add" in paths
    missing = [path for path in paths if path not in page]
    assert missing == []


def test_the_configuration_page_lists_every_setting(site: Path) -> None:
    page = _text(site / "configuration" / "index.html")
    rows = docs_reference.settings_rows()
    assert any(env == "MODELYARD_SERVING__REQUEST_TIMEOUT_S" for env, *_ in rows)
    assert [env for env, *_ in rows if env not in page] == []


def test_every_setting_has_a_description() -> None:
    assert [env for env, _, _, help_text in docs_reference.settings_rows() if not help_text] == []


def test_the_python_api_page_documents_the_public_names(site: Path) -> None:
    page = _text(site / "python-api" / "index.html")
    for name in ("modelyard.yard.Yard", "modelyard.registry.Registry", "modelyard.errors"):
        assert f'id="{name}"' in page
