"""The SageMaker API a job may call about the model registry, answered from the local registry.

A job that asks SageMaker which model version is approved (a champion lookup) calls
``ListModelPackages`` and ``DescribeModelPackage`` with boto3. Locally, boto3 in the job
process is pointed at this server (``AWS_ENDPOINT_URL_SAGEMAKER``) with placeholder
credentials, so the same script runs unchanged and reads the local registry. The server
speaks the service's JSON protocol (``X-Amz-Target: SageMaker.<Operation>``, timestamps
as epoch seconds, errors as ``{"__type", "message"}`` with status 400) and listens on
127.0.0.1 only, for the duration of one run.
"""

from __future__ import annotations

import json
import threading
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

from .errors import EngineError
from .registry import LocalModelRegistry

SUMMARY_FIELDS = ("ModelPackageGroupName", "ModelPackageVersion", "ModelPackageArn", "ModelPackageDescription",
                  "CreationTime", "ModelPackageStatus", "ModelApprovalStatus")
_TIMESTAMP_FIELDS = ("CreationTime", "LastModifiedTime")
# What a job needs to reach this server with boto3 and nothing else: no caller credentials, no profile.
_CREDENTIAL_VARIABLES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN",
                         "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE",
                         "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                         "AWS_CONTAINER_AUTHORIZATION_TOKEN")


class ApiError(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


def _epoch(package: dict[str, Any]) -> dict[str, Any]:
    converted = dict(package)
    for name in _TIMESTAMP_FIELDS:
        if isinstance(converted.get(name), str):
            converted[name] = datetime.fromisoformat(converted[name].replace("Z", "+00:00")).timestamp()
    return converted


class RegistryApi:
    """Serves ``ListModelPackages`` and ``DescribeModelPackage`` for one registry; a context manager."""

    def __init__(self, registry: LocalModelRegistry, region: str = "us-east-1"):
        self.registry = registry
        self.region = region
        self._server: ThreadingHTTPServer | None = None
        self._operations: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "ListModelPackages": self.list_model_packages,
            "DescribeModelPackage": self.describe_model_package,
        }

    def __enter__(self) -> RegistryApi:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - the name http.server dispatches to
                length = int(self.headers.get("Content-Length") or 0)
                target = self.headers.get("X-Amz-Target", "")
                status, body = api.handle(target, self.rfile.read(length))
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/x-amz-json-1.1")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):  # requests are not news
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, name="registry-api", daemon=True).start()
        return self

    def __exit__(self, *exc_info) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def endpoint_url(self) -> str:
        if self._server is None:
            raise EngineError("the registry API is not running")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def job_environment(self, environment: dict[str, str]) -> dict[str, str]:
        """``environment`` without the caller's AWS credentials, pointed at this server for SageMaker."""
        cleaned = {key: value for key, value in environment.items() if key not in _CREDENTIAL_VARIABLES}
        return {**cleaned, "AWS_ENDPOINT_URL_SAGEMAKER": self.endpoint_url,
                "AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local",
                "AWS_REGION": self.region, "AWS_DEFAULT_REGION": self.region,
                "AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
                "AWS_EC2_METADATA_DISABLED": "true"}

    def handle(self, target: str, body: bytes) -> tuple[int, dict[str, Any]]:
        service, _, operation = target.partition(".")
        handler = self._operations.get(operation) if service == "SageMaker" else None
        if handler is None:
            return 400, {"__type": "UnknownOperationException",
                         "message": f"{target or 'no X-Amz-Target'} is not served by the local registry API"}
        try:
            return 200, handler(json.loads(body or b"{}"))
        except ApiError as error:
            return 400, {"__type": error.code, "message": str(error)}
        except (ValueError, EngineError) as error:
            return 400, {"__type": "ValidationException", "message": str(error)}

    def list_model_packages(self, request: dict[str, Any]) -> dict[str, Any]:
        group = request.get("ModelPackageGroupName")
        if not group:
            raise ApiError("ValidationException", "ModelPackageGroupName is required by the local registry API")
        packages = self.registry.list_packages(group)
        if request.get("ModelApprovalStatus"):
            packages = [p for p in packages if p["ModelApprovalStatus"] == request["ModelApprovalStatus"]]
        key = (lambda p: p.get("ModelPackageName", "")) if request.get("SortBy") == "Name" else \
            (lambda p: (p["CreationTime"], p["ModelPackageVersion"]))
        packages.sort(key=key, reverse=request.get("SortOrder", "Ascending") == "Descending")
        limit = int(request.get("MaxResults") or 100)
        summaries = [{name: package[name] for name in SUMMARY_FIELDS if name in package} for package in packages]
        return {"ModelPackageSummaryList": [_epoch(summary) for summary in summaries[:limit]]}

    def describe_model_package(self, request: dict[str, Any]) -> dict[str, Any]:
        name = request.get("ModelPackageName") or ""
        try:
            return _epoch(self.registry.describe(name))
        except EngineError:
            raise ApiError("ValidationException", f"Model package {name} does not exist.") from None
