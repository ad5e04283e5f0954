"""`make contract-check` on real edits of the contract, in a git repository of their own.

The gate runs Optic from clients/node_modules, so these tests need Node; without npm they are
skipped (in CI, where Node is installed, they fail instead).
"""

import copy
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.tools import tool_missing

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "openapi" / "task-operations.yaml"
GATE = ROOT / "openapi" / "contract_check.py"
Spec = dict[str, Any]


@pytest.fixture(scope="module", autouse=True)
def _optic() -> None:
    if shutil.which("npm") is None:
        tool_missing("npm is not installed: the contract gate runs Optic, a Node tool")
    subprocess.run(["make", "-s", "node-install"], cwd=ROOT, check=True, capture_output=True)


def _base() -> Spec:
    spec: Spec = yaml.safe_load(SPEC.read_text())
    spec["info"]["version"] = "3.4.5"
    # An optional enum parameter, so that the removal of a value can be shown.
    spec["paths"]["/users/{user_id}/tasks"]["get"]["parameters"].append(
        {"name": "sort", "in": "query", "schema": {"type": "string", "enum": ["asc", "desc"]}}
    )
    return spec


def _gate(
    repo: Path, base: Spec, head: Spec, changelog: list[str], *, commit: bool = False
) -> subprocess.CompletedProcess[str]:
    """Commit `base`, put `head` in the working tree (and commit it too, as CI sees a change),
    and run the gate there with its default base."""
    spec = repo / "openapi" / "task-operations.yaml"
    spec.parent.mkdir(parents=True)
    sections = "".join(f"## {version}\n\n- changes\n\n" for version in changelog)
    (repo / "openapi" / "CHANGELOG.md").write_text(f"# Contract changelog\n\n{sections}")
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    for contract, committed in ((base, True), (head, commit)):
        spec.write_text(yaml.safe_dump(contract, sort_keys=False))
        if committed:
            subprocess.run(["git", "add", "."], cwd=repo, check=True)
            identity = ["-c", "user.name=t", "-c", "user.email=t@t"]
            subprocess.run(
                ["git", *identity, "commit", "--allow-empty", "-qm", "c"], cwd=repo, check=True
            )
    return subprocess.run(
        [sys.executable, str(GATE)], cwd=repo, capture_output=True, text=True, check=False
    )


def _tasks(spec: Spec) -> Spec:
    result: Spec = spec["paths"]["/users/{user_id}/tasks"]
    return result


BREAKING: dict[str, Callable[[Spec], object]] = {
    "response field removed": lambda s: (
        s["components"]["schemas"]["Task"]["properties"].pop("updated_at"),
        s["components"]["schemas"]["Task"]["required"].remove("updated_at"),
    ),
    "optional request field made required": lambda s: s["components"]["schemas"]["TaskInput"][
        "required"
    ].append("description"),
    "enum value removed": lambda s: _tasks(s)["get"]["parameters"][-1]["schema"].update(
        enum=["asc"]
    ),
    "required parameter added": lambda s: _tasks(s)["get"]["parameters"].append(
        {"name": "tag", "in": "query", "required": True, "schema": {"type": "string"}}
    ),
    "path removed": lambda s: s["paths"].pop("/users/{user_id}/tasks/{task_id}/complete"),
    "operation removed": lambda s: s["paths"]["/users/{user_id}/tasks/{task_id}"].pop("delete"),
    "type narrowed": lambda s: s["components"]["schemas"]["TaskInput"]["properties"].update(
        description={"type": "string", "maxLength": 1000}
    ),
}


def _additive(spec: Spec) -> object:
    return _tasks(spec)["get"]["parameters"].append(
        {"name": "tag", "in": "query", "required": False, "schema": {"type": "string"}}
    )


def _changed(edit: Callable[[Spec], object], version: str) -> tuple[Spec, Spec]:
    base = _base()
    head = copy.deepcopy(base)
    edit(head)
    head["info"]["version"] = version
    return base, head


@pytest.mark.parametrize("edit", BREAKING.values(), ids=BREAKING.keys())
def test_a_breaking_change_fails_without_a_major_version(
    tmp_path: Path, edit: Callable[[Spec], object]
) -> None:
    base, head = _changed(edit, "3.5.0")
    result = _gate(tmp_path, base, head, ["3.5.0", "3.4.5"])
    assert result.returncode == 1, result.stdout
    assert "raise the major version (3.4.5 -> 4.0.0)" in result.stdout


def test_a_breaking_change_passes_with_a_major_version(tmp_path: Path) -> None:
    base, head = _changed(BREAKING["response field removed"], "4.0.0")
    result = _gate(tmp_path, base, head, ["4.0.0", "3.4.5"])
    assert result.returncode == 0, result.stdout
    assert "3.4.5 (HEAD) -> 4.0.0: breaking (major)" in result.stdout


def test_an_additive_change_passes_with_a_minor_version(tmp_path: Path) -> None:
    base, head = _changed(_additive, "3.5.0")
    result = _gate(tmp_path, base, head, ["3.5.0", "3.4.5"])
    assert result.returncode == 0, result.stdout
    assert "3.4.5 (HEAD) -> 3.5.0: compatible" in result.stdout


def test_any_change_needs_a_new_version(tmp_path: Path) -> None:
    base, head = _changed(_additive, "3.4.5")
    result = _gate(tmp_path, base, head, ["3.4.5"])
    assert result.returncode == 1
    assert "info.version is still 3.4.5" in result.stdout


def test_the_version_cannot_go_down(tmp_path: Path) -> None:
    base, head = _changed(_additive, "3.4.4")
    result = _gate(tmp_path, base, head, ["3.4.4", "3.4.5"])
    assert result.returncode == 1
    assert "went down from 3.4.5 to 3.4.4" in result.stdout


def test_the_new_version_needs_a_changelog_section(tmp_path: Path) -> None:
    base, head = _changed(_additive, "3.5.0")
    result = _gate(tmp_path, base, head, ["3.4.5"])
    assert result.returncode == 1
    assert "has no section '## 3.5.0'" in result.stdout


def test_a_committed_change_is_judged_against_the_commit_before(tmp_path: Path) -> None:
    base, head = _changed(BREAKING["path removed"], "3.5.0")
    result = _gate(tmp_path / "breaking", base, head, ["3.5.0", "3.4.5"], commit=True)
    assert result.returncode == 1
    assert "3.4.5 -> 4.0.0" in result.stdout
    base, head = _changed(_additive, "3.5.0")
    result = _gate(tmp_path / "additive", base, head, ["3.5.0", "3.4.5"], commit=True)
    assert result.returncode == 0
    assert "3.4.5 (HEAD~1) -> 3.5.0: compatible" in result.stdout


def test_an_unchanged_contract_passes(tmp_path: Path) -> None:
    base = _base()
    result = _gate(tmp_path, base, copy.deepcopy(base), ["3.4.5"], commit=True)
    assert result.returncode == 0
    assert "the contract is as at HEAD~1" in result.stdout
