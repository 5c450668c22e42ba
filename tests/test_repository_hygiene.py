"""Supply chain and code: no secrets, account ids or private endpoints in the repository, and a static
security scan with nothing of medium severity or above left unexplained."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# The placeholder account of offline builds and the example account of AWS's own documentation.
EXAMPLE_ACCOUNTS = {"000000000000", "123456789012"}
FINDINGS = {
    "AWS access key id": re.compile(r"(?<![A-Z0-9])(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Z0-9])"),
    "AWS secret access key": re.compile(r"(?i)aws_?secret_?access_?key\W{0,4}[A-Za-z0-9/+=]{40}(?![A-Za-z0-9/+=])"),
    "private key": re.compile(r"-----BEGIN (?:RSA |EC |OPENSSH )?PRIVATE KEY-----"),
    "VPC endpoint": re.compile(r"\bvpce-[0-9a-f]{8,17}\b"),
    "private address": re.compile(r"(?<![\d.])(?:10\.\d{1,3}|192\.168|172\.(?:1[6-9]|2\d|3[01]))\.\d{1,3}\.\d{1,3}(?![\d.])"),
}
ACCOUNT_IN_ARN = re.compile(r"arn:aws[a-z-]*:[a-z0-9-]+:[a-z0-9-]*:(\d{12}):")
REGISTRY_ACCOUNT = re.compile(r"\b(\d{12})\.dkr\.ecr\.")


def framework_registry_accounts() -> set[str]:
    """The accounts AWS publishes its framework images from (the SDK's image list): not anyone's secret."""
    import sagemaker.core.image_uris as image_uris

    accounts = set()
    for name in ("xgboost", "sklearn"):
        config = json.loads((Path(image_uris.__file__).parent / "image_uri_config" / f"{name}.json").read_text())
        accounts |= set(re.findall(r'"(\d{12})"', json.dumps(config)))
    return accounts


def findings(text: str, allowed_accounts: set[str]) -> list[str]:
    found = [f"{kind}: {match.group(0)}" for kind, pattern in FINDINGS.items() for match in pattern.finditer(text)]
    found += [f"account id: {account}" for account in ACCOUNT_IN_ARN.findall(text) if account not in allowed_accounts]
    found += [f"account id: {account}" for account in REGISTRY_ACCOUNT.findall(text)
              if account not in allowed_accounts]
    return found


def tracked_text_files() -> list[Path]:
    names = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    files = []
    for name in names:
        path = REPO / name
        if path.is_file() and b"\0" not in path.read_bytes()[:8192]:
            files.append(path)
    return files


def test_no_credentials_account_ids_or_private_endpoints_are_tracked():
    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    allowed = EXAMPLE_ACCOUNTS | framework_registry_accounts()
    problems = {str(path.relative_to(REPO)): found for path in tracked_text_files()
                if (found := findings(path.read_text(encoding="utf-8", errors="replace"), allowed))}
    assert problems == {}


# Built from parts, so that this file holds none of them itself.
PLANTED = {
    "AWS access key id": "key = '" + "AKIA" + "IOSFODNN7EXAMPLE" + "'",
    "AWS secret access key": "aws_secret_access_key = " + "wJalrXUtnFEMI/K7MDENG/" + "bPxRfiCY" + "X" * 10,
    "account id": "role = 'arn:aws:iam::" + "2109" + "87654321:role/Deploy'",
    "account id ": "image = '" + "2109" + "87654321.dkr.ecr.eu-west-1.amazonaws.com/mine:1'",
    "VPC endpoint": "url = 'https://" + "vpce-" + "0a1b2c3d4e5f60718-abcdefgh.s3.us-east-1.vpce.amazonaws.com'",
    "private address": "host = '" + "10.20" + ".30.40'",
}


@pytest.mark.parametrize("kind", PLANTED)
def test_the_check_finds_what_it_looks_for(kind):
    assert [found for found in findings(PLANTED[kind], EXAMPLE_ACCOUNTS) if found.startswith(kind.strip())]


def test_static_security_scan_finds_nothing_of_medium_severity_or_above():
    completed = subprocess.run(
        [sys.executable, "-m", "bandit", "-q", "-r", "pipelines", "steps", "scripts", "localengine", "pipeline.py",
         "--severity-level", "medium", "--format", "json"], cwd=REPO, capture_output=True, text=True)
    report = json.loads(completed.stdout)
    assert [f"{r['filename']}:{r['line_number']} {r['test_id']} {r['issue_text']}" for r in report["results"]] == []
    assert report["metrics"]["_totals"]["loc"] > 1000  # it scanned the project, not an empty tree


def test_constraints_pin_every_requirement_within_its_range_at_the_version_installed():
    import configparser
    from importlib.metadata import version

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    pins = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, pinned = line.partition("==")
            pins[canonicalize_name(name)] = pinned
    setup = configparser.ConfigParser()
    setup.read(REPO / "setup.cfg")
    lines = setup["options"]["install_requires"].splitlines() + setup["options.extras_require"]["dev"].splitlines()
    requirements = [Requirement(line.strip()) for line in lines if line.strip() and not line.strip().startswith("#")]
    assert len(requirements) > 20
    for requirement in requirements:
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement.name} is not pinned in constraints.txt"
        assert requirement.specifier.contains(pins[name], prereleases=True), (requirement, pins[name])
        assert version(requirement.name) == pins[name], f"{requirement.name}: installed {version(requirement.name)}"
