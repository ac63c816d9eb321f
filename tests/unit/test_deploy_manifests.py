"""deploy/kubernetes/: every manifest is valid for the Kubernetes API (offline, the published
OpenAPI schemas as JSON schema), and the scan CronJob's pods run a command keyward accepts."""

from __future__ import annotations

import copy
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from keyward.cli import main

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes"
# backoffLimitPerIndex (a failed shard retried on its own) is GA from 1.33
VERSIONS = ("1.33.0", kubernetes_validate.latest_version())


def documents() -> list[tuple[str, dict[str, Any]]]:
    return [
        (f"{path.name}:{doc['kind']}/{doc['metadata']['name']}", doc)
        for path in sorted(DEPLOY.glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if doc
    ]


def test_the_manifests_name_the_daemon_and_the_nightly_scan() -> None:
    kinds = {name.split(":")[1].split("/")[0] for name, _ in documents()}
    assert {"Deployment", "CronJob", "ConfigMap", "ServiceAccount"} <= kinds


@pytest.mark.parametrize("version", VERSIONS)
def test_every_manifest_is_valid_against_the_kubernetes_schema(version: str) -> None:
    for _name, doc in documents():
        kubernetes_validate.validate(doc, version, strict=True)  # raises on any error


def test_a_misspelt_field_fails_the_validation() -> None:
    (doc,) = [d for n, d in documents() if n.endswith("CronJob/keyward-scan")]
    bad = copy.deepcopy(doc)
    bad["spec"]["jobTemplate"]["spec"]["completionsMode"] = "Indexed"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, VERSIONS[-1], strict=True)


def scan_job() -> dict[str, Any]:
    (doc,) = [d for n, d in documents() if n.endswith("CronJob/keyward-scan")]
    job: dict[str, Any] = doc["spec"]["jobTemplate"]["spec"]
    return job


def test_the_scan_job_gives_each_index_one_shard_of_as_many_as_it_completes() -> None:
    job = scan_job()
    pod = job["template"]["spec"]
    (container,) = pod["containers"]
    args: list[str] = container["args"]
    assert job["completionMode"] == "Indexed"
    assert int(args[args.index("--shards") + 1]) == job["completions"] >= job["parallelism"]
    assert pod["restartPolicy"] == "Never"  # what podFailurePolicy needs
    for rule in job["podFailurePolicy"]["rules"]:
        assert rule["onExitCodes"]["containerName"] == container["name"]
    cpu = container["resources"]["requests"]["cpu"]
    assert args[args.index("--jobs") + 1] == cpu  # worker processes = the cores it asked for


def test_the_scan_pods_command_records_every_target_once_across_the_indexes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    job = scan_job()
    args = list(job["template"]["spec"]["containers"][0]["args"])
    targets = tmp_path / "targets.txt"
    lines = []
    for i in range(6):
        (tmp_path / f"t{i}").mkdir()
        (tmp_path / f"t{i}" / "a.txt").write_text("nothing to see\n")
        lines.append(str(tmp_path / f"t{i}"))
    targets.write_text("\n".join(lines) + "\n")
    args[args.index("--targets") + 1] = str(targets)
    args[args.index("--jobs") + 1] = "1"
    args += ["--engine", "re"]  # no hyperscan databases to compile for six empty files
    monkeypatch.setenv("KEYWARD_DATABASE_URL", f"sqlite:///{tmp_path / 'inventory.db'}")
    seen: list[str] = []
    for index in range(job["completions"]):
        monkeypatch.setenv("JOB_COMPLETION_INDEX", str(index))
        with pytest.raises(SystemExit) as done:
            main(args)
        assert done.value.code == 0
        err = capsys.readouterr().err
        seen += [line.split(": ")[1] for line in err.splitlines() if "finding" in line]
    assert sorted(seen) == sorted(f"files:{p}" for p in lines)


def test_the_image_has_git_for_history_and_clones() -> None:
    dockerfile = (DEPLOY.parent / "Dockerfile").read_text()
    assert subprocess.list2cmdline(["apt-get", "install"]) in dockerfile
    assert " git" in dockerfile.split("apt-get install", 1)[1].splitlines()[0]
