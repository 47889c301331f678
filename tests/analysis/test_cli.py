"""`imgtrace report` and `imgtrace compare` on run files written with TraceWriter."""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from analyzer_runs import (
    Run,
    WriteRun,
    edit_request,
    simulate_pairs,
    write_recorded_trace,
    write_run_file,
)

import analyzer
import imgtrace._commands.compare
from analyzer._rules import ImageRule, parse_rules
from analyzer._table import Table
from traces import Header, TraceReader, TraceWriter, UsageError


@pytest.fixture
def pair(write_run: WriteRun) -> Callable[..., tuple[Path, Path]]:
    def make(shift: float = 0.0, n: int = 400, seed: int = 1, **options: Any) -> tuple[Path, Path]:
        base, cand = simulate_pairs(n, seed, shift=shift)
        return write_run("base.run", base, **options), write_run("cand.run", cand, **options)

    return make


def test_report_prints_tables_and_writes_json_and_hgrm(
    write_run: WriteRun, run: Run, tmp_path: Path
) -> None:
    base, _ = simulate_pairs(400, 3)
    statuses = [503 if i % 50 == 7 else 200 for i in range(400)]
    sizes = ["512x512" if i % 2 else "1024x1024" for i in range(400)]
    path = write_run("a.run", base, statuses=statuses, warmup=10, sizes=sizes)
    code, out, err = run(
        "report", path, "--json", tmp_path / "r.json", "--hgrm", tmp_path / "r.hgrm"
    )
    assert code == 0, err
    assert "Latency from intended send" in out and "size=512x512" in out
    assert "HTTP 503" in out and "10 warmup excluded" in out
    document = json.loads((tmp_path / "r.json").read_text())
    overall = document["classes"][0]
    assert overall["class"] == "all" and overall["requests"] == 390
    assert overall["errors"] == {"HTTP 503": 7}  # request 7 was warmup
    measured = np.sort((base[10:])[np.array(statuses[10:]) == 200])
    p50 = overall["latency"]["p50"]
    assert p50["ns"] == pytest.approx(np.quantile(measured, 0.5, method="inverted_cdf"), abs=1)
    assert p50["ci_ns"][0] < p50["ns"] < p50["ci_ns"][1]
    assert document["summary"]["healthy"] is True
    lines = (tmp_path / "r.hgrm").read_text().splitlines()
    assert lines[0].split() == ["Value", "Percentile", "TotalCount", "1/(1-Percentile)"]
    table = [line.split() for line in lines[2:] if line and not line.startswith("#")]
    values = [float(row[0]) for row in table]
    assert values == sorted(values)
    assert table[-1][1:3] == ["1.000000000000", str(len(measured))]
    assert float(table[-1][0]) == pytest.approx(measured[-1] / 1e6, abs=1e-3)
    assert lines[-1].startswith("#[Buckets")


def test_report_refuses_existing_outputs_without_force(
    write_run: WriteRun, run: Run, tmp_path: Path
) -> None:
    path = write_run("a.run", simulate_pairs(50, 1)[0])
    existing = tmp_path / "r.json"
    existing.write_text("keep me")
    code, _, err = run("report", path, "--json", existing)
    assert code == 2 and "already exists" in err and len(err.strip().splitlines()) == 1
    assert existing.read_text() == "keep me"
    assert run("report", path, "--json", existing, "--force")[0] == 0
    assert json.loads(existing.read_text())["command"] == "report"


def test_compare_finds_a_planted_slowdown_and_fails_the_rule(
    pair: Callable[..., tuple[Path, Path]], run: Run, tmp_path: Path
) -> None:
    base, cand = pair(shift=0.10)
    out_json = tmp_path / "c.json"
    code, out, err = run(
        "compare", base, cand, "--no-images", "--json", out_json, "--fail-on", "median:+5%,p99:+50%"
    )
    assert code == 1, err
    assert (
        "REGRESSION" in out and "median:+5%" in out and "p99:+50%" not in out.split("REGRESSION")[1]
    )
    assert "geomean" in out
    document = json.loads(out_json.read_text())
    assert document["exit_code"] == 1
    typical = next(e for e in document["comparisons"][0]["effects"] if e["statistic"] == "typical")
    assert typical["verdict"] == "slower"
    assert typical["ci"][0] < 0.10 < typical["ci"][1]
    assert {e["statistic"] for e in document["comparisons"][0]["effects"]} >= {
        "p50",
        "p90",
        "p99",
        "errors",
    }


def test_compare_of_equal_configurations_says_same(
    pair: Callable[..., tuple[Path, Path]], run: Run
) -> None:
    base, cand = pair(shift=0.0, seed=4)
    code, out, err = run("compare", base, cand, "--no-images", "--fail-on", "p99:+10%,median:+5%")
    assert code == 0, err
    verdict_row = next(line for line in out.splitlines() if line.startswith("│ all"))
    assert "│       ~ │" in verdict_row


def test_compare_with_noise_band(write_run: WriteRun, run: Run, tmp_path: Path) -> None:
    base, cand = simulate_pairs(400, 9, shift=0.05)
    again, _ = simulate_pairs(400, 9)
    # The A/A run shares the per-request costs (same trace) but has its own noise.
    noise = again * np.exp(np.random.default_rng(1).normal(0, 0.05, 400))
    paths = [
        write_run(name, data)
        for name, data in (("a.run", base), ("b.run", cand), ("a2.run", noise))
    ]
    out_json = tmp_path / "n.json"
    code, out, err = run(
        "compare", *paths[:2], "--noise", paths[2], "--no-images", "--json", out_json
    )
    assert code == 0, err
    assert "A/A noise" in out and "noise band" in out
    document = json.loads(out_json.read_text())
    assert document["noise"]["cand"].endswith("a2.run")
    typical = next(e for e in document["comparisons"][0]["effects"] if e["statistic"] == "typical")
    assert typical["noise_band"] > 0
    # The A/A run, also a candidate (as the demo compares it), has one health line.
    code, out, err = run(
        "compare", paths[0], paths[1], paths[2], "--noise", paths[2], "--no-images"
    )
    assert code == 0, err
    health = [line for line in out.splitlines() if line.startswith(f"{paths[2]}: send lag")]
    assert len(health) == 1


def test_errors_rule_uses_mcnemar(write_run: WriteRun, run: Run) -> None:
    base, cand = simulate_pairs(400, 2)
    failing = [0 if i % 10 == 3 else 200 for i in range(400)]  # 10% timeouts in CAND only
    a = write_run("a.run", base)
    b = write_run("b.run", cand, statuses=failing)
    code, out, _ = run("compare", a, b, "--no-images", "--fail-on", "errors:+5%")
    assert code == 1 and "failures" in out and "more errors" in out
    assert run("compare", a, b, "--no-images", "--fail-on", "errors:+20%")[0] == 0


def test_warmup_and_one_sided_requests_are_reported(
    write_run: WriteRun, run: Run, tmp_path: Path
) -> None:
    base, cand = simulate_pairs(300, 5)
    a = write_run("a.run", base, warmup=4)
    b = write_run("b.run", cand[:280], warmup=2)
    out_json = tmp_path / "j.json"
    code, out, _ = run("compare", a, b, "--no-images", "--json", out_json)
    assert code == 0
    join = json.loads(out_json.read_text())["comparisons"][0]["join"]
    assert join == {
        "pairs": 276,
        "succeeded_in_both": 276,
        "warmup_base": 4,
        "warmup_cand": 2,
        "only_base": 20,
        "only_cand": 2,
        "duplicates": 0,
        "nonpositive_excluded": 0,
    }
    assert "only in base" in out


def test_recorded_trace_works_as_base(tmp_path: Path, run: Run) -> None:
    base, cand = simulate_pairs(400, 6, shift=0.3)
    trace = write_recorded_trace(tmp_path / "prod.imgtrace", base)
    with TraceReader(trace) as reader:
        digest = reader.trace_digest()
    replay = write_run_file(tmp_path / "replay.run", cand, trace_digest=digest)
    # A recording and a replay were measured by different clients: gating their latency is
    # asked for explicitly (without it, the pair is flagged and not gated; test_provenance.py).
    code, out, err = run(
        "compare", trace, replay, "--no-images", "--fail-on", "typical:+10%",
        "--allow-mixed-clients",
    )  # fmt: skip
    assert code == 1, err
    assert "recorded traffic" in out
    assert "WARNING: mixed clients" in out
    code, out, err = run("compare", trace, replay, "--no-images", "--fail-on", "typical:+10%")
    assert code == 0, err
    assert run("report", trace)[0] == 0


def test_runs_of_different_traces_are_refused_unless_forced(write_run: WriteRun, run: Run) -> None:
    base, cand = simulate_pairs(100, 1)
    a = write_run("a.run", base)
    b = write_run("b.run", cand, trace_digest="e" * 64)
    code, _, err = run("compare", a, b, "--no-images")
    assert code == 2 and "different traces" in err and "--any-trace" in err
    assert len(err.strip().splitlines()) == 1
    with pytest.warns(UserWarning, match="different trace"):
        # --debug keeps the CLI from replacing the warning display that pytest records with.
        assert run("--debug", "compare", a, b, "--no-images", "--any-trace")[0] == 0
    # The old spelling still pairs them, and says it is deprecated.
    with pytest.warns(UserWarning, match="different trace"):
        code, _, err = run("--debug", "compare", a, b, "--no-images", "--force")
    assert code == 0
    assert "imgtrace: warning: --force to pair runs of different traces is deprecated" in err


def _empty_run(path: Path) -> Path:
    with TraceWriter(path, Header(kind="run", source="replay", trace_digest="d" * 64)):
        pass
    return path


@pytest.mark.parametrize("problem", ["empty", "only errors", "corrupt", "no responses", "missing"])
def test_bad_input_is_one_line_and_exit_2(
    problem: str, write_run: WriteRun, tmp_path: Path, run: Run, imgtrace: Callable[..., Any]
) -> None:
    good = write_run("good.run", simulate_pairs(50, 1)[0])
    if problem == "empty":
        bad, expected = _empty_run(tmp_path / "bad.run"), "holds no requests"
    elif problem == "only errors":
        bad, expected = write_run("bad.run", [1e8] * 20, statuses=[500] * 20), "failed (HTTP 500"
    elif problem == "corrupt":
        bad = tmp_path / "bad.run"
        data = bytearray(good.read_bytes())
        data[60:90] = b"\xff" * 30
        bad.write_bytes(bytes(data))
        expected = "bad.run"
    elif problem == "no responses":
        bad = tmp_path / "bad.imgtrace"
        with TraceWriter(bad, Header(kind="trace", source="synthetic")) as writer:
            writer.write(edit_request(0, "1x1"))
        expected = "without recorded responses"
    else:
        bad, expected = tmp_path / "nope.run", "no such file"
    before = bad.read_bytes() if bad.exists() else None
    for args in (("report", bad), ("compare", good, bad, "--no-images")):
        if problem == "corrupt":  # once through the real command line, in its own process
            result = imgtrace(*map(str, args))
            code, err = result.returncode, result.stderr
        else:
            code, _, err = run(*args)
        assert code == 2, err
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("imgtrace: error: ")
        assert expected in lines[0]
    assert (bad.read_bytes() if bad.exists() else None) == before


def test_fail_on_rules_parse() -> None:
    rules = parse_rules(
        "p99:+10%, median:+5%,errors:+1%,typical:+3%,p99.9:+20%,images:changed>5%,images:missing>=2"
    )
    assert [r.statistic for r in rules.latency] == ["p99", "p50", "typical", "p99.9"]
    assert rules.latency[0].threshold == pytest.approx(0.10)
    assert rules.errors[0].percent and rules.errors[0].value == 1
    assert rules.images == [
        ImageRule("changed", ">", 5.0, True),
        ImageRule("missing", ">=", 2.0, False),
    ]
    assert rules.quantiles() == (0.99, 0.5, 0.999)
    for bad in ("p99", "p99:10", "p99:-5%", "speed:+5%", "images:changed", "p100:+1%"):
        with pytest.raises(UsageError, match="--fail-on"):
            parse_rules(bad)


def test_bad_fail_on_exits_2_before_reading(run: Run, tmp_path: Path) -> None:
    code, _, err = run("compare", tmp_path / "a", tmp_path / "b", "--fail-on", "p99:lots")
    assert code == 2 and "--fail-on rule" in err


class _FakeImageReport:
    def tables(self) -> list[Table]:
        return [Table(title="Images (fake)", columns=["verdict", "count"], rows=[["changed", "3"]])]

    def to_json(self) -> dict[str, object]:
        return {"changed": 3}

    def violation(self, rule: ImageRule) -> str | None:
        return f"3 changed breaks {rule}" if rule.holds(3.0) else None


def test_html_and_images_are_called_with_the_agreed_signatures(
    pair: Callable[..., tuple[Path, Path]],
    run: Run,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: dict[str, Any] = {}

    def compare_run_images(
        base: Path,
        cand: Path,
        noise: Path | None,
        *,
        thresholds: Any,
        jobs: int,
        assets_dir: Path | None,
        force: bool,
        salvage: bool,
        progress: Callable[[str, int, int], None],
    ) -> _FakeImageReport:
        progress("comparing images", 1, 1)
        calls["images"] = (base, cand, noise, thresholds, jobs, assets_dir, force, salvage)
        return _FakeImageReport()

    real_html = inspect.signature(analyzer.write_html_report)

    def write_html_report(*args: Any, **kwargs: Any) -> None:
        # Bound to the real signature: a call the real function would refuse fails here too.
        calls["html"] = tuple(real_html.bind(*args, **kwargs).arguments.values())

    # The command calls the analyzer's public functions; these stand-ins record the calls.
    monkeypatch.setattr(
        imgtrace._commands.compare,
        "thresholds_from_args",
        lambda args: ("t", args.image_threshold),
    )
    monkeypatch.setattr(analyzer, "compare_run_images", compare_run_images)
    monkeypatch.setattr(analyzer, "write_html_report", write_html_report)
    base, cand = pair(n=120)
    page = tmp_path / "page.html"
    code, out, _ = run(
        "compare",
        base,
        cand,
        "--html",
        page,
        "--jobs",
        "2",
        "--resamples",
        "200",
        "--fail-on",
        "images:changed>2",
    )
    assert code == 1 and "Images (fake)" in out and "3 changed breaks images:changed>2" in out
    assert calls["images"] == (
        base,
        cand,
        None,
        ("t", 0.1),
        2,
        tmp_path / "page_files",
        False,
        False,
    )
    path, title, summary, tables, plots, reports, force = calls["html"]
    # One image comparison per candidate, each with its part of the Images section.
    assert path == page and "compare" in title and len(reports) == 1
    assert isinstance(reports[0], _FakeImageReport)
    assert any(t.title == "Images (fake)" for t in tables)
    assert plots and all(png.startswith(b"\x89PNG") for _, png in plots)
    code, _, _ = run("report", base, "--html", tmp_path / "r.html")
    assert code == 0 and calls["html"][0] == tmp_path / "r.html" and calls["html"][5] is None


def test_several_candidates_share_one_holm_family_and_json_on_stdout(
    write_run: WriteRun, run: Run
) -> None:
    base, slow = simulate_pairs(300, 12, shift=0.08)
    _, same = simulate_pairs(300, 12)
    paths = [write_run(name, data) for name, data in (("a.run", base), ("b.run", slow),
                                                      ("c.run", same))]  # fmt: skip
    code, out, err = run("compare", *paths, "--no-images", "--json", "-")
    assert code == 0
    document = json.loads(out)  # stdout holds the JSON only; the tables went to stderr
    assert "Latency: " in err
    verdicts = [
        next(e["verdict"] for e in c["effects"] if e["statistic"] == "typical")
        for c in document["comparisons"]
    ]
    assert verdicts == ["slower", "~"]
    typical = [
        e for c in document["comparisons"] for e in c["effects"] if e["statistic"] == "typical"
    ]
    # Holm over two candidates: the smaller p is doubled, the larger kept (or raised to it).
    small, large = sorted(typical, key=lambda e: e["p"])
    assert small["p_holm"] == pytest.approx(min(1.0, 2 * small["p"]))
    assert large["p_holm"] == pytest.approx(max(large["p"], small["p_holm"]))
