#!/usr/bin/env python3
"""Write the trimmed provider schemas in this folder from the full google / google-beta schemas.

The full schemas (hashicorp/google and google-beta 6.50.0, about 1.2 MB each) are kept outside the
repository; infra/validate.py only needs the resource and data source types that infra/ uses, plus
the provider block's arguments. Each trimmed file keeps, from its provider's full schema:

* provider_config, provider, provider_version and derived_from;
* google.json: every type infra/ uses with any provider that google has, so the validator can tell
  when google-beta is used for a type google has;
* google-beta.json: the types infra/ uses with google-beta.

Rerun after adding a resource or data source type to infra/:
    python infra/schema/trim.py [--source DIR_WITH_FULL_SCHEMAS]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

SCHEMA_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(SCHEMA_DIR.parent))

import validate  # noqa: E402  (infra/ is not a package: found through sys.path)

# Where the full schemas sit beside the repository clone (the team's shared folder).
DEFAULT_SOURCE = SCHEMA_DIR.parents[2] / "shared" / "terraform"
SOURCE_FILES = {"google": "google_provider_schema.json", "google-beta": "google_beta_provider_schema.json"}
SECTIONS = {"resource": "resources", "data": "data_sources"}


def used_types(config: validate.Config) -> dict[str, dict[str, set[str]]]:
    """Types used per provider: {provider: {"resources": {...}, "data_sources": {...}}}."""
    used: dict[str, dict[str, set[str]]] = {p: {s: set() for s in SECTIONS.values()} for p in validate.PROVIDERS}
    for kind, section in SECTIONS.items():
        for block in config.of(kind):
            provider = validate.provider_of(block)
            used.setdefault(provider, {s: set() for s in SECTIONS.values()})[section].add(block.labels[0])
    return used


def trim(full: dict[str, Any], wanted: dict[str, set[str]], source_name: str) -> dict[str, Any]:
    """The part of one provider's full schema that holds the wanted types (those it has)."""
    trimmed: dict[str, Any] = {
        "provider": full["provider"],
        "provider_version": full["provider_version"],
        "derived_from": full["derived_from"],
        "trimmed": f"infra/schema/trim.py from {source_name}: only the types infra/ uses",
        "provider_config": full["provider_config"],
    }
    for section in SECTIONS.values():
        trimmed[section] = {t: full[section][t] for t in sorted(wanted[section]) if t in full[section]}
    return trimmed


def trimmed_schemas(source: Path, infra_dir: Path = validate.INFRA_DIR) -> dict[str, dict[str, Any]]:
    """The trimmed schema of each provider, by provider local name."""
    used = used_types(validate.load_directory(infra_dir))
    every_type = {s: set().union(*(u[s] for u in used.values())) for s in SECTIONS.values()}
    wanted = {"google": every_type, "google-beta": used["google-beta"]}
    result = {}
    for provider, file_name in SOURCE_FILES.items():
        full = json.loads((source / file_name).read_text())
        result[provider] = trim(full, wanted[provider], file_name)
    return result


def render(schema: dict[str, Any]) -> str:
    """Stable text for a schema file, so that diffs show what changed."""
    return json.dumps(schema, indent=1, sort_keys=True) + "\n"


def main() -> int:
    """Write google.json and google-beta.json next to this script."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE, help="folder with the full schemas")
    args = parser.parse_args()
    for provider, schema in trimmed_schemas(args.source).items():
        path = SCHEMA_DIR / f"{provider}.json"
        path.write_text(render(schema))
        counts = ", ".join(f"{len(schema[s])} {s}" for s in SECTIONS.values())
        print(f"{path.relative_to(SCHEMA_DIR.parents[1])}: {counts}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
