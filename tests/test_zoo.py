import urllib.request

import pytest

from edgesr.errors import EdgesrError
from edgesr.models import zoo


def test_unknown_name():
    with pytest.raises(EdgesrError, match="unknown model 'nope'"):
        zoo.resolve("nope")


def test_cache_is_verified(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGESR_HOME", str(tmp_path))
    e = zoo.Teachers.PYTORCH_VDSR.value
    monkeypatch.setattr(zoo, "Teachers", _without_embedded())
    (tmp_path / e.filename).write_bytes(b"not the weights")
    with pytest.raises(EdgesrError, match="sha256"):
        zoo.resolve("pytorch-vdsr")


def test_offline_download_failure_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGESR_HOME", str(tmp_path))
    monkeypatch.setattr(zoo, "Teachers", _without_embedded())

    def offline(*a, **k):
        raise OSError("network unreachable")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(EdgesrError) as info:
        zoo.resolve("pytorch-vdsr")
    msg = str(info.value)
    assert "\n" not in msg and str(tmp_path) in msg and "https://" in msg
    assert not list(tmp_path.iterdir())  # nothing half-written


def _without_embedded():
    import dataclasses
    from enum import Enum

    e = dataclasses.replace(zoo.Teachers.PYTORCH_VDSR.value, embedded=None)
    return Enum("Teachers", {"PYTORCH_VDSR": e})
