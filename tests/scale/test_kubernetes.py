"""docs/deploy/kubernetes and the Dockerfile: their fields, and their exact commands run here.

The replay Job's container command is run as N local processes, each with the
JOB_COMPLETION_INDEX the Job controller would give it, against the reference server; then the
merge Job's command; the merged run must hold the unsharded schedule to the nanosecond.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml
from scale_support import reference_server, write_trace

from traces import TraceReader, shard_of

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "docs" / "deploy" / "kubernetes"
INDEX_ANNOTATION = "metadata.annotations['batch.kubernetes.io/job-completion-index']"


def load(name: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all((DEPLOY / name).read_text()) if doc]


def container(job: dict[str, Any]) -> dict[str, Any]:
    (only,) = job["spec"]["template"]["spec"]["containers"]
    return dict(only)


def env_of(spec: dict[str, Any]) -> dict[str, Any]:
    return {item["name"]: item for item in spec.get("env", [])}


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' expansion of command and args: $(VAR) from the container's env, $$ is $,
    and a reference to an unknown variable stays as written."""
    return re.sub(
        r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)",
        lambda m: "$" if m.group(0) == "$$" else env.get(m.group(1), m.group(0)),
        text,
    )


def test_replay_job_is_an_indexed_job_of_n_shards_with_one_start() -> None:
    (job,) = load("replay-job.yaml")
    assert (job["apiVersion"], job["kind"]) == ("batch/v1", "Job")
    spec = job["spec"]
    shards = int(env_of(container(job))["SHARDS"]["value"])
    assert spec["completionMode"] == "Indexed"
    assert spec["completions"] == spec["parallelism"] == shards
    assert spec["backoffLimit"] == 0
    assert spec["template"]["spec"]["restartPolicy"] == "Never"
    main = container(job)
    assert main["command"] == ["imgtrace"]
    args = main["args"]
    assert args[0] == "replay"
    assert args[args.index("--shard") + 1] == "$(JOB_COMPLETION_INDEX)/$(SHARDS)"
    assert args[args.index("--start-at") + 1] == "$(START_AT)"
    env = env_of(main)
    assert env["JOB_COMPLETION_INDEX"]["valueFrom"]["fieldRef"]["fieldPath"] == INDEX_ANNOTATION
    assert {"TARGET", "START_AT", "SHARDS"} <= set(env)


def test_trace_is_read_only_and_runs_go_to_the_shared_volume() -> None:
    (job,) = load("replay-job.yaml")
    (merge,) = load("merge-job.yaml")
    claims = {doc["metadata"]["name"]: doc for doc in load("volumes.yaml")}
    volumes = {v["name"]: v for v in job["spec"]["template"]["spec"]["volumes"]}
    mounts = {m["name"]: m for m in container(job)["volumeMounts"]}
    assert mounts["trace"]["readOnly"] is True
    assert volumes["trace"]["persistentVolumeClaim"]["readOnly"] is True
    assert "readOnly" not in mounts["runs"]
    trace_claim = volumes["trace"]["persistentVolumeClaim"]["claimName"]
    runs_claim = volumes["runs"]["persistentVolumeClaim"]["claimName"]
    assert claims[trace_claim]["spec"]["accessModes"] == ["ReadOnlyMany"]
    assert claims[runs_claim]["spec"]["accessModes"] == ["ReadWriteMany"]
    args = container(job)["args"]
    assert args[1].startswith(mounts["trace"]["mountPath"] + "/")
    assert args[args.index("-o") + 1].startswith(mounts["runs"]["mountPath"] + "/")
    merge_volumes = merge["spec"]["template"]["spec"]["volumes"]
    assert [v["persistentVolumeClaim"]["claimName"] for v in merge_volumes] == [runs_claim]


def test_merge_job_joins_every_shard_the_replay_job_writes() -> None:
    (job,) = load("replay-job.yaml")
    (merge,) = load("merge-job.yaml")
    shards = job["spec"]["completions"]
    args = container(job)["args"]
    written = [
        expand(args[args.index("-o") + 1], {"JOB_COMPLETION_INDEX": str(i)}) for i in range(shards)
    ]
    merge_args = container(merge)["args"]
    assert container(merge)["command"] == ["imgtrace"]
    assert merge_args[0] == "merge"
    assert merge_args[1 : merge_args.index("-o")] == written
    assert merge["spec"]["completions"] == 1


def test_compare_images_job_spreads_image_shards_over_an_indexed_job() -> None:
    (job,) = load("compare-images-job.yaml")
    spec = job["spec"]
    main = container(job)
    shards = int(env_of(main)["SHARDS"]["value"])
    assert spec["completionMode"] == "Indexed"
    assert spec["completions"] == shards
    assert main["command"] == ["imgtrace"]
    args = main["args"]
    assert args[0] == "compare"
    assert args[args.index("--shard") + 1] == "$(JOB_COMPLETION_INDEX)/$(SHARDS)"
    outs = {expand(args[args.index("--images-out") + 1], {"JOB_COMPLETION_INDEX": str(i)})
            for i in range(shards)}  # fmt: skip
    assert len(outs) == shards
    assert int(args[args.index("--jobs") + 1]) == int(main["resources"]["requests"]["cpu"])
    env = env_of(main)
    assert env["JOB_COMPLETION_INDEX"]["valueFrom"]["fieldRef"]["fieldPath"] == INDEX_ANNOTATION


def test_dockerfile_runs_the_readme_install_command() -> None:
    """Docker is not run here: the Dockerfile's steps are checked to be the README's own."""
    runs = dockerfile_instructions("RUN")
    readme_commands = [
        line.strip()
        for block in re.findall(r"```\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
        for line in block.splitlines()
    ]
    assert runs, "the Dockerfile installs nothing"
    for run in runs:
        assert any(cmd == run or cmd.startswith(run + " && ") for cmd in readme_commands), run
    entry = dockerfile_instructions("ENTRYPOINT")
    assert entry == ['["imgtrace"]']
    (job,) = load("replay-job.yaml")
    assert container(job)["command"] == ["imgtrace"]


def dockerfile_instructions(keyword: str) -> list[str]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    found = []
    for line in text.splitlines():
        word, _, rest = line.strip().partition(" ")
        if word.upper() == keyword:
            found.append(" ".join(rest.split()))
    return found


def test_the_job_command_run_as_n_local_processes_then_merged(tmp_path: Path) -> None:
    (job,) = load("replay-job.yaml")
    (merge,) = load("merge-job.yaml")
    main = container(job)
    shards = job["spec"]["completions"]
    mounts = {m["mountPath"]: tmp_path / m["name"] for m in main["volumeMounts"]}
    for folder in mounts.values():
        folder.mkdir()

    def local(path: str) -> str:
        for mount, folder in mounts.items():
            if path.startswith(mount + "/"):
                return str(folder / path[len(mount) + 1 :])
        return path

    trace_path = Path(local(main["args"][1]))
    write_trace(trace_path, [i * 5.0 for i in range(14)])
    with reference_server() as url:
        subprocess.run(
            [sys.executable, "-m", "imgtrace", "replay", str(trace_path), "--target", url,
             "-o", str(tmp_path / "unsharded.imgtrace"), "--no-progress"],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        # Every process must reach the start before it passes; on a busy machine N starting
        # interpreters need a while, and a shard that comes too late refuses (as designed).
        for lead_s in (10, 40):
            for written in (tmp_path / "runs").iterdir():
                written.unlink()  # a shard that ran in a refused attempt
            start = datetime.fromtimestamp(int(time.time()) + lead_s, tz=timezone.utc)
            errors = run_shards(main, shards, local, url, start)
            if not any("passed" in error for error in errors):
                break
        assert errors == [""] * shards, errors
    merge_argv = [local(arg) for arg in [*container(merge)["command"], *container(merge)["args"]]]
    result = subprocess.run(
        [sys.executable, "-m", "imgtrace", *merge_argv[1:]],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    merged = Path(merge_argv[merge_argv.index("-o") + 1])
    groups = set()
    for index in range(shards):
        with TraceReader(tmp_path / "runs" / f"shard-{index}.imgtrace") as reader:
            shard = shard_of(reader.header.metadata)
            assert shard is not None and (shard.index, shard.count) == (index, shards)
            groups.add(shard.group)
            assert reader.header.start_wall_ns == int(start.timestamp()) * 1_000_000_000
    assert len(groups) == 1
    assert intended(merged) == intended(tmp_path / "unsharded.imgtrace")
    assert len(intended(merged)) == 14


def run_shards(
    main: dict[str, Any], shards: int, local: Any, url: str, start: datetime
) -> list[str]:
    """The container command of every index at once; each one's error line ("" when none)."""
    start_text = start.isoformat().replace("+00:00", "Z")
    processes = []
    for index in range(shards):
        env = {name: item.get("value", "") for name, item in env_of(main).items()}
        env.update(JOB_COMPLETION_INDEX=str(index), TARGET=url, START_AT=start_text)
        argv = [local(expand(arg, env)) for arg in [*main["command"], *main["args"]]]
        assert argv[0] == "imgtrace"
        processes.append(
            subprocess.Popen(
                [sys.executable, "-m", "imgtrace", *argv[1:]],
                env={**os.environ, **env},
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    errors = []
    for process in processes:
        _, err = process.communicate(timeout=180)
        errors.append("" if process.returncode == 0 else f"{process.args!r}: {err}")
    return errors


def intended(path: Path) -> dict[tuple[str, int], int]:
    """(request id, seq) → intended offset from t0, to the nanosecond."""
    with TraceReader(path) as reader:
        return {(o.request_id, o.seq): o.intended_ns for o in reader.outcomes()}
