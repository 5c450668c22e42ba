import pytest

from localengine import EngineError, LocalS3


def test_objects_map_to_files_under_the_root(tmp_path):
    s3 = LocalS3(tmp_path)
    assert s3.put_bytes("s3://bkt/a/b.txt", b"hello") == "s3://bkt/a/b.txt"
    assert s3.path_for("s3://bkt/a/b.txt") == tmp_path / "bkt" / "a" / "b.txt"
    assert (tmp_path / "bkt" / "a" / "b.txt").read_bytes() == b"hello"
    assert s3.read_bytes("s3://bkt/a/b.txt") == b"hello"
    source = tmp_path / "local.csv"
    source.write_text("x,y\n")
    s3.put_file("s3://bkt/data/local.csv", source)
    assert s3.exists("s3://bkt/data/local.csv") and s3.exists("s3://bkt/data") and s3.exists("s3://bkt/data/")
    assert not s3.exists("s3://bkt/dat") and not s3.exists("s3://bkt/nothing")


def test_directories_listing_and_download(tmp_path):
    s3 = LocalS3(tmp_path / "s3")
    local = tmp_path / "dir"
    (local / "sub").mkdir(parents=True)
    (local / "one.csv").write_text("1")
    (local / "sub" / "two.csv").write_text("2")
    assert s3.put_directory("s3://bkt/prefix/", local) == ["s3://bkt/prefix/one.csv", "s3://bkt/prefix/sub/two.csv"]
    s3.put_bytes("s3://bkt/prefix2/other.csv", b"3")
    assert s3.list("s3://bkt/prefix") == ["s3://bkt/prefix/one.csv", "s3://bkt/prefix/sub/two.csv"]
    assert s3.list("s3://bkt/prefix/one.csv") == ["s3://bkt/prefix/one.csv"]
    assert s3.list("s3://bkt/missing") == []
    copied = s3.download("s3://bkt/prefix", tmp_path / "out")
    assert [p.relative_to(tmp_path / "out").as_posix() for p in copied] == ["one.csv", "sub/two.csv"]
    assert [p.name for p in s3.download("s3://bkt/prefix/sub/two.csv", tmp_path / "single")] == ["two.csv"]
    with pytest.raises(EngineError, match="nothing in S3 at s3://bkt/missing"):
        s3.download("s3://bkt/missing", tmp_path / "none")


def test_publish_keeps_other_objects_and_skips_empty_outputs(tmp_path):
    s3 = LocalS3(tmp_path / "s3")
    s3.put_bytes("s3://bkt/out/old.csv", b"old")
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    (fresh / "new.csv").write_text("new")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert s3.publish([(fresh, "s3://bkt/out"), (empty, "s3://bkt/empty"), (tmp_path / "gone", "s3://bkt/gone")]) \
        == ["s3://bkt/out"]
    assert s3.list("s3://bkt/out") == ["s3://bkt/out/new.csv", "s3://bkt/out/old.csv"]
    assert not (tmp_path / "s3" / ".staging").exists() or not any((tmp_path / "s3" / ".staging").iterdir())


@pytest.mark.parametrize("uri", ["bkt/key", "s3://", "s3:///key", "s3://bkt/../escape", "s3://.staging/x"])
def test_bad_uris_are_rejected(tmp_path, uri):
    with pytest.raises(EngineError):
        LocalS3(tmp_path).path_for(uri)
