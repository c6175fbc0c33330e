"""Phrase -> exported model, timed on a machine that has neither the corpora nor, by default,
the TTS engines (a lent GPU machine, which takes 64 MiB per call): the same training and export,
on stand-in audio of the same files.

    python benchmarks/stand_in.py list computer --runs runs/zs63 -o runs/computer-files.json.gz
    python benchmarks/stand_in.py time runs/computer-files.json.gz --root /tmp/stand-in \\
        --out runs/stand-in [--render]

``list`` (where the data are) retargets the config to the phrase as benchmarks/zero_shot.py
does (its renderings must already be in ``<runs>/<name>/synth`` and ``$KWS_CACHE/synth``; if
they are not, they are rendered first), and writes that config and every audio file its
training reads: path, frames, sample rate, channels, container and encoding. ``time`` (on the
other machine) writes noise of those lengths, rates, channels and encodings at the same paths
below ``--root`` (worker processes, one per core), then times ``kws train`` and ``kws export`` of
that config into ``--out``, and writes ``<out>/time.json``. What the audio says does not change
the work (decoding, augmentation, embedding, training, calibration), so these are the phrase's
minutes without the rendering. With ``--render`` (where the TTS engines are installed) the
renderings are not stood in for but made there, timed: the phrase's first, then the auxiliary
words' (made once per machine, ``$KWS_CACHE/synth``), so the phrase's minutes are given both
with the auxiliary renderings made (cold) and already there (warm).
The cached room impulse responses travel with ``$KWS_CACHE`` (pyroomacoustics is not needed);
the feature pool is computed, as on a first phrase. Where kws cannot be installed, run it from a
copy laid out as installed (``kws/``, with ``export/`` as ``kws/export`` and
``firmware_bridge/`` as ``kws/firmware``) on ``PYTHONPATH``.
"""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import soundfile
from zero_shot import render_phrase, retargeted, training_config

from kws.core.config import Config, config_from_dict, to_dict
from kws.data import corpora
from kws.features.cache import cache_dir
from kws.synth.synthesize import keyword_name

log = logging.getLogger("stand_in")
BLOCK = 16384  # frames per write: libsndfile 1.2.2 crashed writing a minute of Vorbis at once


def listing(cfg: Config) -> dict:
    """``cfg`` and every audio file its training reads: ``[path, frames, rate, channels,
    container, encoding]``."""
    paths = sorted({u.path.resolve() for u in corpora.collect(cfg)}
                   | {p.resolve() for p in corpora.noise_paths(cfg)})
    files = []
    for p in paths:
        info = soundfile.info(str(p))
        files.append([str(p), info.frames, info.samplerate, info.channels, info.format,
                      info.subtype])
    return {"config": to_dict(cfg), "config_root": str(cfg.root.resolve()), "files": files}


def phrase_listing(base: Config, phrase: str, run: Path) -> dict:
    """:func:`listing` of ``base`` retargeted to ``phrase`` (zero_shot.py's run folder ``run``),
    with what :func:`rendered_config` needs to make its renderings elsewhere."""
    listed = listing(retargeted(base, phrase, run))
    listed["render"] = {"phrase": phrase, "config": to_dict(base),
                        "config_root": str(base.root.resolve()), "run": str(run.resolve()),
                        "folders": [str((run / "synth").resolve()),
                                    str((cache_dir() / "synth").resolve())]}
    return listed


def below(root: Path, value):
    """``value`` with every absolute path in it moved below ``root`` (lists and tables too)."""
    if isinstance(value, str) and value.startswith("/"):
        return str(root / value.lstrip("/"))
    if isinstance(value, list | tuple):
        return [below(root, v) for v in value]
    if isinstance(value, dict):
        return {k: below(root, v) for k, v in value.items()}
    return value


def write_one(job: tuple[int, str, int, int, int, str, str]) -> None:
    """Noise (an amplitude that changes every 0.2 s, as speech does) in one file's shape,
    written in blocks of ``BLOCK`` frames."""
    index, path, frames, rate, channels, container, encoding = job
    rng = np.random.default_rng(index)
    envelope = np.repeat(rng.uniform(0.01, 0.3, frames // (rate // 5) + 1), rate // 5)[:frames]
    wave = (rng.standard_normal((frames, channels)) * envelope[:, None]).astype(np.float32)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with soundfile.SoundFile(path, "w", rate, channels, format=container,
                             subtype=encoding) as out:
        for start in range(0, frames, BLOCK):
            out.write(wave[start:start + BLOCK])


def stand_in(listed: dict, root: Path, processes: int | None = None,
             rendering: bool = False) -> Config:
    """Write every listed file below ``root`` (a worker that dies raises here rather than
    leaving the others waiting), but for the renderings when ``rendering`` (made there by
    :func:`rendered_config`); return the config that reads them."""
    skip = tuple(f.rstrip("/") + "/" for f in listed["render"]["folders"]) if rendering else ()
    jobs = [(i, str(root / path.lstrip("/")), *rest)
            for i, (path, *rest) in enumerate(listed["files"]) if not path.startswith(skip)]
    with ProcessPoolExecutor(processes or os.cpu_count(),
                             mp_context=multiprocessing.get_context("fork")) as pool:
        for done, _ in enumerate(pool.map(write_one, jobs, chunksize=8), 1):
            if done % 2000 == 0:
                log.info("stand-in audio: %d/%d files", done, len(jobs))
    raw = below(root, listed["config"])
    return config_from_dict(raw, root=Path(below(root, listed["config_root"])))


def rendered_config(listed: dict, root: Path) -> tuple[Config, dict]:
    """The phrase's config with its renderings made here, below ``root`` and in ``$KWS_CACHE``
    (stand-ins for the rest written first by :func:`stand_in`), and the seconds of each step."""
    render = listed["render"]
    base = config_from_dict(below(root, render["config"]),
                            root=Path(below(root, render["config_root"])))
    run = Path(below(root, render["run"]))
    begun = time.time()
    render_phrase(base, render["phrase"], run)
    phrase = time.time()
    cfg = retargeted(base, render["phrase"], run)  # the auxiliary words' renderings
    return cfg, {"phrase_render_s": phrase - begun, "auxiliary_render_s": time.time() - phrase}


def timed(cfg: Config, out: Path) -> dict:
    """Train and export ``cfg`` into ``out/run`` and ``out/model``; the seconds of each."""
    from kws.export.exporter import export_model
    from kws.train.run import train

    begun = time.time()
    metrics = train(cfg, out / "run", progress=False)
    trained = time.time()
    export_model(out / "run", out / "model")
    exported = time.time()
    return {"train_s": trained - begun, "export_s": exported - trained,
            "minutes": (exported - begun) / 60, "device": metrics.get("device")}


def main() -> None:
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    lister = sub.add_parser("list", help="write the phrase's config and audio files")
    lister.add_argument("phrase")
    lister.add_argument("--runs", type=Path, required=True,
                        help="a zero_shot.py runs folder with the phrase's renderings")
    lister.add_argument("--config", type=Path, default=Path("configs/synthetic.toml"))
    lister.add_argument("--data", type=Path, default=Path("../shared/data"))
    lister.add_argument("-o", "--output", type=Path, required=True)
    timer = sub.add_parser("time", help="write the stand-ins, then train and export")
    timer.add_argument("listing", type=Path)
    timer.add_argument("--root", type=Path, required=True)
    timer.add_argument("--out", type=Path, required=True)
    timer.add_argument("--render", action="store_true",
                       help="make the renderings here (TTS engines needed) and time them")
    args = parser.parse_args()
    if args.command == "list":
        listed = phrase_listing(training_config(args.config, args.data), args.phrase,
                                args.runs / keyword_name(args.phrase))
        args.output.write_bytes(gzip.compress(json.dumps(listed).encode()))
        seconds = sum(f[1] / f[2] for f in listed["files"])
        log.info("%d files, %.1f h of audio -> %s", len(listed["files"]), seconds / 3600,
                 args.output)
        return
    listed = json.loads(gzip.decompress(args.listing.read_bytes()))
    root = args.root.resolve()
    begun = time.time()
    cfg = stand_in(listed, root, rendering=args.render)
    made = time.time() - begun
    log.info("stand-in files in %.0f s", made)
    result = {"stand_in_s": made, "files": len(listed["files"]), "cpus": os.cpu_count()}
    if args.render:
        cfg, seconds = rendered_config(listed, root)
        log.info("rendered: %s", json.dumps(seconds))
        result.update(seconds)
    result.update(timed(cfg, args.out))
    if args.render:
        warm = (result["phrase_render_s"] + result["train_s"] + result["export_s"]) / 60
        result.update(phrase_to_model_min_warm=warm,
                      phrase_to_model_min_cold=warm + result["auxiliary_render_s"] / 60)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "time.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
