"""Dependency audit: pip-audit over the installed environment, with explained waivers.

    .venv/bin/python .ci/audit.py                  # what .ci/run does after the tests
    .venv/bin/python .ci/audit.py --report r.json  # judge a saved `pip-audit -f json` report

Fails (exit 1) on a known vulnerability that .ci/audit-waivers.txt does not waive.  Passes with a
WARNING when the advisory service (PyPI's JSON API) cannot be reached, or knows none of the
installed versions: then nothing was audited, and a failure would only say that the network is
down.  Each waiver line is `VULNERABILITY-ID  reason` (an id or any of its aliases, so a PYSEC,
GHSA or CVE id all match); a waiver without a reason is an error.  Waived findings are printed
with their reasons on every run.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

WAIVERS = Path(__file__).with_name("audit-waivers.txt")
SERVICE_URL = "https://pypi.org/pypi/pip/json"  # the service pip-audit asks by default
TIMEOUT_S = 20


def read_waivers(path: Path) -> dict[str, str]:
    """Vulnerability id -> the reason it is waived."""
    waivers = {}
    for number, line in enumerate(path.read_text().splitlines() if path.exists() else [], 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        vuln, _, reason = line.partition(" ")
        if not reason.strip():
            raise ValueError(f"{path.name}:{number}: waiver {vuln} gives no reason")
        waivers[vuln] = reason.strip()
    return waivers


def judge(report: dict, waivers: dict[str, str]) -> tuple[int, list[str]]:
    """The exit code and the lines to print for a pip-audit JSON report."""
    deps = report.get("dependencies", [])
    skipped = [d for d in deps if "skip_reason" in d]
    lines, failed = [], 0
    for dep in deps:
        for vuln in dep.get("vulns", []):
            ids = [vuln["id"], *vuln.get("aliases", [])]
            waived = next((i for i in ids if i in waivers), None)
            fix = ", ".join(vuln.get("fix_versions", [])) or "none yet"
            if waived:
                lines.append(f"waived  {dep['name']} {dep['version']}: {vuln['id']} ({waivers[waived]})")
            else:
                failed += 1
                lines.append(f"VULNERABLE  {dep['name']} {dep['version']}: {vuln['id']} (fixed in: {fix})")
    audited = len(deps) - len(skipped)
    if deps and not audited:
        lines.append(f"WARNING: the advisory service knows none of the {len(deps)} installed versions; "
                     "nothing was audited")
    else:
        lines.append(f"{audited} packages audited, {len(skipped)} unknown to the advisory service, "
                     f"{failed} vulnerable")
    return (1 if failed else 0), lines


def reachable(url: str = SERVICE_URL) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S):
            return True
    except OSError:
        return False


def run_pip_audit() -> dict | None:
    """pip-audit's JSON report on this interpreter's environment, or None when it could not run."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "report.json"
        cmd = [sys.executable, "-m", "pip_audit", "--local", "--format", "json", "--output", str(out),
               "--progress-spinner", "off", "--timeout", str(TIMEOUT_S)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if not out.exists() or not out.read_text().strip():
            print(proc.stderr.strip(), file=sys.stderr)
            return None
        return json.loads(out.read_text())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--report", type=Path, help="judge this pip-audit JSON report instead of running it")
    parser.add_argument("--waivers", type=Path, default=WAIVERS)
    args = parser.parse_args(argv)
    waivers = read_waivers(args.waivers)
    if not args.report and importlib.util.find_spec("pip_audit") is None:
        print("error: pip-audit is not installed (pip install -r requirements-test.txt)", file=sys.stderr)
        return 2
    if args.report:
        report = json.loads(args.report.read_text())
    elif not reachable():
        print(f"WARNING: dependency audit skipped: {SERVICE_URL} cannot be reached", file=sys.stderr)
        return 0
    else:
        report = run_pip_audit()
        if report is None:
            print("WARNING: dependency audit skipped: pip-audit could not finish (above)", file=sys.stderr)
            return 0
    code, lines = judge(report, waivers)
    print("\n".join(["dependency audit (pip-audit):", *lines]), file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
