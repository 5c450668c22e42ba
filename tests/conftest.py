"""Shared fixtures."""

import pytest

TEST_REGION = "us-east-1"


@pytest.fixture
def aws_test_credentials(monkeypatch):
    """Placeholder credentials and region, so boto3 clients work against moto and never find real ones."""
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": TEST_REGION, "AWS_REGION": TEST_REGION}.items():
        monkeypatch.setenv(name, value)
