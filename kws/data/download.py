"""``kws data get``: download a corpus with resume, verify its checksum, unpack it safely.

* The archive goes to ``<root>/.downloads/<file>.part`` first; an interrupted download resumes
  from there with an HTTP ``Range`` request (a server that ignores it sends the whole file
  again, and the download starts over). A progress bar shows bytes and speed.
* The finished file's SHA-256 is checked against the catalog's (or ``--sha256``). A mismatch
  moves it aside to ``<file>.bad-<digest>`` and stops: nothing is unpacked.
* Unpacking goes to a temporary folder beside the target; members that would land outside it
  (absolute paths, ``..``, links) are refused; only when everything is out is the folder
  renamed to ``<root>/<NAME>``. A corrupt archive is reported and leaves nothing where a config
  would read it.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import shutil
import tarfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath
from typing import IO, Callable

from kws.core.folders import atomic_folder
from kws.data.catalog import Corpus

log = logging.getLogger(__name__)

BLOCK = 1 << 20
TIMEOUT_S = 60


class DownloadError(RuntimeError):
    """A download, checksum or archive problem; the message says which file and what."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch(url: str, target: Path, size: int = 0,
          progress: Callable[[int, int], None] | None = None) -> Path:
    """Download ``url`` to ``target`` through ``target.part``, resuming a partial one.

    Args:
        size: the expected size in bytes (0: unknown), for the progress bar and a check.
        progress: called with (bytes so far, total or 0) as blocks arrive.
    """
    part = target.with_name(target.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "kws-data"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=TIMEOUT_S)
    except urllib.error.HTTPError as e:
        if e.code == 416 and have and (not size or have == size):  # already complete
            part.replace(target)
            return target
        raise DownloadError(f"{url}: HTTP {e.code} {e.reason}") from e
    except (urllib.error.URLError, OSError) as e:
        raise DownloadError(f"{url}: {e}") from e
    with response:
        resumed = have and response.status == 206
        if have and not resumed:
            log.info("%s: the server does not resume; downloading it again", url)
            have = 0
        total = size or (have + int(response.headers.get("Content-Length") or 0))
        if resumed:
            log.info("resuming %s at %d bytes", target.name, have)
        with open(part, "ab" if resumed else "wb") as out:
            try:
                while block := response.read(BLOCK):
                    out.write(block)
                    have += len(block)
                    if progress:
                        progress(have, total)
            except (OSError, urllib.error.URLError, http.client.HTTPException) as e:
                raise DownloadError(f"{url}: interrupted after {have} bytes ({e}); run the "
                                    "same command again to resume") from e
    if size and have != size:
        raise DownloadError(f"{url}: got {have} bytes, expected {size}; run the same command "
                            "again to resume")
    part.replace(target)
    return target


def verify(path: Path, sha256: str) -> None:
    """Check the file's SHA-256; a mismatch moves it aside (``.bad-<digest>``) and raises."""
    got = sha256_file(path)
    if got != sha256:
        aside = path.with_name(f"{path.name}.bad-{got[:12]}")
        path.replace(aside)
        raise DownloadError(f"{path.name}: SHA-256 {got} differs from the expected {sha256}; "
                            f"the file is kept aside as {aside} and nothing was unpacked")


def safe_member(name: str) -> PurePosixPath | None:
    """An archive member's path when it stays inside the archive's folder, else None."""
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or "\\" in name:
        return None
    return path


def members(archive: Path) -> list[tuple[PurePosixPath, Callable[[], IO[bytes]] | None]]:
    """(path, opener of its bytes, None for a folder) of every regular member; links and
    special files are left out."""
    out = []
    if zipfile.is_zipfile(archive):
        z = zipfile.ZipFile(archive)
        for info in z.infolist():
            path = safe_member(info.filename)
            if path is None:
                raise DownloadError(f"{archive.name}: member {info.filename!r} would land "
                                    "outside the corpus folder")
            is_link = (info.external_attr >> 16) & 0o170000 == 0o120000
            if not is_link:
                out.append((path, None if info.is_dir() else (lambda i=info: z.open(i))))
        return out
    tar = tarfile.open(archive)  # gzip, bzip2, xz or plain: detected
    for info in tar.getmembers():
        path = safe_member(info.name)
        if path is None:
            raise DownloadError(f"{archive.name}: member {info.name!r} would land outside the "
                                "corpus folder")
        if info.isfile():
            out.append((path, lambda i=info: tar.extractfile(i)))
        elif info.isdir():
            out.append((path, None))
    return out


def unpack(archive: Path, corpus: Corpus, root: Path) -> Path:
    """Lay the archive out as ``root/<name>`` (see the module docstring); returns that folder.

    Raises:
        DownloadError: a corrupt archive, a member outside the folder, or nothing under
            ``corpus.strip``.
    """
    target = root / corpus.name
    strip = PurePosixPath(corpus.strip) if corpus.strip else None
    written = 0
    with atomic_folder(target, "unpacking-") as work:
        try:
            for path, read in members(archive):
                if strip is not None:
                    if path.parts[:len(strip.parts)] != strip.parts:
                        continue
                    path = PurePosixPath(*path.parts[len(strip.parts):])
                if not path.parts or (corpus.keep and path.parts[0] not in corpus.keep):
                    continue
                dest = work.joinpath(*path.parts)
                if read is None:
                    dest.mkdir(parents=True, exist_ok=True)
                    continue
                dest.parent.mkdir(parents=True, exist_ok=True)
                with read() as src, open(dest, "wb") as out:
                    shutil.copyfileobj(src, out, BLOCK)
                written += 1
        except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError, ValueError) as e:
            raise DownloadError(f"{archive.name}: corrupt archive ({e}); nothing was unpacked") \
                from e
        if not written:
            raise DownloadError(f"{archive.name}: no file under {corpus.strip or 'the top'!r} "
                                "(not the archive the catalog describes?)")
    log.info("%s: %d files in %s", corpus.name, written, target)
    return target


def get(corpus: Corpus, root: Path, sha256: str | None = None, accept_unverified: bool = False,
        progress: Callable[[int, int], None] | None = None) -> Path:
    """Download, verify and unpack ``corpus`` into ``root/<name>``; returns that folder.

    Raises:
        DownloadError: as :func:`fetch`, :func:`verify` and :func:`unpack`; or no checksum is
            known and ``accept_unverified`` is not set (the computed digest is in the message).
    """
    expected = sha256 or corpus.sha256
    downloads = root / ".downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    name = PurePosixPath(corpus.url.split("?")[0]).name or corpus.name
    archive = downloads / f"{corpus.name}-{name}"
    if not archive.exists():
        fetch(corpus.url, archive, corpus.size, progress)
    if expected:
        verify(archive, expected)
    elif not accept_unverified:
        raise DownloadError(f"{corpus.name}: no checksum is published for {corpus.url}; the "
                            f"downloaded file's SHA-256 is {sha256_file(archive)}. Compare it "
                            "with the source if you can, then run again with --sha256 "
                            "<digest> (or --accept-unverified)")
    return unpack(archive, corpus, root)
