#!/usr/bin/env python3
"""Run every shell block of the README and docs/, as written, against the local stack.

    deploy/local/docs-test [--list] [FILE.md ...]   (default: README.md docs/*.md)

--list checks how every block is marked and prints what would run, running nothing;
--self-test runs the runner on small documents whose outcome is known.

Each document runs in a shell of its own, from the repository root, with only
HOME, PATH, USER, LANG and the Rust toolchain's variables from the caller: the
stack's addresses, tokens and PATH additions come from the document's own
blocks, in order, as a reader at a new terminal would type them. A block fails
the run when a command in it fails (`set -e -o pipefail`).

Every fenced block must say what it is: `sh` (or `bash`) blocks run; `text`,
`toml`, `json`, `python`, `hcl`, ... are shown, not run. An HTML comment on the
line before a `sh` block changes how it runs, and is visible to whoever reads
the Markdown source:

    <!-- doc-test: service; ready: CMD -->   the block starts a long-running
        service: it runs in the background (as the block's line ended with
        `&`, so it sees the shell's variables), in a process group of its own, until CMD succeeds (120 s at most; the run fails if
        the service exits first), and gets Ctrl-C when the document ends; it
        must then exit 0 (or 130).
    <!-- doc-test: not run: REASON -->   the block is not run here; the
        summary prints REASON (an AWS account, the command running this one).

Logs: target/docs-test/<document>.log, and one per service beside it.
Exit 1 if any document fails, 2 on a block that does not say what it is.
"""

import os
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHELL_LANGS = {"sh", "bash", "shell"}
SHOWN_LANGS = {"text", "toml", "json", "python", "hcl", "yaml", "rust", "http", "console-output"}
FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
DIRECTIVE = re.compile(r"^\s*<!--\s*doc-test:\s*(?P<body>.*?)\s*-->\s*$")
READY_TIMEOUT_S = 120
STOP_TIMEOUT_S = 20
# CARGO_INCREMENTAL too: the build setting of the run around the check (CI
# sets 0), so a block's `cargo build` reuses the test build instead of
# rebuilding the workspace's crates (40 s of CI at 0650ca5).
PASSED_ENV = (
    "HOME", "PATH", "USER", "LANG", "CARGO_HOME", "RUSTUP_HOME", "RUSTUP_TOOLCHAIN",
    "CARGO_INCREMENTAL",
)


@dataclass
class Block:
    doc: Path
    line: int  # 1-based line of the opening fence
    lang: str
    text: str
    service_ready: str | None = None
    not_run: str | None = None

    @property
    def where(self) -> str:
        return f"{self.doc.relative_to(ROOT)}:{self.line}"


@dataclass
class Document:
    path: Path
    blocks: list[Block] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def parse(path: Path) -> Document:
    doc = Document(path)
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence, info = len(m["indent"]), m["fence"], m["info"].strip()
        start = i
        body = []
        i += 1
        while i < len(lines):
            close = FENCE.match(lines[i])
            if close and close["fence"][0] == fence[0] and len(close["fence"]) >= len(fence) and not close["info"].strip():
                break
            body.append(lines[i][indent:] if lines[i][:indent].strip() == "" else lines[i])
            i += 1
        else:
            doc.problems.append(f"{path.relative_to(ROOT)}:{start + 1}: a fence that never closes")
        i += 1
        lang = info.split()[0] if info else ""
        block = Block(path, start + 1, lang, "\n".join(body) + "\n")
        prev = start - 1
        while prev >= 0 and not lines[prev].strip():
            prev -= 1
        directive = DIRECTIVE.match(lines[prev]) if prev >= 0 else None
        if not lang:
            doc.problems.append(
                f"{block.where}: a block that does not say what it is: open it with "
                "```sh (run by this check) or ```text, ```toml, ... (shown, not run)")
        elif lang not in SHELL_LANGS and lang not in SHOWN_LANGS:
            doc.problems.append(f"{block.where}: unknown block language {lang!r}")
        if directive:
            body_text = directive["body"]
            if lang not in SHELL_LANGS:
                doc.problems.append(f"{block.where}: a doc-test directive on a {lang or 'bare'} block")
            elif body_text.startswith("not run:"):
                block.not_run = body_text[len("not run:"):].strip()
                if not block.not_run:
                    doc.problems.append(f"{block.where}: 'not run:' without a reason")
            elif body_text.startswith("service;"):
                ready = body_text[len("service;"):].strip()
                if not ready.startswith("ready:"):
                    doc.problems.append(f"{block.where}: a service directive needs 'ready: CMD'")
                block.service_ready = ready[len("ready:"):].strip()
                if not block.service_ready:
                    doc.problems.append(f"{block.where}: 'ready:' without a command")
            else:
                doc.problems.append(f"{block.where}: unknown doc-test directive {body_text!r}")
        doc.blocks.append(block)
    # A doc-test comment that no block takes (misspelt, split, or with text
    # between it and its block) would be ignored without a word.
    attached = {b.line for b in doc.blocks}
    for n, line in enumerate(lines):
        if "doc-test" in line and line.lstrip().startswith("<!--"):
            nxt = n + 1
            while nxt < len(lines) and not lines[nxt].strip():
                nxt += 1
            if not DIRECTIVE.match(line) or nxt + 1 not in attached:
                doc.problems.append(f"{path.relative_to(ROOT)}:{n + 1}: a doc-test comment that is not "
                                    "`<!-- doc-test: ... -->` on the line before a block")
    return doc


PRELUDE = r"""
set -e -o pipefail
__where=""
__services=()
__log_dir=%(log_dir)s
trap '__rc=$?; echo "doc-test: FAILED: $__where: exit $__rc from: $BASH_COMMAND" >&2' ERR
# Services stop with the document, whether it passed or not, and so do
# the jobs a block started with `&`.
__stop_jobs() {
  local pid
  for pid in $(jobs -p); do kill -INT "$pid" 2>/dev/null || true; done
  sleep 1
  for pid in $(jobs -p); do kill -KILL "$pid" 2>/dev/null || true; done
}
trap '__rc=$?; __stop_services || true; __stop_jobs; exit $__rc' EXIT
trap 'exit 130' INT TERM
__stop_services() {
  local pid rc status=0 t
  for pid in "${__services[@]}"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "doc-test: a service (pid $pid) stopped before the end of the document" >&2
      status=1
    fi
    kill -INT -- "-$pid" 2>/dev/null || true
  done
  for pid in "${__services[@]}"; do
    t=0
    while kill -0 "$pid" 2>/dev/null && [ "$t" -lt %(stop)d ]; do sleep 1; t=$((t + 1)); done
    if kill -0 "$pid" 2>/dev/null; then
      echo "doc-test: a service (pid $pid) ignored Ctrl-C for %(stop)d s; killing it" >&2
      kill -KILL -- "-$pid" 2>/dev/null || true
      status=1
    fi
    rc=0; wait "$pid" || rc=$?
    if [ "$rc" -ne 0 ] && [ "$rc" -ne 130 ]; then
      echo "doc-test: a service (pid $pid) exited $rc after Ctrl-C" >&2
      status=1
    fi
  done
  return $status
}
__service() {  # where, ready command, log name; the block on stdin
  local where=$1 ready=$2 log="$__log_dir/$3" code pid t=0
  code=$(cat)
  # A subshell of this one, as `cmd &` in the reader's shell: it sees the
  # shell variables set before it (TOKEN=...). Job control gives it a
  # process group of its own (Ctrl-C for it alone) and keeps SIGINT live:
  # a script's plain `&` ignores it.
  set -m
  ( eval "$code"; wait ) >"$log" 2>&1 </dev/null &
  pid=$!
  set +m
  __services+=("$pid")
  # A second first, so that a service that cannot start (its port taken)
  # has exited before another process's answer could pass for its own.
  sleep 1
  until kill -0 "$pid" 2>/dev/null && ( eval "$ready" ) >/dev/null 2>&1; do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "doc-test: FAILED: $where: the service exited before it was ready; its log ($log):" >&2
      tail -n 40 "$log" >&2
      return 1
    fi
    if [ "$t" -ge %(ready)d ]; then
      echo "doc-test: FAILED: $where: not ready within %(ready)d s ($ready); its log ($log):" >&2
      tail -n 40 "$log" >&2
      return 1
    fi
    sleep 1; t=$((t + 1))
  done
  echo "doc-test: $where: service ready (pid $pid, log $log)"
}
"""

EPILOGUE = r"""
__where="the end of the document"
trap - EXIT
__stop_services
__stop_jobs
echo "doc-test: every block ran"
"""


def script_for(doc: Document, log_dir: Path, stem: str) -> str:
    parts = [PRELUDE % {"log_dir": shlex.quote(str(log_dir)), "ready": READY_TIMEOUT_S, "stop": STOP_TIMEOUT_S}]
    for n, b in enumerate(doc.blocks):
        if b.lang not in SHELL_LANGS or b.not_run is not None:
            continue
        parts.append(f"\n__where={shlex.quote(b.where)}\necho {shlex.quote('doc-test: ' + b.where)}\n")
        if b.service_ready is not None:
            log = f"{stem}-{b.line}.service.log"
            marker = f"__DOC_TEST_BLOCK_{n}__"
            parts.append(f"__service {shlex.quote(b.where)} {shlex.quote(b.service_ready)} {shlex.quote(log)} <<'{marker}'\n{b.text}{marker}\n")
        else:
            parts.append(b.text)
    parts.append(EPILOGUE)
    return "".join(parts)


DOCUMENT_TIMEOUT_S = 900


def run_script(script: Path, out) -> int:
    """Runs one document's script; past DOCUMENT_TIMEOUT_S (a block that
    never returns) its whole session gets SIGINT, then SIGKILL."""
    proc = subprocess.Popen(["bash", str(script)], cwd=ROOT, env=reader_env(), stdin=subprocess.DEVNULL,
                            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        return proc.wait(timeout=DOCUMENT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        out.write(f"\ndoc-test: FAILED: still running after {DOCUMENT_TIMEOUT_S} s; stopped\n".encode())
        os.killpg(proc.pid, 2)
        try:
            proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()
        return 124


def reader_env() -> dict[str, str]:
    env = {k: os.environ[k] for k in PASSED_ENV if k in os.environ}
    env.setdefault("LANG", "C.UTF-8")
    env["TERM"] = "dumb"
    return env


SELF_TEST_CASES = [
    # (name, markdown, expected exit) -- the runner's own contract.
    ("a passing document", "```sh\nX=1\n```\n\n```text\nshown\n```\n\n```sh\ntest \"$X\" = 1\n```\n", 0),
    ("a failing command mid-block", "```sh\ntrue\nfalse\ntrue\n```\n", 1),
    ("a failure inside a pipeline", "```sh\nfalse | cat\n```\n", 1),
    ("a block that does not say what it is", "```\necho hi\n```\n", 2),
    ("a service that sees shell variables and stops on Ctrl-C",
     "```sh\nT=$(mktemp)\n```\n<!-- doc-test: service; ready: test -s \"$T\" -->\n"
     "```sh\necho up > \"$T\"; exec sleep 300\n```\n", 0),
    ("a service that exits before it is ready",
     "<!-- doc-test: service; ready: false -->\n```sh\nexit 3\n```\n", 1),
    ("a not-run block without a reason", "<!-- doc-test: not run: -->\n```sh\nfalse\n```\n", 2),
    ("a block that exits 0 before the next one", "```sh\nexit 0\n```\n\n```sh\nfalse\n```\n", 1),
    ("a heredoc left open", "```sh\ncat <<'EOF'\nx\n```\n\n```sh\nfalse\n```\n", 2),
    ("a service directive without a ready command", "<!-- doc-test: service; ready: -->\n```sh\nsleep 1\n```\n", 2),
    ("a misspelt directive", "<!-- doc-tset: not run: x -->\n<!-- doc-test: nto run: x -->\n```sh\ntrue\n```\n", 2),
    ("a service that dies before the document ends",
     "<!-- doc-test: service; ready: true -->\n```sh\nsleep 2\n```\n\n```sh\nsleep 4\n```\n", 1),
    ("a job started with & and a visible wait",
     "```sh\nT=$(mktemp); (sleep 1; echo up > \"$T\"; exec sleep 300) &\n"
     "for i in $(seq 10); do test -s \"$T\" && break; sleep 1; done; test -s \"$T\"\n```\n", 0),
]


def self_test() -> int:
    """Runs the runner on small documents whose outcome is known."""
    import tempfile
    bad = 0
    (ROOT / "target").mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=ROOT / "target") as tmp:
        for name, text, want in SELF_TEST_CASES:
            doc = Path(tmp) / "case.md"
            doc.write_text(text)
            got = subprocess.run([sys.executable, __file__, str(doc)], capture_output=True, text=True).returncode
            print(f"docs-test self-test: {name}: exit {got}" + ("" if got == want else f", expected {want}"))
            bad += got != want
    return 1 if bad else 0


def main(argv: list[str]) -> int:
    if "--self-test" in argv:
        if argv != ["--self-test"]:
            print("docs-test: --self-test takes no other argument", file=sys.stderr)
            return 2
        return self_test()
    list_only = "--list" in argv
    argv = [a for a in argv if a != "--list"]
    unknown = [a for a in argv if a.startswith("-") or not a.endswith(".md")]
    if unknown:
        print(f"docs-test: not a Markdown file: {' '.join(unknown)} (usage: docs-test [--list] [FILE.md ...])",
              file=sys.stderr)
        return 2
    docs = [Path(a).resolve() for a in argv] or [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    parsed = [parse(p) for p in docs]
    problems = [p for d in parsed for p in d.problems]
    for d in parsed:
        for b in d.blocks:
            if b.lang in SHELL_LANGS:
                syntax = subprocess.run(["bash", "-n"], input=b.text, capture_output=True, text=True)
                if syntax.returncode != 0 or syntax.stderr.strip():  # a heredoc left open only warns
                    problems.append(f"{b.where}: not valid shell: {syntax.stderr.strip()}")
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return 2
    if list_only:
        for doc in parsed:
            for b in doc.blocks:
                how = ("not run: " + b.not_run if b.not_run is not None else
                       "service, ready: " + b.service_ready if b.service_ready is not None else
                       "run" if b.lang in SHELL_LANGS else "shown")
                print(f"{b.where}\t{b.lang}\t{how}")
        return 0
    log_dir = ROOT / "target" / "docs-test"
    log_dir.mkdir(parents=True, exist_ok=True)
    failed = []
    not_run = []
    for doc in parsed:
        shell = [b for b in doc.blocks if b.lang in SHELL_LANGS]
        not_run += [b for b in shell if b.not_run is not None]
        runnable = [b for b in shell if b.not_run is None]
        name = doc.path.relative_to(ROOT)
        if not runnable:
            print(f"docs-test: {name}: no block to run ({len(shell) - len(runnable)} not run)")
            continue
        stem = str(doc.path.relative_to(ROOT).with_suffix("")).replace("/", "-")
        log = log_dir / f"{stem}.log"
        script = log_dir / f"{stem}.sh"
        script.write_text(script_for(doc, log_dir, stem))
        t0 = time.monotonic()
        print(f"docs-test: {name}: {len(runnable)} block(s) ...", flush=True)
        with log.open("w") as out:
            rc = run_script(script, out)
        if rc == 0:
            # A block that ends the shell early (`exit 0`, a heredoc left
            # open) skips the rest: every block's marker must be there.
            text = log.read_text(errors="replace")
            missing = [b.where for b in runnable if f"doc-test: {b.where}\n" not in text]
            if missing or not text.rstrip().endswith("doc-test: every block ran"):
                print(f"docs-test: {name}: the shell ended early; blocks never reached: {', '.join(missing) or '(the end)'}")
                rc = 1
        took = time.monotonic() - t0
        if rc == 0:
            print(f"docs-test: {name}: ok in {took:.0f} s (log: {log.relative_to(ROOT)})")
        else:
            failed.append(name)
            print(f"docs-test: {name}: FAILED (exit {rc}) after {took:.0f} s; the end of its log ({log}):")
            print("".join(log.read_text(errors="replace").splitlines(keepends=True)[-60:]), flush=True)
    for b in not_run:
        print(f"docs-test: not run: {b.where}: {b.not_run}")
    if failed:
        print(f"docs-test: {len(failed)} document(s) failed: {', '.join(map(str, failed))}")
        return 1
    print(f"docs-test: {len(parsed)} document(s) ok")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
