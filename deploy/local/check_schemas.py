#!/usr/bin/env python3
"""Checks the shipped feed and mapping files against docs/schemas/, with the
jsonschema package (an implementation independent of the schemars types the
schemas are generated from).

    check_schemas.py [FILE.toml ...]   (default: deploy/feeds/**.toml, deploy/mappings/*.toml)

Every file must start with `#:schema PATH` (the line Taplo and other TOML
editors read), naming a schema under docs/schemas/ relative to the file, and
must validate against it. Then, so that a schema accepting anything cannot
pass, known-bad documents must fail: a misspelt field, an unknown source
kind, a cadence without its interval, a mapping with an unknown layout.
Exit 1 on any problem, each printed as `file: path: message`.
"""

import json
import sys
import tomllib
from pathlib import Path

import jsonschema
from referencing import Registry
from referencing.jsonschema import DRAFT202012

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = ROOT / "docs" / "schemas"


def registry() -> Registry:
    """Every schema under docs/schemas/, by file name (how they refer to each other)."""
    return Registry().with_resources(
        (path.name, DRAFT202012.create_resource(json.loads(path.read_text())))
        for path in sorted(SCHEMAS.glob("*.schema.json")))


def validator(name: str, reg: Registry) -> jsonschema.Draft202012Validator:
    schema = json.loads((SCHEMAS / name).read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema, registry=reg)


def problems(v: jsonschema.Draft202012Validator, doc: dict) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}"
            for e in sorted(v.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))]


def shipped_files() -> list[Path]:
    feeds = [p for p in sorted((ROOT / "deploy" / "feeds").rglob("*.toml"))
             if "mappings" not in p.relative_to(ROOT / "deploy" / "feeds").parts[:-1]]
    return feeds + sorted((ROOT / "deploy" / "mappings").glob("*.toml"))


def check_file(path: Path, reg: Registry) -> list[str]:
    text = path.read_text(encoding="utf-8")
    first = text.splitlines()[0] if text else ""
    if not first.startswith("#:schema "):
        return [f"{path}: the first line is not `#:schema PATH` (editors and this check read it)"]
    target = (path.parent / first[len("#:schema "):].strip()).resolve()
    if target.parent != SCHEMAS.resolve() or not target.is_file():
        return [f"{path}: `{first}` does not name a schema under docs/schemas/"]
    return [f"{path}: {p}" for p in problems(validator(target.name, reg), tomllib.loads(text))]


FEED = {"id": "x:1", "family": "csv", "election_id": "e", "source": {"kind": "http", "url": "https://h/x.csv"}}
MUST_FAIL = [
    ("feed-file.schema.json", "a misspelt field", {"feed": [dict(FEED, familly="csv")]}),
    ("feed-file.schema.json", "an unknown source kind",
     {"feed": [dict(FEED, source={"kind": "ftp", "url": "ftp://h/x"})]}),
    ("feed-file.schema.json", "a cadence without its interval", {"feed": [dict(FEED, cadence={"stale_after": "1m"})]}),
    ("feed-file.schema.json", "an inline csv mapping with an unknown field",
     {"feed": [dict(FEED, mapping={"delimter": ","})]}),
    ("html-table-mapping.schema.json", "an unknown layout", {"layout": "rows"}),
    ("csv-mapping.schema.json", "a field of the html-table mapping", {"layout": "unit-rows"}),
]
MUST_PASS = [
    ("feed-file.schema.json", "a minimal feed", {"feed": [FEED]}),
    ("feed-file.schema.json", "an html feed with its inline mapping",
     {"feed": [dict(FEED, family="html-table", source={"kind": "html", "url": "https://h/p"},
                    mapping={"layout": "unit-rows", "time_zone": "America/Chicago"})]}),
]


def main(argv: list[str]) -> int:
    reg = registry()
    files = [Path(a).resolve() for a in argv] or shipped_files()
    out = [p for f in files for p in check_file(f, reg)]
    for name, what, doc in MUST_FAIL:
        if not problems(validator(name, reg), doc):
            out.append(f"{name}: accepts {what}: {json.dumps(doc)}")
    for name, what, doc in MUST_PASS:
        out += [f"{name}: refuses {what}: {p}" for p in problems(validator(name, reg), doc)]
    print("\n".join(out) if out else f"ok: {len(files)} file(s) valid against docs/schemas/; "
          f"{len(MUST_FAIL)} bad documents refused, {len(MUST_PASS)} good ones accepted")
    return 1 if out else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
