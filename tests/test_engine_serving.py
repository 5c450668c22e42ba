"""localengine.serving with handler modules of its own: the hosting limits (a slow model load, a slow
invocation), the container's content-type and accept rules, and what a broken package gets told."""

from __future__ import annotations

import io
import tarfile
import time
from pathlib import Path

import pytest

from localengine import EngineError
from localengine.serving import Model, ServingFiles, create_app, load_handlers, materialize

HANDLERS = '''
import json, time
LOAD_SECONDS = {load_seconds}
PREDICT_SECONDS = {predict_seconds}

def model_fn(model_dir):
    time.sleep(LOAD_SECONDS)
    return open(model_dir + "/factor.txt").read().strip()

def input_fn(body, content_type):
    return {{"body": body if isinstance(body, str) else body.hex(), "body_type": type(body).__name__,
             "content_type": content_type}}

def predict_fn(data, model):
    time.sleep(PREDICT_SECONDS)
    return {{**data, "model": model}}

def output_fn(prediction, accept):
    return json.dumps({{**prediction, "accept": accept}}), "application/json"
'''


def handler_files(tmp_path: Path, load_seconds: float = 0.0, predict_seconds: float = 0.0) -> ServingFiles:
    files = ServingFiles(tmp_path / "model", tmp_path / "code", "handlers.py")
    files.model_dir.mkdir()
    files.code_dir.mkdir()
    (files.model_dir / "factor.txt").write_text("3\n")
    (files.code_dir / "handlers.py").write_text(HANDLERS.format(load_seconds=load_seconds,
                                                                predict_seconds=predict_seconds))
    return files


def test_ping_answers_within_2_s_while_the_model_loads_and_invocations_wait_for_it(tmp_path):
    model = Model(handler_files(tmp_path, load_seconds=3)).load_in_background()
    client = create_app(model, "local").test_client()
    started = time.monotonic()
    loading = client.get("/ping")
    assert time.monotonic() - started < 2
    assert loading.status_code == 503 and "loading" in loading.get_data(as_text=True)
    answer = client.post("/invocations", data=b"1,2", headers={"Content-Type": "text/csv"})
    assert answer.status_code == 200 and answer.json["model"] == "3"
    assert client.get("/ping").status_code == 200


def test_content_type_and_accept_follow_the_containers_rules(tmp_path):
    client = create_app(Model(handler_files(tmp_path)).load(), "local").test_client()
    # No content type: JSON; CSV and JSON reach input_fn as text, anything else as bytes.
    assert client.post("/invocations", data=b"[1]").json == {
        "body": "[1]", "content_type": "application/json", "model": "3", "accept": "application/json",
        "body_type": "str"}
    assert client.post("/invocations", data=b"\x00\x01", headers={"Content-Type": "application/x-npy"}).json[
        "body_type"] == "bytes"
    # The ContentType header (some AWS services send it) wins over Content-Type; */* means the default accept.
    answer = client.post("/invocations", data=b"a\n1\n", headers={"ContentType": "text/csv", "Accept": "*/*"}).json
    assert (answer["content_type"], answer["accept"], answer["body_type"]) == ("text/csv", "application/json", "str")


def test_an_invocation_over_the_time_limit_is_cut_off_with_the_services_answer(tmp_path):
    client = create_app(Model(handler_files(tmp_path, predict_seconds=5)).load(), "local", timeout=1).test_client()
    started = time.monotonic()
    answer = client.post("/invocations", data=b"[1]")
    assert time.monotonic() - started < 4
    assert answer.status_code == 504 and "longer than 1 s" in answer.get_data(as_text=True)
    runtime = client.post("/endpoints/local/invocations", data=b"[1]", headers={"Content-Type": "application/json"})
    assert runtime.status_code == 424 and runtime.headers["x-amzn-ErrorType"] == "ModelError:"
    assert runtime.json["OriginalStatusCode"] == 0
    assert runtime.json["message"].startswith('Received server error (0) from primary with message "Your invocation '
                                              "timed out while waiting for a response from container primary.")


def test_a_model_that_fails_to_load_is_reported_by_ping_and_invocations(tmp_path):
    files = handler_files(tmp_path)
    (files.model_dir / "factor.txt").unlink()
    client = create_app(Model(files).load(), "local").test_client()
    ping = client.get("/ping")
    assert ping.status_code == 500 and "the model failed to load: FileNotFoundError" in ping.get_data(as_text=True)
    assert client.post("/invocations", data=b"[1]").status_code == 500


def test_a_program_without_the_four_handlers_is_refused_by_name(tmp_path):
    files = handler_files(tmp_path)
    (files.code_dir / "handlers.py").write_text("def model_fn(model_dir):\n    return None\n")
    with pytest.raises(EngineError, match="handlers.py defines no input_fn, predict_fn, output_fn"):
        load_handlers(files)


def tarball(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as bundle:
        for name, text in files.items():
            data = text.encode()
            member = tarfile.TarInfo(name)
            member.size = len(data)
            bundle.addfile(member, io.BytesIO(data))
    return buffer.getvalue()


def test_a_package_is_laid_out_as_the_container_lays_it_out(tmp_path):
    objects = {"s3://b/model.tar.gz": tarball({"factor.txt": "3"}),
               "s3://b/code/sourcedir.tar.gz": tarball({"handlers.py": HANDLERS.format(load_seconds=0,
                                                                                      predict_seconds=0)})}
    container = {"ModelDataUrl": "s3://b/model.tar.gz",
                 "Environment": {"SAGEMAKER_PROGRAM": "handlers.py",
                                 "SAGEMAKER_SUBMIT_DIRECTORY": "s3://b/code/sourcedir.tar.gz"}}
    files = materialize(container, tmp_path, lambda uri, file: file.write_bytes(objects[uri]))
    assert (files.model_dir / "factor.txt").read_text() == "3" and (files.code_dir / "handlers.py").is_file()
    assert sorted(path.name for path in tmp_path.iterdir()) == ["code", "model"]
    with pytest.raises(EngineError, match="SAGEMAKER_PROGRAM and SAGEMAKER_SUBMIT_DIRECTORY"):
        materialize({"ModelDataUrl": "s3://b/model.tar.gz"}, tmp_path / "other", lambda uri, file: None)


def test_csv_records_split_where_a_csv_parser_would():
    import csv
    import io

    from localengine.serving import csv_records

    text = 'a,b\n1,"two\nlines"\n2,"he said ""hi"", twice"\n\n3,"""quoted\n"""\n4,last'
    records = list(csv_records(io.StringIO(text, newline="")))
    assert records == ['a,b\n', '1,"two\nlines"\n', '2,"he said ""hi"", twice"\n', "\n", '3,"""quoted\n"""\n',
                       "4,last"]
    assert [row for row in csv.reader(io.StringIO("".join(records))) if row] == \
        [next(csv.reader(io.StringIO(record))) for record in records if record.strip()]
