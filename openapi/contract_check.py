"""`make contract-check`: the contract's change since a git ref, judged as a promise to its clients.

The contract in the working tree is compared with the one at CONTRACT_BASE (default: HEAD when the
contract has uncommitted changes, otherwise HEAD~1). It fails when
- the contract changed but `info.version` did not, or went down;
- Optic's breaking-change rules find a change that could break a client (a response field removed,
  a request field made required, an enum value removed, a required parameter added, a path or an
  operation removed, a type narrowed, ...) and the major version was not raised;
- openapi/CHANGELOG.md has no section for the new version.
Run from the repository's root; Optic comes from clients/node_modules (`make node-install`).
"""

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

SPEC = Path("openapi/task-operations.yaml")
CHANGELOG = Path("openapi/CHANGELOG.md")
OPTIC = Path(__file__).resolve().parent.parent / "clients" / "node_modules" / ".bin" / "optic"
SEMVER = re.compile(r"^(\d+)\.(\d+)\.(\d+)$")


def _git(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], capture_output=True, text=True, check=False)


def _base_ref() -> str:
    if base := os.environ.get("CONTRACT_BASE"):
        return base
    uncommitted = _git("diff", "--quiet", "HEAD", "--", str(SPEC)).returncode != 0
    return "HEAD" if uncommitted else "HEAD~1"


def _version(text: str, where: str) -> tuple[int, int, int]:
    version = str(yaml.safe_load(text)["info"]["version"])
    match = SEMVER.match(version)
    if not match:
        raise SystemExit(
            f"contract-check: info.version {version!r} ({where}) is not MAJOR.MINOR.PATCH"
        )
    major, minor, patch = (int(part) for part in match.groups())
    return major, minor, patch


def _breaking_changes(base_text: str, head_text: str) -> tuple[bool, str]:
    """Optic's verdict on the change from base_text to head_text, whatever their versions say.

    Optic lets any change pass once the major version was raised, so it compares the two with the
    base's version on both sides; the version rule is this script's.
    """
    base, head = yaml.safe_load(base_text), yaml.safe_load(head_text)
    head["info"]["version"] = base["info"]["version"]
    with tempfile.TemporaryDirectory() as directory:
        paths = Path(directory) / "base.yaml", Path(directory) / "head.yaml"
        for path, spec in zip(paths, (base, head), strict=True):
            path.write_text(yaml.safe_dump(spec, sort_keys=False, allow_unicode=True))
        result = subprocess.run(
            [str(OPTIC), "diff", *map(str, paths), "--check"],
            capture_output=True,
            text=True,
            env={**os.environ, "OPTIC_TELEMETRY_LEVEL": "off"},
            check=False,
        )
    if result.returncode not in (0, 1):
        raise SystemExit(f"contract-check: optic failed ({result.returncode}):\n{result.stderr}")
    # Locations point into the temporary copies, and --web is not how this gate is used.
    report = "\n".join(
        line for line in result.stdout.splitlines() if directory not in line and "--web" not in line
    )
    return result.returncode == 1, report


def main() -> int:
    if not OPTIC.exists():
        raise SystemExit("contract-check: Optic is not installed; run `make node-install`")
    ref = _base_ref()
    shown = _git("show", f"{ref}:{SPEC}")
    if shown.returncode != 0:
        print(f"contract-check: no contract at {ref}; nothing to compare")
        return 0
    base_text, head_text = shown.stdout, SPEC.read_text()
    if yaml.safe_load(base_text) == yaml.safe_load(head_text):
        print(f"contract-check: the contract is as at {ref}")
        return 0

    old, new = _version(base_text, ref), _version(head_text, "working tree")
    old_name, new_name = ".".join(map(str, old)), ".".join(map(str, new))
    breaking, report = _breaking_changes(base_text, head_text)
    print(report.rstrip())
    failures = []
    if new == old:
        failures.append(f"the contract changed since {ref} but info.version is still {new_name}")
    elif new < old:
        failures.append(f"info.version went down from {old_name} to {new_name}")
    if breaking and new[0] <= old[0]:
        failures.append(
            f"the change can break clients (above): raise the major version ({old_name} -> "
            f"{old[0] + 1}.0.0) or make the change compatible"
        )
    sections = (
        re.findall(r"^## (\S+)", CHANGELOG.read_text(), re.MULTILINE) if CHANGELOG.exists() else []
    )
    if new_name not in sections:
        failures.append(f"{CHANGELOG} has no section '## {new_name}'")
    for failure in failures:
        print(f"contract-check: FAIL: {failure}")
    if failures:
        return 1
    kind = "breaking (major)" if breaking else "compatible"
    print(f"contract-check: {old_name} ({ref}) -> {new_name}: {kind}; CHANGELOG has it")
    return 0


if __name__ == "__main__":
    sys.exit(main())
