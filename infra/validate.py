#!/usr/bin/env python3
"""Validate the Terraform in infra/ offline, without a terraform binary or provider plugin.

No terraform (or OpenTofu) binary can be installed where this project is built and tested, so this
module checks what `terraform validate` would catch and a plain parser would not:

* every `.tf` file parses (python-hcl2);
* every resource and data source type exists in the provider schema (infra/schema/, trimmed from the
  hashicorp/google and google-beta 6.50 schemas), and so does every argument and nested block in it;
  a block that may appear once appears once; required arguments and required blocks are present;
* provider blocks use only provider arguments; each provider that is used is in required_providers
  with the source the schema was made for; google-beta is used only for types google lacks;
* references to variables, locals, resources and data sources resolve, and every variable and
  local is used;
* variable and output blocks hold only their own arguments; variables have a type and a
  description, every non-bool variable has a validation block about itself, and defaults and
  example values pass `can(regex(...))` validations; outputs have a description;
* terraform.tfvars.example sets only declared variables, and every variable without a default.

Not covered, because the schema does not carry it: value types, computed attributes read through
references (`google_x.y.some_attribute`) and "exactly one of" rules. Nor an attribute set twice in
one block: the parser keeps one of them.

`python infra/validate.py [DIR]` prints the findings and exits 1 when there are any.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hcl2
from lark.exceptions import LarkError  # python-hcl2's parser: every parse failure is one of these

INFRA_DIR = Path(__file__).resolve().parent
SCHEMA_DIR = INFRA_DIR / "schema"
TFVARS_EXAMPLE = "terraform.tfvars.example"
PROVIDERS = ("google", "google-beta")

Body = dict[str, Any]
Schema = dict[str, Any]

# hcl2 marks blocks with this key, and keeps comments under the others: none is an argument.
_BLOCK_MARK = "__is_block__"
_HCL2_KEYS = {_BLOCK_MARK, "__comments__", "__inline_comments__"}
_TOP_LEVEL_KINDS = {"terraform", "provider", "variable", "locals", "resource", "data", "output"}
_META_ARGUMENTS = {"count", "for_each", "provider", "depends_on"}
_META_BLOCKS = {"lifecycle", "provisioner", "connection"}
_VARIABLE_KEYS = {"description", "type", "default", "validation", "sensitive", "nullable", "ephemeral"}
_OUTPUT_KEYS = {"description", "value", "sensitive", "depends_on", "precondition", "ephemeral"}
_NON_RESOURCE_ROOTS = {"var", "local", "data", "module", "each", "count", "self", "path", "terraform"}
# A traversal such as var.x, local.y, data.t.n or google_t.n.attr, not preceded by part of a longer name.
_TRAVERSAL = re.compile(r"(?<![\w.\-])([A-Za-z_][\w-]*)((?:\.[A-Za-z_][\w-]*)+)")
_REGEX_VALIDATION = re.compile(r'^\$\{can\(regex\("((?:[^"\\]|\\.)*)", var\.([\w-]+)\)\)\}$')
_HCL_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\"}


@dataclass(frozen=True)
class Finding:
    """One problem: the file, where in it (a dotted path), and what is wrong."""

    file: str
    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.where}: {self.message}"


@dataclass(frozen=True)
class Block:
    """A top-level block (resource, data, variable, output, provider, locals, terraform)."""

    file: str
    labels: tuple[str, ...]
    body: Body


@dataclass
class Config:
    """The top-level blocks of a Terraform directory by kind, and the files that did not parse."""

    blocks: dict[str, list[Block]] = field(default_factory=dict)
    parse_errors: list[Finding] = field(default_factory=list)

    def of(self, kind: str) -> list[Block]:
        """All blocks of one kind (e.g. "resource"), in file order."""
        return self.blocks.get(kind, [])


def unquote(text: str) -> str:
    """Strip the quotes hcl2 keeps around labels and string literals."""
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return text[1:-1]
    return text


def string_value(text: str) -> str:
    """The value of an HCL string literal as hcl2 prints it (quoted, escapes as in the source)."""
    raw = unquote(text)
    return re.sub(r"\\(.)", lambda m: _HCL_ESCAPES.get(m.group(1), m.group(0)), raw)


def _is_block(value: Any) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(item, dict) and item.get(_BLOCK_MARK) for item in value)
    )


def _unwrap(entry: Body, labels: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Body]]:
    """hcl2 nests a labelled block as {"label1": {"label2": body}}: yield (labels, body) pairs."""
    if entry.get(_BLOCK_MARK):
        yield labels, entry
        return
    for label, inner in entry.items():
        yield from _unwrap(inner, labels + (unquote(label),))


def parse(text: str, file: str) -> Body | Finding:
    """The parsed text (hcl2's dict), or a finding saying why it does not parse."""
    try:
        return hcl2.loads(text)
    except LarkError as exc:
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return Finding(file, "file", f"does not parse: {first_line}")


def load_texts(files: Mapping[str, str]) -> Config:
    """Parse Terraform sources given as {file name: text}."""
    config = Config()
    for name, text in files.items():
        parsed = parse(text, name)
        if isinstance(parsed, Finding):
            config.parse_errors.append(parsed)
            continue
        for kind, entries in parsed.items():
            if kind in _HCL2_KEYS:
                continue
            for entry in entries:
                for labels, body in _unwrap(entry):
                    config.blocks.setdefault(kind, []).append(Block(name, labels, body))
    return config


def load_directory(directory: Path = INFRA_DIR) -> Config:
    """Parse every `.tf` file of a directory (not its subdirectories)."""
    return load_texts({path.name: path.read_text() for path in sorted(directory.glob("*.tf"))})


def load_schemas(directory: Path = SCHEMA_DIR) -> dict[str, Schema]:
    """The provider schemas by provider local name ("google", "google-beta")."""
    return {name: json.loads((directory / f"{name}.json").read_text()) for name in PROVIDERS}


def provider_of(block: Block) -> str:
    """The provider local name a resource or data source uses (its `provider`, or its type prefix)."""
    explicit = block.body.get("provider")
    if isinstance(explicit, str):
        return unquote(explicit).removeprefix("${").removesuffix("}").split(".")[0]
    return block.labels[0].split("_")[0]


# --- references ---------------------------------------------------------------------------------


def _scan_template(text: str, i: int, closing_quote: bool) -> tuple[list[str], int]:
    """Scan template text from i (to the closing quote, or the end); return its expressions' code."""
    codes: list[str] = []
    while i < len(text):
        if text[i] == "\\":
            i += 2
        elif closing_quote and text[i] == '"':
            return codes, i + 1
        elif text.startswith("$${", i) or text.startswith("%%{", i):
            i += 3
        elif text.startswith("${", i) or text.startswith("%{", i):
            nested, i = _scan_expression(text, i + 2)
            codes.extend(nested)
        else:
            i += 1
    return codes, i


def _scan_expression(text: str, i: int) -> tuple[list[str], int]:
    """Scan an expression from i to its closing brace; string literals are blanked in its code."""
    code: list[str] = []
    nested: list[str] = []
    depth = 0
    while i < len(text):
        char = text[i]
        if char == '"':
            inner, i = _scan_template(text, i + 1, closing_quote=True)
            nested.extend(inner)
            code.append('""')
            continue
        if char == "{":
            depth += 1
        elif char == "}":
            if depth == 0:
                return ["".join(code), *nested], i + 1
            depth -= 1
        code.append(char)
        i += 1
    return ["".join(code), *nested], i


def expression_code(value: str) -> list[str]:
    """The expression code inside one value as hcl2 prints it, without string literal text."""
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return _scan_template(value[1:-1], 0, closing_quote=False)[0]
    if value.startswith("${"):
        return _scan_template(value, 0, closing_quote=False)[0]
    return [value]  # a bare traversal or keyword, e.g. `provider = google-beta`


def _strings(value: Any) -> Iterator[str]:
    """Every string in a parsed value, however deeply nested (map keys excluded)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            if key not in _HCL2_KEYS:
                yield from _strings(item)


def references(value: Any) -> Iterator[tuple[str, ...]]:
    """Every traversal (as its dotted parts) in the expressions of a parsed value."""
    for text in _strings(value):
        for code in expression_code(text):
            for match in _TRAVERSAL.finditer(code):
                yield (match.group(1), *match.group(2).split(".")[1:])


def _check_references(config: Config, schemas: Mapping[str, Schema]) -> Iterator[Finding]:
    variables = {b.labels[0] for b in config.of("variable")}
    local_names = {k for b in config.of("locals") for k in b.body if k not in _HCL2_KEYS}
    resources = {b.labels for b in config.of("resource")}
    data_sources = {b.labels for b in config.of("data")}
    known_types = {t for s in schemas.values() for t in s["resources"]} | {r[0] for r in resources}

    checked: list[tuple[Block, Any]] = []
    for kind in ("resource", "data", "output", "locals", "provider"):
        checked.extend((b, b.body) for b in config.of(kind))
    # A variable's type is a type expression, not a reference; its validations are expressions.
    checked.extend((b, b.body.get("validation", [])) for b in config.of("variable"))

    used: set[tuple[str, ...]] = set()
    for block, value in checked:
        where = ".".join(block.labels) or "locals"
        for ref in references(value):
            used.add(ref[:2])
            root = ref[0]
            if root == "var" and ref[1] not in variables:
                yield Finding(block.file, where, f"reference to undeclared variable var.{ref[1]}")
            elif root == "local" and ref[1] not in local_names:
                yield Finding(block.file, where, f"reference to undeclared local local.{ref[1]}")
            elif root == "data":
                if len(ref) < 3 or tuple(ref[1:3]) not in data_sources:
                    yield Finding(block.file, where, f"reference to undeclared data source {'.'.join(ref[:3])}")
            elif (
                root not in _NON_RESOURCE_ROOTS
                and (root in known_types or root.startswith("google_"))
                and tuple(ref[:2]) not in resources
            ):
                yield Finding(block.file, where, f"reference to undeclared resource {'.'.join(ref[:2])}")

    # Terraform accepts unused declarations; here they are dead code.
    for block in config.of("variable"):
        if ("var", block.labels[0]) not in used:
            yield Finding(block.file, f"variable.{block.labels[0]}", "is declared but never used")
    for block in config.of("locals"):
        for name in block.body:
            if name not in _HCL2_KEYS and ("local", name) not in used:
                yield Finding(block.file, f"local.{name}", "is declared but never used")


# --- schema -------------------------------------------------------------------------------------


def _check_body(body: Body, schema: Schema, file: str, where: str, top_level: bool = False) -> Iterator[Finding]:
    """Check one block body against its schema, then its nested blocks, recursively."""
    arguments, blocks = schema["arguments"], schema["blocks"]
    present: set[str] = set()
    for key, value in body.items():
        if key in _HCL2_KEYS or (top_level and key in _META_ARGUMENTS | _META_BLOCKS):
            continue
        if key == "dynamic":
            for entry in value:
                for labels, dynamic in _unwrap(entry):
                    name = labels[0]
                    present.add(name)
                    if name not in blocks:
                        yield Finding(file, f"{where}.dynamic.{name}", "no such block in the provider schema")
                        continue
                    for content in dynamic.get("content", []):
                        yield from _check_body(content, blocks[name], file, f"{where}.{name}")
            continue
        present.add(key)
        if _is_block(value):
            if key not in blocks:
                hint = f"`{key}` is an argument: write `{key} = ...`" if key in arguments else "no such block"
                yield Finding(file, f"{where}.{key}", f"{hint} in the provider schema")
                continue
            if not blocks[key]["list"] and len(value) > 1:
                yield Finding(file, f"{where}.{key}", f"block may appear once, found {len(value)}")
            for item in value:
                yield from _check_body(item, blocks[key], file, f"{where}.{key}")
        elif key not in arguments:
            hint = f"`{key}` is a block: write `{key} {{ ... }}`" if key in blocks else "no such argument"
            yield Finding(file, f"{where}.{key}", f"{hint} in the provider schema")
        elif top_level and key == "id":
            yield Finding(file, f"{where}.id", "`id` is computed by the provider and cannot be set")
    for name, argument in arguments.items():
        if argument["required"] and name not in present:
            yield Finding(file, where, f"missing required argument `{name}`")
    for name, block in blocks.items():
        if block["required"] and name not in present:
            yield Finding(file, where, f"missing required block `{name}`")


def _check_typed_blocks(config: Config, schemas: Mapping[str, Schema]) -> Iterator[Finding]:
    for kind, section in (("resource", "resources"), ("data", "data_sources")):
        for block in config.of(kind):
            type_name = block.labels[0]
            where = ".".join((kind, *block.labels)) if kind == "data" else ".".join(block.labels)
            provider = provider_of(block)
            if provider not in schemas:
                yield Finding(block.file, where, f"provider `{provider}` has no schema in infra/schema/")
                continue
            in_google = type_name in schemas["google"][section]
            if provider == "google-beta" and in_google:
                yield Finding(block.file, where, f"{type_name} exists in the google provider: don't use google-beta")
            schema = schemas[provider][section].get(type_name)
            if schema is None:
                if not in_google:  # a google type under google-beta was reported just above
                    yield Finding(
                        block.file,
                        where,
                        f"{kind} type {type_name} is not in the {provider} provider schema "
                        "(if it is new to infra/, rerun infra/schema/trim.py)",
                    )
                continue
            yield from _check_body(block.body, schema, block.file, where, top_level=True)


def _required_providers(config: Config) -> dict[str, tuple[str, Body]]:
    """required_providers entries by local name, with the file that declares them."""
    declared: dict[str, tuple[str, Body]] = {}
    for block in config.of("terraform"):
        for entry in block.body.get("required_providers", []):
            declared.update({k: (block.file, v) for k, v in entry.items() if isinstance(v, dict)})
    return declared


def _check_providers(config: Config, schemas: Mapping[str, Schema]) -> Iterator[Finding]:
    declared = _required_providers(config)
    used = {(provider_of(b), b.file, ".".join(b.labels)) for kind in ("resource", "data") for b in config.of(kind)}
    for provider, file, where in sorted(used):
        if provider not in declared:
            yield Finding(file, where, f"provider `{provider}` is not in terraform.required_providers")
    for name, (file, requirement) in declared.items():
        if name in schemas and unquote(requirement.get("source", "")) != schemas[name]["provider"]:
            yield Finding(file, f"required_providers.{name}", f"source must be {schemas[name]['provider']}")
    for block in config.of("provider"):
        name = block.labels[0]
        if name not in schemas:
            yield Finding(block.file, f"provider.{name}", "no schema for this provider in infra/schema/")
            continue
        yield from _check_body(block.body, schemas[name]["provider_config"], block.file, f"provider.{name}")


# --- variables, outputs, example values ---------------------------------------------------------


def _regex_validations(block: Block) -> Iterator[str]:
    """The patterns of the variable's validations written exactly as `can(regex("...", var.NAME))`."""
    for validation in block.body.get("validation", []):
        match = _REGEX_VALIDATION.match(str(validation.get("condition", "")))
        if match and match.group(2) == block.labels[0]:
            yield string_value(f'"{match.group(1)}"')


def _check_value(block: Block, value: Any, file: str, what: str) -> Iterator[Finding]:
    if not isinstance(value, str) or not (value.startswith('"') and value.endswith('"')):
        return
    text = string_value(value)
    for pattern in _regex_validations(block):
        if not re.search(pattern, text):
            yield Finding(file, f"variable.{block.labels[0]}", f"{what} {text!r} fails its validation /{pattern}/")


def _unknown_keys(block: Block, kind: str, allowed: set[str]) -> Iterator[Finding]:
    for key in sorted(block.body.keys() - allowed - _HCL2_KEYS):
        yield Finding(block.file, f"{kind}.{block.labels[0]}.{key}", f"not an argument of {kind} blocks")


def _check_variables(config: Config) -> Iterator[Finding]:
    for block in config.of("variable"):
        name, body = block.labels[0], block.body
        where = f"variable.{name}"
        yield from _unknown_keys(block, "variable", _VARIABLE_KEYS)
        if not unquote(str(body.get("description", ""))).strip():
            yield Finding(block.file, where, "has no description")
        if "type" not in body:
            yield Finding(block.file, where, "has no type")
        validations = body.get("validation", [])
        if body.get("type") != "bool" and not validations:
            yield Finding(block.file, where, "has no validation block")
        for validation in validations:
            if "error_message" not in validation:
                yield Finding(block.file, where, "validation has no error_message")
            if ("var", name) not in {ref[:2] for ref in references(validation.get("condition", ""))}:
                yield Finding(block.file, where, "validation condition does not refer to the variable")
        if "default" in body:
            yield from _check_value(block, body["default"], block.file, "default")


def _check_outputs(config: Config) -> Iterator[Finding]:
    for block in config.of("output"):
        yield from _unknown_keys(block, "output", _OUTPUT_KEYS)
        if not unquote(str(block.body.get("description", ""))).strip():
            yield Finding(block.file, f"output.{block.labels[0]}", "has no description")
        if "value" not in block.body:
            yield Finding(block.file, f"output.{block.labels[0]}", "has no value")


def check_tfvars(config: Config, text: str, file: str = TFVARS_EXAMPLE) -> list[Finding]:
    """An example tfvars file sets only declared variables, all variables without a default, and
    values that pass the variables' regex validations."""
    parsed = parse(text, file)
    if isinstance(parsed, Finding):
        return [parsed]
    values = {k: v for k, v in parsed.items() if k not in _HCL2_KEYS}
    variables = {b.labels[0]: b for b in config.of("variable")}
    findings = [Finding(file, key, "is not a declared variable") for key in values if key not in variables]
    findings += [
        Finding(file, name, "has no default and is missing here")
        for name, block in variables.items()
        if "default" not in block.body and name not in values
    ]
    for key, value in values.items():
        if key in variables:
            findings += _check_value(variables[key], value, file, "example value")
    return findings


def validate(config: Config, schemas: Mapping[str, Schema]) -> list[Finding]:
    """All findings for a parsed configuration (parse errors included)."""
    findings = list(config.parse_errors)
    for kind, blocks in config.blocks.items():
        if kind not in _TOP_LEVEL_KINDS:
            findings += [Finding(b.file, kind, "unsupported top-level block in infra/") for b in blocks]
    findings += _check_providers(config, schemas)
    findings += _check_typed_blocks(config, schemas)
    findings += _check_references(config, schemas)
    findings += _check_variables(config)
    findings += _check_outputs(config)
    return findings


def validate_directory(directory: Path = INFRA_DIR, schema_dir: Path = SCHEMA_DIR) -> list[Finding]:
    """Validate a Terraform directory and its terraform.tfvars.example, if it has one."""
    config = load_directory(directory)
    findings = validate(config, load_schemas(schema_dir))
    example = directory / TFVARS_EXAMPLE
    if example.exists():
        findings += check_tfvars(config, example.read_text())
    return findings


def main(argv: list[str]) -> int:
    """Print the findings for a directory (default: infra/); exit status 1 when there are any."""
    directory = Path(argv[1]) if len(argv) > 1 else INFRA_DIR
    findings = validate_directory(directory)
    for finding in findings:
        print(finding)
    print(f"{len(findings)} finding(s) in {directory}")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
