import io
import tarfile

import pytest

from openmaker.core.archives import safe_extract
from openmaker.core.errors import ValidationException


def make_archive(path, members):
    """members: (name, kind, payload) with kind file|dir|symlink|hardlink|fifo."""
    with tarfile.open(path, "w:gz") as tar:
        for name, kind, payload in members:
            info = tarfile.TarInfo(name)
            data = None
            if kind == "file":
                data = payload.encode()
                info.size = len(data)
            elif kind == "dir":
                info.type = tarfile.DIRTYPE
            elif kind == "symlink":
                info.type, info.linkname = tarfile.SYMTYPE, payload
            elif kind == "hardlink":
                info.type, info.linkname = tarfile.LNKTYPE, payload
            elif kind == "fifo":
                info.type = tarfile.FIFOTYPE
            elif kind == "device":
                info.type = tarfile.CHRTYPE
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def test_files_and_folders_are_extracted(tmp_path):
    archive = make_archive(tmp_path / "a.tar.gz", [
        ("code", "dir", None), ("code/inference.py", "file", "x = 1\n"),
        ("xgboost-model", "file", "model")])
    safe_extract(archive, tmp_path / "out", what="model.tar.gz")
    assert (tmp_path / "out" / "code" / "inference.py").read_text() == "x = 1\n"
    assert (tmp_path / "out" / "xgboost-model").read_text() == "model"


@pytest.mark.parametrize("name", ["../evil.py", "/tmp/evil.py", "code/../../evil.py"])
def test_members_landing_outside_are_refused_by_name(tmp_path, name):
    archive = make_archive(tmp_path / "a.tar.gz", [("ok.txt", "file", "ok"),
                                                   (name, "file", "evil")])
    (tmp_path / "out").mkdir()
    with pytest.raises(ValidationException, match="would be extracted outside") as caught:
        safe_extract(archive, tmp_path / "out", what="model.tar.gz")
    assert repr(name) in str(caught.value)
    assert str(caught.value).startswith("model.tar.gz: ")
    assert not (tmp_path / "out" / "ok.txt").exists()  # nothing written before the check
    assert not (tmp_path / "evil.py").exists()


@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_devices_and_fifos_are_refused(tmp_path, kind):
    archive = make_archive(tmp_path / "a.tar.gz", [("thing", kind, None)])
    with pytest.raises(ValidationException, match="'thing' is not a regular file"):
        safe_extract(archive, tmp_path / "out", what="model.tar.gz", allow_links=True)


def test_links_are_refused_unless_allowed(tmp_path):
    archive = make_archive(tmp_path / "a.tar.gz", [("real", "file", "r"),
                                                   ("alias", "symlink", "real")])
    with pytest.raises(ValidationException, match="links and devices are refused"):
        safe_extract(archive, tmp_path / "out", what="sourcedir.tar.gz")
    safe_extract(archive, tmp_path / "out", what="model.tar.gz", allow_links=True)
    assert (tmp_path / "out" / "alias").read_text() == "r"


@pytest.mark.parametrize("kind,target", [("symlink", "../../etc/passwd"),
                                         ("symlink", "/etc/passwd"),
                                         ("hardlink", "../outside")])
def test_links_pointing_out_are_refused_by_name(tmp_path, kind, target):
    archive = make_archive(tmp_path / "a.tar.gz", [("sub/alias", kind, target)])
    with pytest.raises(ValidationException, match="'sub/alias' is a link to"):
        safe_extract(archive, tmp_path / "out", what="model.tar.gz", allow_links=True)


def test_an_unreadable_archive_is_a_validation_error(tmp_path):
    (tmp_path / "a.tar.gz").write_bytes(b"not a tar")
    with pytest.raises(ValidationException, match="not a readable tar archive"):
        safe_extract(tmp_path / "a.tar.gz", tmp_path / "out", what="model.tar.gz")
