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
    assert s3.exists("s3://bkt/dat")  # a plain string prefix, as in S3
    assert not s3.exists("s3://bkt/data/z") and not s3.exists("s3://bkt/nothing")


def test_directories_listing_and_download(tmp_path):
    s3 = LocalS3(tmp_path / "s3")
    local = tmp_path / "dir"
    (local / "sub").mkdir(parents=True)
    (local / "one.csv").write_text("1")
    (local / "sub" / "two.csv").write_text("2")
    assert s3.put_directory("s3://bkt/prefix/", local) == ["s3://bkt/prefix/one.csv", "s3://bkt/prefix/sub/two.csv"]
    s3.put_bytes("s3://bkt/prefix2/other.csv", b"3")
    assert s3.list("s3://bkt/prefix/") == ["s3://bkt/prefix/one.csv", "s3://bkt/prefix/sub/two.csv"]
    # Without the slash it is a string prefix, as in S3: prefix2/ matches too.
    assert s3.list("s3://bkt/prefix") == ["s3://bkt/prefix/one.csv", "s3://bkt/prefix/sub/two.csv",
                                          "s3://bkt/prefix2/other.csv"]
    assert s3.list("s3://bkt/prefix/one.csv") == ["s3://bkt/prefix/one.csv"]
    assert s3.list("s3://bkt/missing") == []
    copied = s3.download("s3://bkt/prefix/", tmp_path / "out")
    assert [p.relative_to(tmp_path / "out").as_posix() for p in copied] == ["one.csv", "sub/two.csv"]
    # Each object lands at its key with the prefix taken off, as a channel's files do.
    copied = s3.download("s3://bkt/prefix", tmp_path / "wide")
    assert [p.relative_to(tmp_path / "wide").as_posix() for p in copied] == ["2/other.csv", "one.csv", "sub/two.csv"]
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


def test_a_key_names_its_neighbours_too_as_an_s3_prefix_does(tmp_path):
    s3 = LocalS3(tmp_path)
    for key in ("data/ames_housing.csv", "data/ames_housing.csv.old.csv", "data/ames_housing.csv-v2/part.csv",
                "data/other.csv"):
        s3.put_bytes(f"s3://bkt/{key}", b"x")
    assert s3.list("s3://bkt/data/ames_housing.csv") == [
        "s3://bkt/data/ames_housing.csv", "s3://bkt/data/ames_housing.csv-v2/part.csv",
        "s3://bkt/data/ames_housing.csv.old.csv"]
    copied = s3.download("s3://bkt/data/ames_housing.csv", tmp_path / "in")
    assert sorted(p.relative_to(tmp_path / "in").as_posix() for p in copied) == [
        "-v2/part.csv", ".old.csv", "ames_housing.csv"]
