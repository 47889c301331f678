"""Bad inputs: one clear line naming the file and line (or entry), exit code 2, nothing lost."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from source_fixtures import START_NS, Cli, b64, har_entry, png, raw_record, write_har, write_jsonl


def fails(cli: Cli, *args: str, match: str) -> str:
    """Run a command that must fail as a usage/input error; returns its one error line."""
    code, out, err = cli(*args)
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("imgtrace: error: "), err
    assert match in lines[0], lines[0]
    return lines[0]


def import_fails(cli: Cli, kind: str, source: Path, match: str) -> str:
    """`imgtrace import KIND SOURCE -o SOURCE.imgtrace` must fail with `match`, writing nothing."""
    output = source.with_suffix(".imgtrace")
    line = fails(cli, "import", kind, str(source), "-o", str(output), match=match)
    assert not output.exists()
    return line


def good_raw(tmp_path: Path) -> list[dict[str, object]]:
    return [raw_record(i, START_NS + i * 10**8) for i in range(3)]


@pytest.mark.parametrize("kind", ["aiperf-raw", "aiperf-input"])
def test_malformed_line_names_file_and_line_and_skip_bad_counts(
    tmp_path: Path, cli: Cli, kind: str
) -> None:
    (tmp_path / "a.png").write_bytes(png(1))
    if kind == "aiperf-raw":
        rows = [json.dumps(r) for r in good_raw(tmp_path)]
    else:
        rows = [json.dumps({"text": "x", "image": "a.png"})] * 3
    rows.insert(1, '{"text": "broken", "image": ')
    source = tmp_path / "in.jsonl"
    source.write_text("\n".join(rows) + "\n")
    out = tmp_path / "t.imgtrace"
    fails(cli, "import", kind, str(source), "-o", str(out), match=f"{source}:2: not valid JSON")
    assert not out.exists()
    code, _, err = cli("import", kind, str(source), "-o", str(out), "--skip-bad")
    assert code == 0, err
    assert "3 requests" in err and "1 bad entries skipped" in err and f"{source}:2" in err


def test_missing_image_file(tmp_path: Path, cli: Cli) -> None:
    (tmp_path / "a.png").write_bytes(png(1))
    source = write_jsonl(
        tmp_path / "in.jsonl", [{"text": "x", "image": "a.png"}, {"text": "y", "image": "gone.png"}]
    )
    import_fails(cli, "aiperf-input", source, f"{source}:2: image file gone.png not found")


def test_image_file_that_is_not_an_image(tmp_path: Path, cli: Cli) -> None:
    (tmp_path / "notes.png").write_text("hello, I am text")
    source = write_jsonl(tmp_path / "in.jsonl", [{"text": "x", "image": "notes.png"}])
    import_fails(cli, "aiperf-input", source, f"{source}:1: image file notes.png is not an image")


def test_raw_payload_that_is_not_an_image(tmp_path: Path, cli: Cli) -> None:
    rows = good_raw(tmp_path)
    rows[2] = raw_record(2, START_NS + 5, image=b'{"json": "not an image"}')
    source = write_jsonl(tmp_path / "raw.jsonl", rows)
    import_fails(cli, "aiperf-raw", source, f"{source}:3: payload 'image' is not an image")
    bad_b64 = good_raw(tmp_path)[:1]
    bad_b64[0]["payload"]["image"]["b64_data"] = "!!!not base64"  # type: ignore[index]
    source2 = write_jsonl(tmp_path / "raw2.jsonl", bad_b64)
    import_fails(cli, "aiperf-raw", source2, f"{source2}:1: payload 'image' does not decode")


def test_har_upload_that_is_not_an_image(tmp_path: Path, cli: Cli) -> None:
    source = write_har(
        tmp_path / "c.har",
        [
            har_entry("2026-01-01T00:00:00Z"),
            har_entry("2026-01-01T00:00:01Z", image=b"plain text body", as_text=False),
        ],
    )
    import_fails(cli, "har", source, f"{source}: entry 2: upload 'image' (in.png) is not an image")


def test_http_image_urls_are_refused(tmp_path: Path, cli: Cli) -> None:
    source = write_jsonl(
        tmp_path / "in.jsonl", [{"text": "x", "image": "https://example.com/cat.png"}]
    )
    line = import_fails(
        cli,
        "aiperf-input",
        source,
        f"{source}:1: image 'https://example.com/cat.png' is an http URL",
    )
    assert "download it and give its local path" in line


def test_non_edits_are_skipped_and_counted_or_refused_when_nothing_is_left(
    tmp_path: Path, cli: Cli
) -> None:
    (tmp_path / "a.png").write_bytes(png(1))
    source = write_jsonl(
        tmp_path / "in.jsonl",
        [{"text": "no image"}, {"image": "a.png"}, {"text": "x", "image": "a.png"}],
    )
    code, _, err = cli("import", "aiperf-input", str(source), "-o", str(tmp_path / "t.imgtrace"))
    assert code == 0 and "2 entries skipped (not image edits)" in err
    only = write_jsonl(tmp_path / "only.jsonl", [{"text": "no image"}])
    import_fails(cli, "aiperf-input", only, "1 entries skipped (not image edits)")
    har = write_har(
        tmp_path / "c.har",
        [har_entry("2026-01-01T00:00:00Z", method="GET", url="http://h/health", body=False)],
    )
    import_fails(cli, "har", har, "no image-edit entries")
    generation = raw_record(0, START_NS, payload={"prompt": "a cat", "model": "m"})
    raw = write_jsonl(tmp_path / "raw.jsonl", [generation])
    import_fails(cli, "aiperf-raw", raw, "1 entries skipped (not image edits)")


def test_har_without_bodies(tmp_path: Path, cli: Cli) -> None:
    source = write_har(tmp_path / "c.har", [har_entry("2026-01-01T00:00:00Z", body=False)])
    line = import_fails(cli, "har", source, f"{source}: entry 1: has no request body")
    assert "Save all as HAR with content" in line
    empty_file = har_entry("2026-01-01T00:00:00Z", as_text=False)
    empty_file["request"]["postData"]["params"][1]["value"] = ""
    source2 = write_har(tmp_path / "d.har", [empty_file])
    import_fails(cli, "har", source2, "upload 'image' is empty")


def test_malformed_and_foreign_har(tmp_path: Path, cli: Cli) -> None:
    broken = tmp_path / "broken.har"
    broken.write_text('{\n "log": {\n  "entries": [\n   {"startedDateTime": }\n  ]\n }\n}\n')
    import_fails(cli, "har", broken, f"{broken}:4: JSON is malformed")
    foreign = tmp_path / "foreign.har"
    foreign.write_text('{"hello": 1}')
    import_fails(cli, "har", foreign, "not a HAR file")
    bad_time = write_har(tmp_path / "time.har", [har_entry("yesterday at noon")])
    import_fails(
        cli, "har", bad_time, "entry 1: startedDateTime 'yesterday at noon' is not an ISO 8601 time"
    )


@pytest.mark.parametrize("kind", ["aiperf-raw", "aiperf-input", "har"])
def test_empty_input(tmp_path: Path, cli: Cli, kind: str) -> None:
    source = tmp_path / "empty.input"
    source.write_text("\n\n")
    import_fails(cli, kind, source, "empty")
    missing = tmp_path / "missing.jsonl"
    import_fails(cli, kind, missing, f"{missing}: no such file")
    if kind == "har":
        no_entries = write_har(tmp_path / "none.har", [])
        import_fails(cli, kind, no_entries, "holds no entries")


def test_outputs_are_never_overwritten_by_a_failure(tmp_path: Path, cli: Cli) -> None:
    existing = tmp_path / "t.imgtrace"
    existing.write_bytes(b"precious")
    source = write_jsonl(tmp_path / "raw.jsonl", good_raw(tmp_path))
    fails(cli, "import", "aiperf-raw", str(source), "-o", str(existing), match="already exists")
    broken = tmp_path / "broken.jsonl"
    broken.write_text(json.dumps(good_raw(tmp_path)[0]) + "\n{oops\n")
    fails(
        cli,
        "import",
        "aiperf-raw",
        str(broken),
        "-o",
        str(existing),
        "--force",
        match=f"{broken}:2",
    )
    assert existing.read_bytes() == b"precious"
    fails(cli, "synth", "-o", str(existing), "--count", "1", match="already exists")
    export = tmp_path / "e.jsonl"
    export.write_text("mine")
    fails(
        cli,
        "export",
        "aiperf-input",
        str(existing),
        "-o",
        str(export),
        "--force",
        match=str(existing),
    )
    assert export.read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["--rate", "2", "--schedule", "0:1"], "not both"),
        (["--schedule", "0:1,x"], "--schedule"),
        (["--burstiness", "0.5"], "needs --arrival gamma"),
        (["--rate", "0"], "--rate must be positive"),
        (["--count", "0"], "--count"),
        (["--reuse", "1.5"], "probabilities"),
        (["--image-format", "gif"], "--image-format"),
        (["--images-per-request", "0"], "at least one image"),
        (["--request-seed", "sometimes"], "--request-seed"),
        (["--n", "two"], "--n"),
        (["--seed", "-1"], "--seed"),
        (["--duration", "1e9", "--rate", "100"], "cap it with --count"),
    ],
)
def test_bad_synth_options(tmp_path: Path, cli: Cli, args: list[str], match: str) -> None:
    out = tmp_path / "t.imgtrace"
    fails(cli, "synth", "-o", str(out), *args, match=match)
    assert not out.exists()


def test_bad_synth_inputs(tmp_path: Path, cli: Cli) -> None:
    folder = tmp_path / "refs"
    folder.mkdir()
    (folder / "a.txt").write_text("text")
    fails(
        cli,
        "synth",
        "-o",
        str(tmp_path / "t.imgtrace"),
        "--images",
        str(folder),
        match="holds no image files",
    )
    prompts = tmp_path / "p.txt"
    prompts.write_text("# only a comment\n\n")
    fails(
        cli,
        "synth",
        "-o",
        str(tmp_path / "t.imgtrace"),
        "--prompts",
        str(prompts),
        match=f"{prompts}: holds no prompts",
    )


def test_data_url_that_is_not_an_image(tmp_path: Path, cli: Cli) -> None:
    url = f"data:image/png;base64,{b64(b'GIF? no, text')}"
    source = write_jsonl(tmp_path / "in.jsonl", [{"text": "x", "image": url}])
    import_fails(cli, "aiperf-input", source, f"{source}:1: the image data URL is not an image")
