"""The demo page: a real server on a free port, one upload, one PNG back, errors as 400s."""

import io
import threading
import urllib.error
import urllib.request

import numpy as np
import pytest
from PIL import Image

from edgesr.demo import make_server
from edgesr.runtime import open_upscaler
from tests.artifacts import bicubic_artifact


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = make_server(open_upscaler(bicubic_artifact(tmp_path_factory.mktemp("art") / "m.onnx")), port=0)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.server_port}"
    srv.shutdown()
    srv.server_close()


def test_page_and_upscale(server):
    assert b"<input type=\"file\"" in urllib.request.urlopen(server + "/").read()
    buf = io.BytesIO()
    Image.fromarray((np.random.default_rng(0).random((10, 14, 3)) * 255).astype(np.uint8)).save(buf, "JPEG")
    reply = urllib.request.urlopen(urllib.request.Request(server + "/upscale", data=buf.getvalue(), method="POST"))
    assert reply.headers["Content-Type"] == "image/png"
    assert Image.open(io.BytesIO(reply.read())).size == (28, 20)


def test_bad_upload_is_a_400_with_the_message(server):
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(urllib.request.Request(server + "/upscale", data=b"not an image", method="POST"))
    assert info.value.code == 400 and b"cannot read image" in info.value.read()
