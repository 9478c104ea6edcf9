"""The GitHub workflows (.github/workflows/*.yml) follow the rules a maintainer would check in review: time limits,
least permissions, the pip cache, no workflow inputs spliced into shell scripts, the benchmark data fetched before it
is used, the tiny CI run on a tiny recipe published to the local test Hub, and the real publish checking its token
before training. Also scripts/check_hub_token.py, the token check, against the local Hub server."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.yml"))
CACHE_PATHS = {"pyproject.toml", "constraints.txt"}
USES_DATA = re.compile(r"python -m pytest|^\s*pytest\b|scripts/train\.py|hf-crossenc train\b", re.MULTILINE)
FETCHES_DATA = re.compile(r"hf-crossenc data fetch|fetch_data\.sh")


def load(path: Path) -> dict[str, Any]:
    workflow = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(workflow, dict) and workflow.get("jobs"), f"{path.name}: no jobs"
    assert True in workflow or "on" in workflow, f"{path.name}: no triggers (`on:`, which YAML reads as the key True)"
    return workflow


def jobs(workflow: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return workflow["jobs"]


def runs(job: dict[str, Any]) -> list[str]:
    """The shell script of every step ('' for `uses:` steps), in order."""
    return [str(step.get("run", "")) for step in job.get("steps", [])]


def first(scripts: list[str], pattern: re.Pattern[str]) -> int | None:
    return next((i for i, script in enumerate(scripts) if pattern.search(script)), None)


@pytest.fixture(params=WORKFLOWS, ids=lambda path: path.name)
def workflow(request) -> tuple[str, dict[str, Any]]:
    return request.param.name, load(request.param)


def test_there_are_workflows():
    assert {path.name for path in WORKFLOWS} >= {"ci.yml", "publish-hub.yml", "publish-local-hub.yml"}


def test_every_job_has_a_time_limit(workflow):
    name, data = workflow
    for job_name, job in jobs(data).items():
        assert isinstance(job.get("timeout-minutes"), int) and 0 < job["timeout-minutes"] <= 180, f"{name}: {job_name}"


def test_least_permissions_at_the_top(workflow):
    name, data = workflow
    assert data.get("permissions") == {"contents": "read"}, f"{name}: top-level permissions must be contents: read"
    for job_name, job in jobs(data).items():  # no job needs to write (publishing goes to the Hub, with its own token)
        assert "write" not in str(job.get("permissions", "")), f"{name}: {job_name} asks for write permissions"


def test_setup_python_uses_the_pip_cache(workflow):
    name, data = workflow
    steps = [step for job in jobs(data).values() for step in job.get("steps", []) if "setup-python" in str(step.get("uses", ""))]
    assert steps, f"{name}: no setup-python step"
    for step in steps:
        options = step.get("with", {})
        assert options.get("cache") == "pip", f"{name}: setup-python without cache: pip"
        assert set(str(options.get("cache-dependency-path", "")).split()) == CACHE_PATHS, f"{name}: cache key files"


def test_no_input_is_spliced_into_a_script(workflow):
    name, data = workflow
    for job_name, job in jobs(data).items():
        for script in runs(job):
            assert "${{ inputs." not in script and "${{ github.event.inputs." not in script, f"{name}: {job_name}: {script}"
            assert not re.search(r"\$\{\{\s*(github\.event\.)?inputs\.", script), f"{name}: {job_name}: {script}"


def test_data_is_fetched_before_it_is_used(workflow):
    name, data = workflow
    for job_name, job in jobs(data).items():
        scripts = runs(job)
        used = first(scripts, USES_DATA)
        if used is None:
            continue
        fetched = first(scripts, FETCHES_DATA)
        assert fetched is not None and fetched < used, f"{name}: {job_name} uses ../shared/data before fetching it"


def test_ci_cancels_superseded_runs():
    concurrency = load(REPO / ".github" / "workflows" / "ci.yml")["concurrency"]
    assert "github.ref" in concurrency["group"] and concurrency["cancel-in-progress"] is True


def test_tiny_ci_run_uses_a_tiny_recipe_and_publishes_to_the_local_hub():
    job = jobs(load(REPO / ".github" / "workflows" / "ci.yml"))["train-tiny"]
    scripts = runs(job)
    train = scripts[first(scripts, re.compile(r"scripts/train\.py"))]
    assert "--config" not in train and "configs/stsb.yaml" not in train, "the full STS-B recipe (teacher, two rounds)"
    for flag in ("--model_name_or_path /tmp/tiny-bert", "--train_file", "--validation_file", "--label_scale 0,5", "--num_train_epochs 1"):
        assert flag in train
    assert "--teacher" not in train
    hub, publish = first(scripts, re.compile(r"tests/hub_server\.py")), first(scripts, re.compile(r"hf-crossenc publish"))
    assert hub is not None and publish is not None and hub < publish, "publishes to the local test Hub it started"
    assert "huggingface.co" not in "".join(scripts)


def test_publish_checks_the_token_before_training():
    data = load(REPO / ".github" / "workflows" / "publish-hub.yml")
    job = jobs(data)["train-and-publish"]
    scripts = runs(job)
    train = first(scripts, USES_DATA)
    empty = first(scripts, re.compile(r'-z "\$HF_TOKEN"'))
    whoami = first(scripts, re.compile(r"check_hub_token\.py"))
    assert train is not None and empty == 0 and whoami is not None and whoami < train
    install = first(scripts, re.compile(r"torch=="))
    assert whoami < install, "the token is checked before the long install"
    secrets = [i for i, step in enumerate(job["steps"]) if "secrets.HF_TOKEN" in str(step.get("env", ""))]
    assert train not in secrets and "HF_TOKEN" not in str(job.get("env", "")), "the training step never sees the token"
    assert set(job["env"].values()) == {"${{ inputs.repo_id }}", "${{ inputs.epochs }}", "${{ inputs.license }}"}


# --------------------------------------------------------------------------- scripts/check_hub_token.py


def check_token(repo_id: str, token: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_TOKEN": token}
    script = REPO / "scripts" / "check_hub_token.py"
    return subprocess.run([sys.executable, str(script), repo_id], capture_output=True, text=True, timeout=120, env=env)


def test_token_check_refuses_an_empty_token_without_asking_the_hub():
    proc = check_token("tester/model", "  ")
    assert proc.returncode == 1 and "HF_TOKEN is empty" in proc.stderr


@pytest.mark.hub
def test_token_check_against_the_local_hub(hub):
    from conftest import HUB_TOKEN

    ok = check_token("tester/model", HUB_TOKEN)
    assert ok.returncode == 0 and "tester (write token) can publish to tester/model" in ok.stdout
    other = check_token("someone-else/model", HUB_TOKEN)
    assert other.returncode == 1 and "cannot write to 'someone-else'" in other.stderr
    wrong = check_token("tester/model", "hf_wrong_token")
    assert wrong.returncode == 1 and "rejected HF_TOKEN (HTTP 401)" in wrong.stderr
    assert not any(HUB_TOKEN in proc.stdout + proc.stderr for proc in (ok, other, wrong))
    assert check_token("not-a-repo-id", HUB_TOKEN).returncode == 1
    assert all(method == "GET" for method, _ in hub.requests), "only whoami: nothing created"
