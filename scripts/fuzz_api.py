#!/usr/bin/env python3
"""Runs Schemathesis against `funnel serve --demo`, once for each demo role, and fails on any failure.

For every role (the four demo tokens `serve --demo` issues: engineer, office manager, headquarters
sales department, auditor) a fresh server is started on an ephemeral port over a throwaway store in
a temporary directory (the fuzzer writes, so each role starts from the same demo history), and
`st run` tests every operation of the server's own `/openapi.json` with all checks, a fixed seed and
a bounded number of examples. Exits non-zero if any run reports a failure or an error, or if a
server cannot be started.

Usage (normally through scripts/fuzz-api, which installs Schemathesis and builds the binary):
    fuzz_api.py --funnel target/debug/funnel [--roles auditor,...] [--max-examples N]
                [--max-time SECONDS] [--seed N] [--leads N] [--jobs N] [--report-dir DIR]

`--max-time` turns a run into an open-ended exploration of that many seconds per role (fuzzing
repeats until the time is spent), for looking deeper than the test suite's bounded run.
"""
import argparse
import concurrent.futures
import json
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parent.parent
ROLES = ["sales_engineer", "office_manager", "sales_department", "auditor"]

# Every check Schemathesis has runs, with one exception, plus the check of fuzz_checks.py:
#
# - `positive_data_acceptance` expects a 2xx for every request the document allows. A request can
#   match every schema and still be refused by the business rules, which depend on the state of the
#   lead and on who asks (an auditor may write nothing; an engineer may not touch another's lead;
#   a contract cannot be signed before it is reviewed). Those answers are 403/404/409/422 problem
#   documents with refusal codes, correct and documented; no schema can say them. What this check
#   is for, a request the document allows that the server refuses as malformed, is what
#   `documented_requests_are_well_formed` in fuzz_checks.py checks: it fails on any answer with a
#   `request.*` problem code (400, 413, 422) to a request generated as valid.
#
# `response_schema_conformance` validates every answer's body against the response schema the
# document gives for its status: every answer of the API is described with its real schema (the
# typed answers of `funnel_app::query`, the problem documents), so this check is what catches an
# answer drifting from its schema under generated requests. It must stay on.
EXCLUDED_CHECKS = ["positive_data_acceptance"]
REQUIRED_CHECKS = ["response_schema_conformance", "status_code_conformance", "content_type_conformance"]
assert not set(REQUIRED_CHECKS) & set(EXCLUDED_CHECKS), "a required check is excluded"


def start_server(funnel: str, workdir: pathlib.Path, leads: int, log) -> tuple[subprocess.Popen, str]:
    """Starts `funnel serve --demo` over a store in `workdir`; answers the process and its base URL."""
    store = workdir / "funnel.db"
    cmd = [
        funnel,
        "--store",
        f"sqlite:{store}",
        "serve",
        "--demo",
        "--demo-leads",
        str(leads),
        "--listen",
        "127.0.0.1:0",
    ]
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=log,
        stdin=subprocess.DEVNULL,
        text=True,
        cwd=workdir,
        start_new_session=True,
    )
    deadline = time.monotonic() + 300
    assert proc.stdout is not None
    for line in proc.stdout:
        m = re.match(r"funnel serve listening on (http://\S+)", line)
        if m:
            # Keep draining standard output so the server never blocks on a full pipe.
            threading.Thread(target=lambda: proc.stdout.read(), daemon=True).start()
            return proc, m.group(1)
        if time.monotonic() > deadline:
            break
    stop(proc)
    raise RuntimeError(f"`{' '.join(cmd)}` did not start; its log is {log.name}")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def token_of(workdir: pathlib.Path, role: str) -> str:
    tokens = json.loads((workdir / "funnel.demo-tokens.json").read_text(encoding="utf-8"))
    for t in tokens["tokens"]:
        if t["role"] == role:
            return t["token"]
    raise RuntimeError(f"no demo token for role {role}")


def pinned_lead(base: str, hq_token: str) -> str:
    """Schemathesis settings that send the lead commands to a lead of the demo history (the first
    in the pipeline), so their bodies reach the business rules instead of 404 for a random id."""
    req = urllib.request.Request(f"{base}/pipeline", headers={"Authorization": f"Bearer {hq_token}"})
    with urllib.request.urlopen(req, timeout=60) as r:
        text = r.read().decode("utf-8")
    m = re.search(r'"lead_id":\s*"([0-9a-f-]{36})"', text)
    if m is None:
        return ""
    return (
        "[[operations]]\n"
        'include-path-regex = "^/leads/\\\\{id\\\\}/"\n'
        f'parameters = {{ "path.id" = "{m.group(1)}" }}\n'
    )


def run_role(args, role: str, reports: pathlib.Path) -> int:
    with tempfile.TemporaryDirectory(prefix=f"funnel-fuzz-{role}-") as tmp:
        workdir = pathlib.Path(tmp)
        with open(reports / f"{role}.server.log", "w", encoding="utf-8") as log:
            started = time.monotonic()
            proc, base = start_server(args.funnel, workdir, args.leads, log)
            try:
                token = token_of(workdir, role)
                config = workdir / "schemathesis.toml"
                config.write_text(pinned_lead(base, token_of(workdir, "sales_department")), encoding="utf-8")
                st = [
                    str(pathlib.Path(sys.executable).with_name("st")),
                    "--config-file",
                    str(config),
                    "run",
                    f"{base}/openapi.json",
                    "--checks",
                    "all",
                    "--exclude-checks",
                    ",".join(EXCLUDED_CHECKS),
                    "--phases",
                    args.phases,
                    "--seed",
                    str(args.seed),
                    "--max-examples",
                    str(args.max_examples),
                    "--generation-database",
                    "none",
                    "--workers",
                    str(args.workers),
                    "--request-timeout",
                    "30",
                    "--suppress-health-check",
                    "all",
                    "--no-color",
                    "--report",
                    "junit",
                    "--report-junit-path",
                    str(reports / f"{role}.junit.xml"),
                    "--header",
                    f"Authorization: Bearer {token}",
                ]
                if args.max_time:
                    st += ["--max-time", str(args.max_time)]
                env = dict(os.environ, SCHEMATHESIS_HOOKS=str(ROOT / "scripts" / "fuzz_checks.py"))
                up = time.monotonic() - started
                with open(reports / f"{role}.log", "w", encoding="utf-8") as out:
                    out.write(f"== schemathesis as {role} against {base} (server up in {up:.1f}s)\n")
                    out.flush()
                    try:
                        # In the temporary directory, so Schemathesis' own files go with it.
                        rc = subprocess.run(
                            st, env=env, cwd=workdir, stdin=subprocess.DEVNULL, stdout=out,
                            stderr=subprocess.STDOUT, timeout=args.timeout + args.max_time,
                        ).returncode
                    except subprocess.TimeoutExpired:
                        out.write(f"== {role}: still running after {args.timeout}s; stopped\n")
                        rc = 1
                    out.write(f"== {role}: exit {rc} after {time.monotonic() - started:.1f}s\n")
                return rc
            finally:
                stop(proc)


def safe_run_role(args, role: str, reports: pathlib.Path) -> int:
    try:
        return run_role(args, role, reports)
    except Exception as e:  # a server that does not start fails that role, not the others
        with open(reports / f"{role}.log", "a", encoding="utf-8") as out:
            out.write(f"== {role}: {e}\n")
        return 1


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--funnel", default=str(ROOT / "target" / "debug" / "funnel"))
    p.add_argument("--roles", default=",".join(ROLES))
    p.add_argument("--max-examples", type=int, default=20)
    p.add_argument("--max-time", type=int, default=0, help="seconds per role (exploration)")
    p.add_argument("--seed", type=int, default=20260301)
    p.add_argument("--leads", type=int, default=20, help="leads in the demo history")
    p.add_argument("--phases", default="examples,coverage,fuzzing,stateful")
    # One worker: Schemathesis' workers are threads, and Python 3.11's `ast.parse` (which Hypothesis
    # calls to describe filters) is not thread-safe ("AST constructor recursion depth mismatch").
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--jobs", type=int, default=4, help="roles run at once")
    p.add_argument("--timeout", type=int, default=900, help="seconds before a role's run counts as hung")
    p.add_argument("--report-dir", default=str(ROOT / "target" / "fuzz-api"))
    args = p.parse_args()
    reports = pathlib.Path(args.report_dir)
    if reports.exists():
        shutil.rmtree(reports)
    reports.mkdir(parents=True)
    roles = args.roles.split(",")
    for role in roles:
        if role not in ROLES:
            print(f"unknown role {role}; the demo roles are {', '.join(ROLES)}", file=sys.stderr)
            return 2
    started = time.monotonic()
    # The roles run side by side, each with its own server and Schemathesis process; every run's
    # output is printed whole once it ends.
    with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool:
        codes = dict(zip(roles, pool.map(lambda r: safe_run_role(args, r, reports), roles)))
    failed = []
    for role in roles:
        log = reports / f"{role}.log"
        if log.exists():
            print(log.read_text(encoding="utf-8"), end="", flush=True)
        if codes[role] != 0:
            failed.append(role)
    took = time.monotonic() - started
    ran = len(roles)
    print(f"fuzz-api: {took:.0f}s for {ran} roles; reports in {reports}")
    if failed:
        print(f"fuzz-api: failures as {', '.join(failed)}")
    print(f"fuzz-api: {ran - len(failed)} passed, {len(failed)} failed", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
