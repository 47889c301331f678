"""`report` and `compare` say who measured a run and whether it ran to its end.

A BASE measured by AIPerf and a CAND measured by imgtrace replay differ by the clients' own
overheads even against one unchanged server: `compare` warns in text, JSON and HTML, and keeps
such a pair's latency out of `--fail-on` unless `--allow-mixed-clients`. An interrupted run is
flagged by both commands in every output.
"""

from __future__ import annotations

import json
from pathlib import Path

from analyzer_runs import Run, WriteRun, simulate_pairs


def _slower_pair(write_run: WriteRun, base_source: str, **cand: object) -> tuple[Path, Path]:
    base, slower = simulate_pairs(300, 3, shift=0.4)
    return (
        write_run("base.run", base, source=base_source),
        write_run("cand.run", slower, **cand),
    )


def test_mixed_clients_are_flagged_and_their_latency_is_not_gated(
    write_run: WriteRun, run: Run, tmp_path: Path
) -> None:
    base, cand = _slower_pair(write_run, "import:aiperf-raw", tool_version="0.4.0")
    out_json, out_html = tmp_path / "c.json", tmp_path / "c.html"
    rules = "median:+5%,p99:+10%"
    code, out, err = run(
        "compare", base, cand, "--no-images", "--fail-on", rules, "--json", out_json,
        "--html", out_html,
    )  # fmt: skip
    assert code == 0, err + out
    warning = next(line for line in out.splitlines() if "mixed clients" in line)
    assert warning.startswith("WARNING: mixed clients: BASE")
    assert "AIPerf" in warning and "imgtrace replay 0.4.0" in warning
    assert "REGRESSION" not in out
    document = json.loads(out_json.read_text())
    (mixed,) = document["mixed_clients"]
    assert mixed["base_client"].startswith("AIPerf")
    assert mixed["cand_client"] == "imgtrace replay 0.4.0"
    assert mixed["latency_gated"] is False
    assert any("mixed clients" in note for note in document["notes"])
    assert "mixed clients" in out_html.read_text()

    code, out, _ = run(
        "compare", base, cand, "--no-images", "--fail-on", rules, "--allow-mixed-clients"
    )
    assert code == 1
    assert "REGRESSION" in out and "mixed clients" in out


def test_a_recording_against_a_replay_and_two_replayer_versions_are_mixed(
    write_run: WriteRun, run: Run
) -> None:
    base, cand = _slower_pair(write_run, "proxy", tool_version="0.4.0")
    _, out, _ = run("compare", base, cand, "--no-images")
    assert "imgtrace record" in out and "mixed clients" in out
    base_ms, cand_ms = simulate_pairs(100, 5)
    older = write_run("old.run", base_ms, tool_version="0.3.0")
    newer = write_run("new.run", cand_ms, tool_version="0.4.0")
    _, out, _ = run("compare", older, newer, "--no-images")
    assert "mixed clients" in out


def test_one_client_is_not_flagged(write_run: WriteRun, run: Run) -> None:
    base, cand = _slower_pair(write_run, "replay", tool_version="")
    code, out, _ = run("compare", base, cand, "--no-images", "--fail-on", "median:+5%")
    assert code == 1 and "REGRESSION" in out
    assert "mixed clients" not in out and "interrupted" not in out


def test_an_interrupted_run_is_flagged_by_report_and_compare(
    write_run: WriteRun, run: Run, tmp_path: Path
) -> None:
    base, cand = simulate_pairs(100, 7)
    whole = write_run("whole.run", base)
    cut = write_run("cut.run", cand, interrupted=True)

    code, out, _ = run("report", cut, "--html", tmp_path / "r.html")
    assert code == 0
    assert f"WARNING: {cut} was interrupted" in out
    assert "was interrupted" in (tmp_path / "r.html").read_text()
    code, out, err = run("report", cut, "--json", "-")
    assert code == 0
    document = json.loads(out)
    assert document["interrupted"] is True and "was interrupted" in err
    code, out, _ = run("report", whole, "--json", "-")
    assert json.loads(out)["interrupted"] is False

    code, out, _ = run(
        "compare", whole, cut, "--no-images", "--json", tmp_path / "c.json",
        "--html", tmp_path / "c.html",
    )  # fmt: skip
    assert code == 0
    assert f"WARNING: {cut} was interrupted" in out
    document = json.loads((tmp_path / "c.json").read_text())
    assert document["interrupted"] == [str(cut)]
    assert "was interrupted" in (tmp_path / "c.html").read_text()
