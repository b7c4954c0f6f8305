"""Semantic version rules of the registry.

- The first model is ``1.0.0``.
- A promoted challenger bumps the latest release: the patch when its input schema is the
  champion's, the minor when it only adds input features, the major when it removes or renames
  a feature or changes a feature's type (clients sending the old fields would break).
- A rejected challenger gets a pre-release of the version it would have had
  (``1.0.3-rc.1``, then ``1.0.3-rc.2``...), so every registered version is unique.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import semantic_version

FIRST_VERSION = semantic_version.Version("1.0.0")
PRERELEASE_TAG = "rc"
PATCH, MINOR, MAJOR = "patch", "minor", "major"


def schema_change(old: Mapping[str, str], new: Mapping[str, str]) -> str:
    """How a new input schema differs from an old one.

    Args:
        old: Raw feature name → type of the current champion.
        new: Raw feature name → type of the challenger.

    Returns:
        ``major`` when a feature was removed (a rename is a removal plus an addition) or changed
        type, ``minor`` when features were only added, ``patch`` when the schema is the same.
    """
    removed = old.keys() - new.keys()
    retyped = {name for name in old.keys() & new.keys() if old[name] != new[name]}
    if removed or retyped:
        return MAJOR
    if new.keys() - old.keys():
        return MINOR
    return PATCH


def bump(version: semantic_version.Version, change: str) -> semantic_version.Version:
    """The next release after ``version`` for a change of kind ``patch``, ``minor`` or ``major``."""
    return {PATCH: version.next_patch, MINOR: version.next_minor, MAJOR: version.next_major}[change]()


def assign_version(
    existing: Iterable[str],
    champion_schema: Mapping[str, str] | None,
    schema: Mapping[str, str],
    promoted: bool,
) -> str:
    """The version number of a newly registered model.

    Releases are numbered from the latest release (not the champion, which a rollback may have
    moved back), so numbers only grow and never repeat.

    Args:
        existing: Versions already registered under the model name.
        champion_schema: The champion's input schema (None when there is no champion).
        schema: The new model's input schema.
        promoted: Whether it becomes champion (a release) or not (a pre-release).

    Returns:
        The version, e.g. ``1.1.0`` or ``1.0.3-rc.2``.
    """
    parsed = [semantic_version.Version(v) for v in existing]
    releases = [v for v in parsed if not v.prerelease]
    if not releases:
        target = FIRST_VERSION
    else:
        change = schema_change(champion_schema, schema) if champion_schema is not None else PATCH
        target = bump(max(releases), change)
    if promoted:
        return str(target)
    candidates = [
        int(v.prerelease[1])
        for v in parsed
        if (v.major, v.minor, v.patch) == (target.major, target.minor, target.patch)
        and len(v.prerelease) == 2 and v.prerelease[0] == PRERELEASE_TAG and v.prerelease[1].isdigit()
    ]
    return f"{target}-{PRERELEASE_TAG}.{max(candidates, default=0) + 1}"
