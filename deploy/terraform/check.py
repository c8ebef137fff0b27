"""What CI can check of the Terraform without terraform, AWS or a network.

    python3 deploy/terraform/check.py [DIR]      # default: this file's directory

Parses every .tf file with python-hcl2 (a parse error fails), then checks
the references between them:

* every `var.X`, `local.X`, `data.T.N` and resource `T.N` used is declared;
* every declared variable and local is used, every variable has a type and a
  description, every output a description;
* every `file("${path.module}/F")` names a file that exists.

Prints one JSON line (what was found: files, variables, resources, the
VOTEWIRE_ environment names the task definitions set and the CloudWatch
metric names autoscaling reads) for the tests to cross-check against
votewire itself, and exits 1 listing every problem.

Not checked here (docs/deploy.md): provider schemas (argument names and
types), expressions' types, `terraform plan` against an account.
"""

import json
import pathlib
import re
import sys

import hcl2

REF = {
    "var": re.compile(r"\bvar\.([A-Za-z_][A-Za-z0-9_-]*)"),
    "local": re.compile(r"\blocal\.([A-Za-z_][A-Za-z0-9_-]*)"),
    "data": re.compile(r"\bdata\.([a-z][a-z0-9_]*)\.([A-Za-z_][A-Za-z0-9_-]*)"),
    # A resource reference: <provider>_<type>.<name> (not inside data.).
    "resource": re.compile(r"(?<![.\w])((?:aws|random)_[a-z0-9_]+)\.([A-Za-z_][A-Za-z0-9_-]*)"),
}
FILE_FN = re.compile(r'file\("\$\{path\.module\}/([^"]+)"\)')
ENV_NAME = re.compile(r'"?(VOTEWIRE_[A-Z0-9_]+)')
METRIC = re.compile(r'metric_name\s*=\s*"([^"]+)"')


def strip_comments(text):
    """The text without # and // comments (outside strings, roughly: a
    comment marker inside a string in these files is not expected)."""
    out = []
    for line in text.splitlines():
        in_string = False
        cut = len(line)
        for i, ch in enumerate(line):
            if ch == '"' and (i == 0 or line[i - 1] != "\\"):
                in_string = not in_string
            elif not in_string and (ch == "#" or line.startswith("//", i)):
                cut = i
                break
        out.append(line[:cut])
    return "\n".join(out)


def unquote(name):
    """python-hcl2 8 keeps the quotes of block labels."""
    return name.strip('"')


def main():
    root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else pathlib.Path(__file__).parent)
    files = sorted(root.glob("*.tf"))
    problems = []
    declared = {"var": {}, "local": {}, "data": set(), "resource": set(), "output": {}}
    texts = {}
    for f in files:
        try:
            doc = hcl2.load(open(f))
        except Exception as e:  # python-hcl2 raises lark errors of several kinds
            problems.append(f"{f.name}: does not parse: {e}")
            continue
        texts[f.name] = strip_comments(f.read_text())
        for block in doc.get("variable", []):
            for name, body in block.items():
                declared["var"][unquote(name)] = body
        for block in doc.get("locals", []):
            for name in block:
                if not name.startswith("__"):
                    declared["local"][unquote(name)] = f.name
        for block in doc.get("data", []):
            for typ, named in block.items():
                for name in named:
                    declared["data"].add((unquote(typ), unquote(name)))
        for block in doc.get("resource", []):
            for typ, named in block.items():
                for name in named:
                    declared["resource"].add((unquote(typ), unquote(name)))
        for block in doc.get("output", []):
            for name, body in block.items():
                declared["output"][unquote(name)] = body

    used = {"var": set(), "local": set(), "data": set(), "resource": set()}
    for name, text in texts.items():
        for kind, pattern in REF.items():
            for m in pattern.finditer(text):
                key = m.group(1) if kind in ("var", "local") else (m.group(1), m.group(2))
                used[kind].add(key)
                known = declared[kind] if kind in ("var", "local") else declared[kind]
                if key not in known:
                    label = key if isinstance(key, str) else ".".join(key)
                    problems.append(f"{name}: {kind} {label} is used but not declared")
        for m in FILE_FN.finditer(text):
            if not (root / m.group(1)).is_file():
                problems.append(f"{name}: file({m.group(1)!r}) does not exist")

    for name, body in declared["var"].items():
        if name not in used["var"]:
            problems.append(f"variable {name} is declared but never used")
        if "description" not in body or "type" not in body:
            problems.append(f"variable {name} needs a type and a description")
    for name in declared["local"]:
        if name not in used["local"]:
            problems.append(f"local {name} is declared but never used")
    for name, body in declared["output"].items():
        if "description" not in body:
            problems.append(f"output {name} needs a description")

    all_text = "\n".join(texts.values())
    report = {
        "files": [f.name for f in files],
        "variables": sorted(declared["var"]),
        "resources": sorted(".".join(r) for r in declared["resource"]),
        "outputs": sorted(declared["output"]),
        "environment": sorted(set(ENV_NAME.findall(all_text))),
        "metrics": sorted(set(METRIC.findall(all_text))),
        "problems": problems,
    }
    print(json.dumps(report))
    if problems:
        for p in problems:
            print(f"terraform check: {p}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
