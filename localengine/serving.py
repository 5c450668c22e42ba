"""A registered model served on this machine as SageMaker hosting serves it: the container's contract.

What the framework container does with a model package (sagemaker-containers, which the XGBoost
image serves with; `_transformer.Transformer`, `_worker.Worker`, `_server.start`):

- the model data is unpacked into the model directory and `SAGEMAKER_SUBMIT_DIRECTORY` into the
  code directory; `SAGEMAKER_PROGRAM` is imported from there and its `model_fn` loads the model;
- `POST /invocations` runs `input_fn(body, content_type)`, `predict_fn(data, model)`,
  `output_fn(prediction, accept)`; the content type comes from the `ContentType` or `Content-Type`
  header (default `application/json`), the accept type from `Accept`, where a missing one or `*/*`
  means `SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT` (default `application/json`); CSV and JSON bodies
  reach `input_fn` as text, others as bytes; an `output_fn` result that is a tuple is
  `(body, content type)`, anything else is a response Flask knows how to send;
- `GET /ping` answers 200 once the model is loaded;
- the server is Flask under gunicorn, cut off after `SAGEMAKER_MODEL_SERVER_TIMEOUT` (60) seconds.

And what SageMaker hosting adds in front (InvokeEndpoint's documented limits): a body of at most
6 MiB, an answer within 60 seconds. The same server also answers the SageMaker Runtime route,
`POST /endpoints/{EndpointName}/invocations`, with that API's headers and errors, so code calling
boto3's `invoke_endpoint` works against it by setting `endpoint_url`.
"""

from __future__ import annotations

import importlib.util
import io
import itertools
import json
import os
import socket
import sys
import tarfile
import threading
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Callable, Iterable, Iterator

from .errors import EngineError

JSON, CSV = "application/json", "text/csv"
TEXT_TYPES = (JSON, CSV, "application/jsonlines", "text/plain")
MAX_BODY_BYTES = 6 * 1024 * 1024  # InvokeEndpoint's Body: at most 6,291,456 bytes
INVOCATION_TIMEOUT_SECONDS = 60.0
PING_TIMEOUT_SECONDS = 2.0
PRODUCTION_VARIANT = "AllTraffic"
HANDLERS = ("model_fn", "input_fn", "predict_fn", "output_fn")


@dataclass(frozen=True)
class ServingFiles:
    """A model package laid out as the container sees it."""

    model_dir: Path
    code_dir: Path
    program: str


def materialize(container: dict, destination: Path, fetch: Callable[[str, Path], None]) -> ServingFiles:
    """Unpack a model package container (ModelDataUrl, SAGEMAKER_SUBMIT_DIRECTORY, SAGEMAKER_PROGRAM)
    into model/ and code/ under `destination`; `fetch(uri, file)` copies one object to a file."""
    environment = container.get("Environment") or {}
    program, submit_directory = environment.get("SAGEMAKER_PROGRAM"), environment.get("SAGEMAKER_SUBMIT_DIRECTORY")
    if not program or not submit_directory or not container.get("ModelDataUrl"):
        raise EngineError("the model package's container names no ModelDataUrl, SAGEMAKER_PROGRAM and "
                          "SAGEMAKER_SUBMIT_DIRECTORY; serve a version this pipeline registered")
    files = ServingFiles(destination / "model", destination / "code", program)
    destination.mkdir(parents=True, exist_ok=True)
    for uri, directory in ((container["ModelDataUrl"], files.model_dir), (submit_directory, files.code_dir)):
        archive = destination / "download.tar.gz"
        fetch(uri, archive)
        directory.mkdir(parents=True, exist_ok=True)
        with tarfile.open(archive) as bundle:
            bundle.extractall(directory, filter="data")
        archive.unlink()
    return files


def load_handlers(files: ServingFiles) -> ModuleType:
    """Import SAGEMAKER_PROGRAM from the code directory, its sibling modules importable as in the container."""
    path = files.code_dir / files.program
    if not path.is_file():
        raise EngineError(f"SAGEMAKER_PROGRAM {files.program} is not in the code bundle")
    sys.path.insert(0, str(files.code_dir))
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)
    absent = [name for name in HANDLERS if not callable(getattr(module, name, None))]
    if absent:
        raise EngineError(f"{files.program} defines no {', '.join(absent)}; the container calls all four")
    return module


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    content_type: str


class Model:
    """The handler module and its model, loaded in the background so /ping answers while it loads."""

    def __init__(self, files: ServingFiles, default_accept: str = JSON):
        self.files, self.default_accept = files, default_accept
        self.handlers: ModuleType | None = None
        self.model = None
        self.load_error: str | None = None
        self._loaded = threading.Event()

    def load(self) -> Model:
        try:
            self.handlers = load_handlers(self.files)
            self.model = self.handlers.model_fn(str(self.files.model_dir))
        except Exception as error:  # noqa: BLE001 - reported by /ping and every invocation
            self.load_error = f"the model failed to load: {type(error).__name__}: {error}"
        self._loaded.set()
        return self

    def load_in_background(self) -> Model:
        threading.Thread(target=self.load, name="model-loader", daemon=True).start()
        return self

    def wait_loaded(self, timeout: float | None) -> bool:
        return self._loaded.wait(timeout)

    def answer(self, body: bytes | str, content_type: str | None, accept: str | None) -> Answer:
        """The Transformer's path (input_fn, predict_fn, output_fn) and what the container sends back."""
        from werkzeug.test import create_environ
        from werkzeug.utils import get_content_type
        from werkzeug.wrappers import Response

        content_type = content_type or JSON
        if not accept or accept == "*/*":
            accept = self.default_accept
        if isinstance(body, bytes) and content_type.split(";")[0].strip().lower() in TEXT_TYPES:
            body = body.decode("utf-8")
        result = self.handlers.output_fn(self.handlers.predict_fn(self.handlers.input_fn(body, content_type),
                                                                  self.model), accept)
        if isinstance(result, tuple):  # (body, mimetype), as sagemaker-containers' Transformer reads it
            body = result[0].encode("utf-8") if isinstance(result[0], str) else bytes(result[0])
            return Answer(200, body, get_content_type(result[1], "utf-8"))
        if isinstance(result, (str, bytes)):
            result = Response(result, mimetype="text/html")  # what Flask makes of a bare string
        # Anything else is a WSGI application (a Flask response is one): run it as Flask would.
        response = Response.from_app(result, create_environ(method="POST"))
        return Answer(response.status_code, response.get_data(), response.content_type)


def create_app(model: Model, endpoint_name: str, timeout: float = INVOCATION_TIMEOUT_SECONDS,
               threads: int = 4):
    """The Flask application: the container's /ping and /invocations, and the Runtime API's route."""
    import flask
    from werkzeug.exceptions import RequestEntityTooLarge

    app = flask.Flask("localengine.serving")
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="invocation")

    def container_answer(content_type: str | None, accept: str | None) -> flask.Response:
        try:
            body = flask.request.get_data()
        except RequestEntityTooLarge:
            return _text(413, f"the request body is over {MAX_BODY_BYTES:,} bytes (6 MiB), the most an endpoint "
                              "accepts; send fewer rows per request, or score a file with Batch Transform")
        started = pool.submit(_answer, model, body, content_type, accept, timeout)
        try:
            return started.result(timeout=timeout + PING_TIMEOUT_SECONDS)
        except FutureTimeout:
            return _text(504, f"the invocation took longer than {timeout:g} s, the most SageMaker hosting waits")

    @app.get("/ping")
    def ping():
        if model.wait_loaded(PING_TIMEOUT_SECONDS / 2):
            return _text(500, model.load_error) if model.load_error else flask.Response(status=200)
        return _text(503, "the model is still loading")

    @app.post("/invocations")
    def invocations():
        headers = flask.request.headers
        return container_answer(headers.get("ContentType") or headers.get("Content-Type"), headers.get("Accept"))

    @app.post("/endpoints/<name>/invocations")
    def invoke_endpoint(name: str):
        if name != endpoint_name:
            return _runtime_error(400, "ValidationError", f"Endpoint {name} of account local not found.")
        headers = flask.request.headers
        answer = container_answer(headers.get("Content-Type"), headers.get("Accept"))
        if answer.status_code == 413:
            return _runtime_error(413, "ValidationError", answer.get_data(as_text=True).strip())
        if answer.status_code == 504:
            return _model_error(0, "Your invocation timed out while waiting for a response from container primary. "
                                   "Review the latency metrics for each container in Amazon CloudWatch, resolve the "
                                   "issue, and try again.")
        if answer.status_code >= 400:
            return _model_error(answer.status_code, answer.get_data(as_text=True).strip())
        answer.headers["x-Amzn-Invoked-Production-Variant"] = PRODUCTION_VARIANT
        custom = headers.get("X-Amzn-SageMaker-Custom-Attributes")
        if custom is not None and "X-Amzn-SageMaker-Custom-Attributes" not in answer.headers:
            answer.headers["X-Amzn-SageMaker-Custom-Attributes"] = custom
        return answer

    return app


def _answer(model: Model, body: bytes, content_type, accept, timeout: float):
    import flask

    if not model.wait_loaded(timeout):
        return _text(503, "the model is still loading; retry when /ping answers 200")
    if model.load_error:
        return _text(500, model.load_error)
    answer = model.answer(body, content_type, accept)
    return flask.Response(answer.body, status=answer.status, content_type=answer.content_type)


def _text(status: int, message: str):
    import flask

    return flask.Response(f"{message}\n", status=status, mimetype="text/plain")


def _runtime_error(status: int, code: str, message: str, **fields):
    import flask

    response = flask.Response(json.dumps({"message": message, **fields}), status=status,
                              mimetype="application/json")
    response.headers["x-amzn-ErrorType"] = f"{code}:"
    return response


def _model_error(original_status: int, original_message: str):
    """InvokeEndpoint's ModelError (424), as the service wraps a container's error answer."""
    kind = "client" if 400 <= original_status < 500 else "server"
    return _runtime_error(
        424, "ModelError",
        f'Received {kind} error ({original_status}) from primary with message "{original_message}". '
        "See the server's log for more information.",
        OriginalStatusCode=original_status, OriginalMessage=original_message,
        ErrorCode=f"{kind.upper()}_ERROR_FROM_MODEL",
    )


def require_free_address(host: str, port: int) -> None:
    """One line instead of gunicorn's five retries and a stack of log lines when the port is taken."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn binds
        try:
            probe.bind((host, port))
        except OSError as error:
            raise EngineError(f"cannot listen on {host}:{port}: {error.strerror}; choose another --port "
                              "(0 picks a free one) or --host") from None


def run_server(create: Callable[[], object], host: str, port: int, on_ready: Callable[[str, int], None],
               workers: int = 1, threads: int = 4) -> None:
    """Serve the app `create()` makes in each worker (its model loads there: threads do not survive a fork)
    with gunicorn, as the container does, until SIGINT or SIGTERM."""
    from gunicorn.app.base import BaseApplication

    require_free_address(host, port)

    class Server(BaseApplication):
        def load_config(self):
            for key, value in {"bind": f"{host}:{port}", "workers": workers, "threads": threads,
                               "worker_class": "gthread", "loglevel": "warning", "accesslog": None,
                               # Idle keep-alive connections held gunicorn 25.3's graceful stop for its
                               # full 30 s; a request per connection costs little on localhost.
                               "control_socket_disable": True, "keepalive": 0,
                               "when_ready": lambda arbiter: on_ready(*arbiter.LISTENERS[0].sock.getsockname()[:2])
                               }.items():
                self.cfg.set(key, value)

        def load(self):
            return create()

    Server().run()


class TransformError(EngineError):
    """The model refused part of a file; nothing was written."""


def csv_records(lines: Iterable[str]) -> Iterator[str]:
    """The records of CSV text as they are written, one string each (a quoted field may hold line breaks:
    a record ends at a line break outside quotes; a doubled quote inside quotes counts twice)."""
    pending, quoted = [], False
    for line in lines:
        pending.append(line)
        if line.count('"') % 2:
            quoted = not quoted
        if not quoted:
            yield "".join(pending)
            pending = []
    if pending:
        yield "".join(pending)


def transform_file(model: Model, source: Path, destination: Path, chunk_rows: int,
                   on_progress: Callable[[int], None] = lambda bytes_read: None) -> int:
    """Score a CSV file (header row) as Batch Transform would, one request of `chunk_rows` rows at a time
    (each with the header, the rows as the file writes them), through the same handlers as the endpoint;
    writes one prediction per row, in order, under a `prediction` header. Returns the rows scored;
    `on_progress` hears how many bytes of the file were read after each request. The output appears
    only when every row was scored."""
    staging = destination.with_name(f".{destination.name}.partial")
    rows = 0
    try:
        with open(source, "rb") as raw, open(staging, "w", encoding="utf-8", newline="") as out:
            # Held here: a text wrapper that goes away closes the file under it, and progress reads from it.
            text_file = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
            records = (record for record in csv_records(text_file) if record.strip())
            header = next(records, None)
            if header is None:
                raise TransformError(f"{source} is empty; give a CSV file with a header row")
            out.write("prediction\n")
            while chunk := list(itertools.islice(records, chunk_rows)):
                answer = model.answer(header + "".join(chunk), CSV, CSV)
                if answer.status != 200:
                    raise TransformError(f"{source} rows {rows + 1:,} to {rows + len(chunk):,}: "
                                         f"{answer.body.decode('utf-8', 'replace').strip()}")
                text = answer.body.decode("utf-8")
                if text.count("\n") != len(chunk):
                    raise TransformError(f"{source} rows {rows + 1:,} to {rows + len(chunk):,}: the model answered "
                                         f"{text.count(chr(10)):,} predictions for {len(chunk):,} rows")
                out.write(text)
                rows += len(chunk)
                on_progress(raw.tell())
        os.replace(staging, destination)
    finally:
        staging.unlink(missing_ok=True)
    return rows
