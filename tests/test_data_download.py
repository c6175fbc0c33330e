"""kws data: download with resume, checksum, safe unpacking, check, then training on what was
laid out. Served from a local HTTP server on 127.0.0.1 that the test starts (this machine has no
internet); the archives are built by the test."""

import hashlib
import http.server
import io
import json
import subprocess
import sys
import tarfile
import threading
import zipfile

import pytest

from kws.data.catalog import Corpus, catalog
from kws.data.download import DownloadError, fetch, get


class Handler(http.server.BaseHTTPRequestHandler):
    """Serves ``files`` with Range support; ``cut`` drops a file's first response after that
    many bytes, as a broken connection would."""

    files: dict[str, bytes] = {}
    cut: dict[str, int] = {}
    ranges: list[str] = []

    def do_GET(self):  # noqa: N802 - the http.server name
        body = self.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        start = 0
        header = self.headers.get("Range")
        self.ranges.append(header or "")
        if header:
            start = int(header.split("=")[1].split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        limit = self.cut.pop(self.path, None)
        self.wfile.write(body[start:limit] if limit else body[start:])

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    Handler.files, Handler.cut, Handler.ranges = {}, {}, []
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def tar_of(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_an_interrupted_download_resumes(server, tmp_path):
    body = bytes(range(256)) * 4000
    Handler.files["/big.bin"] = body
    Handler.cut["/big.bin"] = 300_000
    target = tmp_path / "big.bin"
    with pytest.raises(DownloadError, match="run the same command again to resume"):
        fetch(f"{server}/big.bin", target, size=len(body))
    assert (tmp_path / "big.bin.part").stat().st_size == 300_000 and not target.exists()
    seen = []
    fetch(f"{server}/big.bin", target, size=len(body), progress=lambda d, t: seen.append((d, t)))
    assert target.read_bytes() == body and Handler.ranges[-1] == "bytes=300000-"
    assert seen[-1] == (len(body), len(body)) and seen[0][0] > 300_000


def test_a_bad_checksum_is_refused_and_the_file_kept_aside(server, tmp_path):
    archive = tar_of({"top/a.txt": b"hello"})
    Handler.files["/c.tar.gz"] = archive
    corpus = Corpus("c", "c", "CC0", f"{server}/c.tar.gz", sha256="0" * 64, strip="top")
    with pytest.raises(DownloadError, match=r"SHA-256 [0-9a-f]{64} differs from the expected "
                                            r"0{64}; the file is kept aside as .*\.bad-"):
        get(corpus, tmp_path)
    assert list((tmp_path / ".downloads").glob("c-c.tar.gz.bad-*"))
    assert not (tmp_path / "c").exists()


def test_an_unknown_checksum_needs_a_decision(server, tmp_path):
    archive = tar_of({"top/a.txt": b"hello"})
    Handler.files["/u.tar.gz"] = archive
    corpus = Corpus("u", "u", "CC0", f"{server}/u.tar.gz", strip="top")
    with pytest.raises(DownloadError, match=f"downloaded file's SHA-256 is {sha(archive)}"):
        get(corpus, tmp_path)
    assert (get(corpus, tmp_path, sha256=sha(archive)) / "a.txt").read_bytes() == b"hello"


def test_a_corrupt_or_hostile_archive_leaves_nothing_behind(server, tmp_path):
    good = tar_of({"top/a.txt": b"x" * 1000, "top/b.txt": b"y" * 1000})
    broken = good[:len(good) // 2]
    Handler.files["/broken.tar.gz"] = broken
    corpus = Corpus("b", "b", "CC0", f"{server}/broken.tar.gz", sha256=sha(broken), strip="top")
    with pytest.raises(DownloadError, match="corrupt archive .* nothing was unpacked"):
        get(corpus, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".downloads"]
    evil = io.BytesIO()
    with zipfile.ZipFile(evil, "w") as z:
        z.writestr("top/ok.txt", "ok")
        z.writestr("../../escape.txt", "gotcha")
    Handler.files["/evil.zip"] = evil.getvalue()
    corpus = Corpus("e", "e", "CC0", f"{server}/evil.zip", sha256=sha(evil.getvalue()))
    with pytest.raises(DownloadError, match="'../../escape.txt' would land outside"):
        get(corpus, tmp_path)
    assert not (tmp_path.parent / "escape.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".downloads"]


def test_the_catalog_lists_every_corpus_with_licence_and_source(tmp_path):
    corpora = catalog()
    assert {"speech-commands-test", "librispeech-test-other", "wake-word-benchmark",
            "precise-community", "speechocean762", "musan", "rirs-noises"} <= set(corpora)
    assert all(c.license and c.url.startswith("http") for c in corpora.values())
    assert corpora["speech-commands-test"].sha256.startswith("cc2a00c1")
    bad = tmp_path / "cat.json"
    bad.write_text(json.dumps([{"name": "x", "url": "ftp://x"}]))
    with pytest.raises(ValueError, match="url 'ftp://x' is not http"):
        catalog(bad)


def test_get_then_train_on_what_was_laid_out(server, tmp_path):
    """The synthetic corpus as a downloadable archive: kws data get lays it out, kws data check
    sees it, and a config naming corpus:tiny/... trains on it."""
    pytest.importorskip("torch", reason="training needs the train extra")
    from tests.synthetic import make_corpus, write_config

    source = make_corpus(tmp_path / "source")
    archive = tar_of({f"tiny-1.0/{p.relative_to(source)}": p.read_bytes()
                      for p in sorted(source.rglob("*.wav"))})
    Handler.files["/tiny.tar.gz"] = archive
    cat = tmp_path / "catalog.json"
    cat.write_text(json.dumps([{"name": "tiny", "title": "the test's corpus", "license": "CC0",
                                "url": f"{server}/tiny.tar.gz", "sha256": sha(archive),
                                "strip": "tiny-1.0"}]))
    root = tmp_path / "data"

    def kws(*args):
        return subprocess.run([sys.executable, "-m", "kws", *map(str, args)], capture_output=True,
                              text=True, timeout=600)

    proc = kws("data", "get", "tiny", "--catalog", cat, "-o", root)
    assert proc.returncode == 0, proc.stderr
    assert len(list((root / "tiny" / "keywords" / "up").glob("*.wav"))) == 40
    config = write_config(tmp_path, epochs=1)
    text = config.read_text()
    for folder in ("keywords/up", "keywords/down", "negatives", "noise"):
        text = text.replace(f'"{folder}"', f'"corpus:tiny/{folder}"')
    config.write_text(text.replace("[data]", f'[data]\ncorpus_root = "{root}"'))
    proc = kws("data", "check", "--catalog", cat, "-o", root, "--config", config)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "keyword up [corpus:tiny/keywords/up]: 40 audio files" in proc.stdout
    proc = kws("train", config, "-o", tmp_path / "run", "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.splitlines()[-1])["run"] == str(tmp_path / "run")
    (root / "tiny" / "noise").rename(root / "tiny" / "gone")
    proc = kws("data", "check", "--catalog", cat, "-o", root, "--config", config)
    assert proc.returncode == 1 and "noise [corpus:tiny/noise]: missing" in proc.stdout
