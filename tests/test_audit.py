"""The dependency audit's verdicts (.ci/audit.py), judged on saved reports: no network here."""

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("ci_audit", ROOT / ".ci" / "audit.py")
audit = importlib.util.module_from_spec(spec)
spec.loader.exec_module(audit)

VULN = {"id": "PYSEC-2099-1", "aliases": ["CVE-2099-0001"], "fix_versions": ["2.0"]}


def report(*deps):
    return {"dependencies": list(deps), "fixes": []}


def test_a_known_vulnerability_fails():
    code, lines = audit.judge(report({"name": "lib", "version": "1.0", "vulns": [VULN]},
                                     {"name": "ok", "version": "3.1", "vulns": []}), {})
    assert code == 1 and any("VULNERABLE  lib 1.0: PYSEC-2099-1 (fixed in: 2.0)" in line for line in lines)


def test_a_waiver_by_alias_passes_and_says_why():
    code, lines = audit.judge(report({"name": "lib", "version": "1.0", "vulns": [VULN]}),
                              {"CVE-2099-0001": "only reachable through a feature we do not use"})
    assert code == 0 and "waived  lib 1.0: PYSEC-2099-1 (only reachable through a feature we do not use)" in lines


def test_nothing_audited_is_a_warning_not_a_pass_in_silence():
    code, lines = audit.judge(report({"name": "lib", "version": "1.0", "skip_reason": "not found"}), {})
    assert code == 0 and lines[-1].startswith("WARNING: the advisory service knows none")


def test_waivers_need_reasons(tmp_path):
    f = tmp_path / "waivers.txt"
    f.write_text("# comment\nGHSA-xxxx-yyyy  fixed upstream in 2.0, pinned until the next release\n")
    assert audit.read_waivers(f) == {"GHSA-xxxx-yyyy": "fixed upstream in 2.0, pinned until the next release"}
    f.write_text("GHSA-xxxx-yyyy\n")
    with pytest.raises(ValueError, match="gives no reason"):
        audit.read_waivers(f)
    assert audit.read_waivers(ROOT / ".ci" / "audit-waivers.txt") is not None  # the real file parses


def test_main_judges_a_saved_report(tmp_path, capsys):
    saved = tmp_path / "report.json"
    saved.write_text(json.dumps(report({"name": "lib", "version": "1.0", "vulns": [VULN]})))
    assert audit.main(["--report", str(saved), "--waivers", str(tmp_path / "none.txt")]) == 1
    assert "VULNERABLE" in capsys.readouterr().err
