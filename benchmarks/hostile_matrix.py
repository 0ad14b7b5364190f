"""The bad-input matrix run as a user runs it: every row of ``tests/test_hostile_inputs.py``,
each ``python -m edgesr ...`` in its own process, in a fresh folder made by the row's setup.

    python benchmarks/hostile_matrix.py [-k WORDS] [--before REV]

The test runs the rows in-process (fast); this runs them as processes, so that what the test
cannot see counts too: a segmentation fault or an abort (the process dies of a signal), an
exit code set by the interpreter, anything printed before the error. Per row it records the
exit code, whether it died of a signal, whether stderr holds a traceback, whether a failing
row printed exactly its one ``error:`` line (a succeeding row: its fragment on stdout), whether
the paths that must stay byte for byte did, and the row's own check of what it left. A row is
``ok`` when all of those hold, as in the test. ``OMP_NUM_THREADS=1``; a full disk is the same
``RLIMIT_FSIZE`` as in the test, set in the child.

``--before REV`` runs every row a second time with the ``edgesr`` package of commit REV (``git
archive``d to a temporary folder; the rows, setups and forged files stay this checkout's), for
the record of what the rows met before they were fixed: signals, tracebacks, changed inputs.

Writes benchmarks/results/hostile_matrix.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
#: how long a row may run on the old code (each row runs in seconds; an endless one is the bug)
BEFORE_TIMEOUT = 120
sys.path.insert(0, str(ROOT))
os.environ["OMP_NUM_THREADS"] = "1"

from edgesr.io import write_json, write_text  # noqa: E402
from tests.test_hostile_inputs import CASES, ROUND2, Case, digest, make_world  # noqa: E402


def _limits(fsize: int | None):
    """What the child sets before exec: the file-size limit of a "full disk" row."""

    def apply() -> None:
        if fsize is not None:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))

    return apply


def _text(output: bytes | str | None) -> str:
    return output.decode(errors="replace") if isinstance(output, bytes) else output or ""


def run_case(case: Case, world, folder: Path, code: Path = ROOT, timeout: float = 600) -> dict:
    """One row in ``folder``: its setup, the command as a process (the ``edgesr`` package of the
    checkout ``code``) stopped (SIGKILL) after ``timeout`` seconds, the row's checks."""
    folder.mkdir()
    os.environ["EDGESR_HOME"] = str(folder.parent / f"{folder.name}-home")  # setups may write the cache
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        cleanup = case.setup(folder, world)
        before = {p: digest(folder / p) for p in case.unchanged}
        env = {**os.environ, "PYTHONPATH": str(code), "COLUMNS": "200"}
        started = time.monotonic()
        try:
            proc = subprocess.run([sys.executable, "-m", "edgesr", *case.argv], cwd=folder, env=env, text=True,
                                  capture_output=True, timeout=timeout, preexec_fn=_limits(case.fsize))
        except subprocess.TimeoutExpired as exc:  # (a run made endless by its checkpoint, before the fix)
            proc = subprocess.CompletedProcess(exc.cmd, -signal.SIGKILL, _text(exc.stdout), _text(exc.stderr))
            timed_out = True
        else:
            timed_out = False
        finally:
            if cleanup:
                cleanup()
        seconds = time.monotonic() - started
    finally:
        os.chdir(cwd)
    err_lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    out_lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    said = err_lines[-1] if proc.returncode != 0 and err_lines else (out_lines[-1] if out_lines else "")
    said = said.replace(str(folder), ".")
    signalled = proc.returncode < 0 and not timed_out
    traceback = "Traceback" in proc.stderr
    if case.code == 0:
        message_ok = case.fragment in proc.stdout
    else:
        message_ok = (len(err_lines) == case.stderr_lines and err_lines[-1].startswith("error: ")
                      and case.fragment in err_lines[-1])
    unchanged = [p for p, h in before.items() if digest(folder / p) != h]
    then_ok = True
    if case.then and proc.returncode == case.code:
        try:
            case.then(folder)
        except AssertionError:
            then_ok = False
    ok = (proc.returncode == case.code and not signalled and not timed_out and not traceback and message_ok
          and not unchanged and then_ok)
    return {"id": case.id, "argv": list(case.argv), "expected_rc": case.code, "rc": proc.returncode,
            "signal": signal.Signals(-proc.returncode).name if signalled else None, "timed_out": timed_out,
            "traceback": traceback,
            "stderr_lines": len(err_lines), "one_line": case.code != 0 and len(err_lines) == 1,
            "message_ok": message_ok, "changed": unchanged, "check_ok": then_ok, "ok": ok,
            "last_line": said[:300],
            "seconds": round(seconds, 2)}


def summary(rows: list[dict], start: int) -> dict:
    def count(subset: list[dict]) -> dict:
        return {"tried": len(subset), "ok": sum(r["ok"] for r in subset),
                "refused_in_one_line": sum(r["rc"] != 0 and r["one_line"] and not r["traceback"] for r in subset),
                "correct_output": sum(r["rc"] == 0 and r["ok"] for r in subset),
                "tracebacks": sum(r["traceback"] for r in subset),
                "killed_by_a_signal": sum(r["signal"] is not None for r in subset),
                "timed_out": sum(r.get("timed_out", False) for r in subset),
                "inputs_changed": sum(bool(r["changed"]) for r in subset)}

    out = {"all": count(rows), "issue_30": count([r for r in rows if r["index"] >= start])}
    before = [{**r["before"], "index": r["index"]} for r in rows if "before" in r]
    if before:
        out["before"] = {"all": count(before), "issue_30": count([r for r in before if r["index"] >= start])}
    return out


def markdown(result: dict) -> str:
    s = result["summary"]
    lines = ["# The bad-input matrix, each row as a process (benchmarks/hostile_matrix.py)", "",
             f"Rows of `tests/test_hostile_inputs.py`, each `python -m edgesr ...` in a fresh folder, "
             f"`OMP_NUM_THREADS=1`, {result['python']}, {result['seconds']:.0f} s in all.", "",
             "| rows | tried | ok | refused in one line | correct output | tracebacks | killed by a signal | "
             "still running after 120 s | inputs changed |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    counts = [("all", s["all"]), ("issue 30 (round 2)", s["issue_30"])]
    if "before" in s:
        counts += [(f"all, before ({result['before']})", s["before"]["all"]),
                   (f"issue 30, before ({result['before']})", s["before"]["issue_30"])]
    for label, c in counts:
        lines.append(f"| {label} | {c['tried']} | {c['ok']} | {c['refused_in_one_line']} | {c['correct_output']} | "
                     f"{c['tracebacks']} | {c['killed_by_a_signal']} | {c['timed_out']} | {c['inputs_changed']} |")
    lines += ["", "A row is ok when its exit code is the expected one, no process died of a signal, stderr holds "
              "no traceback, a failing row printed exactly its `error:` line(s) with the expected words (a "
              "succeeding row: its words on stdout), every path the row names came out byte for byte, and the "
              "row's own check of what the command left passed.", "",
              "| # | row | rc (expected) | stderr lines | traceback | ok | what it said (last line) | before |",
              "|---:|:---|---:|---:|:---:|:---:|:---|:---|"]
    for r in result["rows"]:
        said = r["last_line"].replace("|", "\\|")
        b = r.get("before")
        was = "" if b is None else ("same" if b["ok"] else
                                    f"rc {b['rc']}{' ' + b['signal'] if b['signal'] else ''}"
                                    f"{', still running after 120 s' if b['timed_out'] else ''}"
                                    f"{', traceback' if b['traceback'] else ''}"
                                    f"{', changed ' + ' '.join(b['changed']) if b['changed'] else ''}"
                                    f"{', its check failed' if not b['check_ok'] else ''}: "
                                    f"{b['last_line'][:100]}".replace("|", "\\|"))
        lines.append(f"| {r['index']} | {r['id'].replace('|', '/')} | {r['rc']} ({r['expected_rc']}) | "
                     f"{r['stderr_lines']} | {'yes' if r['traceback'] else ''} | {'yes' if r['ok'] else '**no**'} | "
                     f"{said} | {was} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-k", default="", help="run only rows whose id contains this (results are not written)")
    ap.add_argument("--before", metavar="REV", help="also run each row with the edgesr package of commit REV")
    args = ap.parse_args()
    started = time.monotonic()
    rows = []
    with tempfile.TemporaryDirectory(prefix="edgesr-hostile-") as tmp:
        old = None
        if args.before:
            old = Path(tmp) / "before"
            old.mkdir()
            archive = subprocess.run(["git", "archive", args.before, "edgesr", "deploy"], cwd=ROOT, check=True,
                                     capture_output=True).stdout
            subprocess.run(["tar", "-x", "-C", str(old)], input=archive, check=True)
        world_root = Path(tmp) / "world"
        world_root.mkdir()
        cwd = os.getcwd()
        os.chdir(world_root)
        os.environ["EDGESR_HOME"] = str(Path(tmp) / "world-home")
        try:
            world = make_world(world_root)
        finally:
            os.chdir(cwd)
        for i, case in enumerate(CASES):
            if args.k and args.k not in case.id:
                continue
            row = {"index": i, **run_case(case, world, Path(tmp) / f"case{i}")}
            if old is not None:
                row["before"] = run_case(case, world, Path(tmp) / f"case{i}-before", old, BEFORE_TIMEOUT)
            rows.append(row)
            was = f" (before: rc={row['before']['rc']})" if old is not None else ""
            print(f"{'ok ' if row['ok'] else 'NO '} rc={row['rc']:>3} {row['seconds']:6.1f}s  {case.id}{was}",
                  flush=True)
    result = {"python": f"Python {sys.version.split()[0]}", "seconds": round(time.monotonic() - started, 1),
              "before": args.before, "summary": summary(rows, ROUND2), "rows": rows}
    print(json.dumps(result["summary"], indent=2))
    if not args.k:
        write_json(RESULTS / "hostile_matrix.json", result)
        write_text(RESULTS / "hostile_matrix.md", markdown(result))
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
