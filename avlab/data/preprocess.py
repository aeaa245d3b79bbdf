"""Preprocessing: a dataset's raw download -> the common layout (`avlab.data.layout`), in parallel and resumably.

    from avlab.data.preprocess import preprocess
    report = preprocess("cremad", "~/CREMA-D", "~/avdata", workers=8,
                        split_files={"train": "OGM-GE/data/CREMAD/train.csv", "test": "OGM-GE/data/CREMAD/test.csv"})
    print(report)     # counts per split, clips extracted / already done, failures by kind

or `python -m avlab preprocess cremad --raw ~/CREMA-D --out ~/avdata --workers 8`. Per clip it writes

* `audio/<clip>.wav`: the audio track (or the dataset's separate audio file), decoded with PyAV, mixed to mono,
  resampled to the dataset's rate (16 kHz; 22,050 Hz for CREMA-D, as OGM-GE loads it) and stored as PCM16;
* `frames/<clip>/frame_00001.jpg ...`: one frame per second, the first frame at or after (i + 0.5) s, as the
  GeWu-Lab `video2frame-1fps.py` scripts take them (10 frames for a 10-s clip; at least one for any clip).

Resumable: a clip whose wav and frames are both in place is skipped; each is written under a temporary name
and renamed, so an interrupted run leaves no half-written clip. Parallel: `workers` processes (0 = in this
process). A clip that cannot be used (missing file, no audio track, undecodable or truncated video, a Git
LFS pointer instead of the media, an unknown class) is never dropped silently: it is listed with its reason
in `failed.csv` and `failed.json`, counted in the report, left out of the split files, and retried by the
next run. The split files and `classes.txt` are written last, from the clips that are in place.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from avlab.data.layout import (FRAME_PATTERN, SPLITS, Layout, atomic_write_json, atomic_write_text, write_classes,
                               write_split_csv, write_wav)
from avlab.data.raw import READERS, RawClip, RawListing

FORMAT_VERSION = 1
AUDIO_RATES = {"cremad": 22_050}  # stored sample rate; every other dataset is stored at 16 kHz
DEFAULT_AUDIO_RATE = 16_000
DROP_EMPTY_CLASSES = {"ucf101"}  # MLB's RGB+audio UCF101 keeps only the classes with audio (class_change.pkl)


class ClipError(Exception):
    """A clip that cannot be used; `kind` is its category in the failure report."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


@dataclass
class PreprocessReport:
    dataset: str
    folder: Path
    counts: dict[str, int]  # clips in place per split (what the split files list)
    extracted: int  # clips decoded by this run
    already_done: int  # clips skipped because a previous run had finished them
    failed: list[dict] = field(default_factory=list)  # {clip_id, split, kind, reason}
    seconds: float = 0.0
    notes: dict = field(default_factory=dict)

    @property
    def clips_per_second(self) -> float:
        return self.extracted / self.seconds if self.seconds > 0 else float("nan")

    def failures_by_kind(self) -> dict[str, int]:
        return dict(Counter(f["kind"] for f in self.failed).most_common())

    def __str__(self) -> str:
        splits = ", ".join(f"{s} {n:,}" for s, n in self.counts.items())
        text = (f"{self.dataset}: {sum(self.counts.values()):,} clips in {self.folder} ({splits}); "
                f"{self.extracted:,} extracted in {self.seconds:.1f} s, {self.already_done:,} already done")
        if self.failed:
            kinds = ", ".join(f"{n} {k}" for k, n in self.failures_by_kind().items())
            names = ", ".join(f["clip_id"] for f in self.failed[:5]) + (" ..." if len(self.failed) > 5 else "")
            text += f"; {len(self.failed):,} FAILED ({kinds}: {names}), listed in {self.folder / 'failed.csv'}"
        return text


# ----------------------------------------------------------------------------- decoding (one clip)

def _check_file(path: Path, what: str) -> None:
    if not path.is_file():
        raise ClipError("missing file", f"{what} {path} does not exist")
    with open(path, "rb") as f:
        head = f.read(64)
    if head.startswith(b"version https://git-lfs"):
        raise ClipError("git lfs pointer", f"{path} is a Git LFS pointer, not the media: run `git lfs pull` "
                                           "in the dataset's clone")
    if not head:
        raise ClipError("cannot decode", f"{path} is empty")


def decode_audio(path: str | Path, sample_rate: int) -> np.ndarray:
    """The first audio stream of any file FFmpeg reads (video or audio), as mono int16 at `sample_rate`."""
    import av

    path = Path(path)
    _check_file(path, "audio source")
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise ClipError("no audio track", f"{path.name} has no audio track")
            stream = container.streams.audio[0]
            resampler = av.AudioResampler(format="s16", layout="mono", rate=sample_rate)
            chunks = []
            for frame in container.decode(stream):
                chunks.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(frame))
            chunks.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(None))
    except ClipError:
        raise
    except Exception as err:  # av.error.FFmpegError and friends: corrupt, truncated, unknown format
        raise ClipError("cannot decode", f"cannot decode the audio of {path.name}: {type(err).__name__}: {err}") from err
    samples = np.concatenate(chunks) if chunks else np.zeros(0, np.int16)
    if len(samples) == 0:
        raise ClipError("no audio track", f"the audio track of {path.name} holds no samples")
    return samples.astype(np.int16)


def decode_frames(path: str | Path, fps: float = 1.0, frame_size: int | None = None) -> list:
    """PIL images at times (i + 0.5) / fps: for each, the first decoded frame at or after that time; a clip
    shorter than that gives its last frame. `frame_size` resizes the shorter side (None keeps the size)."""
    import av

    path = Path(path)
    _check_file(path, "video")
    images, last = [], None
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise ClipError("no video track", f"{path.name} has no video track")
            stream = container.streams.video[0]
            stream.codec_context.thread_count = 1  # parallelism is across clips
            base = stream.start_time or 0
            rate = float(stream.average_rate or 25)
            for n, frame in enumerate(container.decode(stream)):
                t = float((frame.pts - base) * stream.time_base) if frame.pts is not None else n / rate
                while t + 1e-6 >= (len(images) + 0.5) / fps:
                    images.append(frame.to_image())
                last = frame
            if not images and last is not None:
                images.append(last.to_image())
    except ClipError:
        raise
    except Exception as err:
        raise ClipError("cannot decode", f"cannot decode the video {path.name}: {type(err).__name__}: {err}") from err
    if not images:
        raise ClipError("cannot decode", f"no video frame could be decoded from {path.name}")
    if frame_size:
        images = [_resize_short_side(im, frame_size) for im in images]
    return images


def _resize_short_side(image, size: int):
    from PIL import Image

    w, h = image.size
    scale = size / min(w, h)
    return image.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.BILINEAR)


def extract_clip(clip: RawClip, layout: Layout, sample_rate: int, fps: float = 1.0,
                 frame_size: int | None = None) -> int:
    """Decode one clip into the layout (frames folder and wav, each renamed into place). Returns #frames.
    Raises ClipError with the reason when the clip cannot be used."""
    if clip.problem:
        raise ClipError("missing file" if "no video file" in clip.problem else "listing", clip.problem)
    if clip.video is None:
        raise ClipError("missing file", f"clip {clip.clip_id} has no video file")
    audio = decode_audio(clip.audio or clip.video, sample_rate)
    images = decode_frames(clip.video, fps, frame_size)
    final = layout.frames_dir(clip.clip_id)
    tmp = final.with_name(f".{final.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        for i, image in enumerate(images, start=1):
            image.convert("RGB").save(tmp / FRAME_PATTERN.format(i), "JPEG", quality=90)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    write_wav(layout.audio_path(clip.clip_id), audio, sample_rate)  # last: the clip counts as done once it exists
    return len(images)


def _work(task) -> tuple[str, str, str | None, str | None]:
    """Pool worker: (clip_id, split, failure kind or None, reason or None)."""
    clip, folder, sample_rate, fps, frame_size = task
    try:
        extract_clip(clip, Layout(folder), sample_rate, fps, frame_size)
        return clip.clip_id, clip.split, None, None
    except ClipError as err:
        return clip.clip_id, clip.split, err.kind, str(err)
    except Exception as err:  # anything unforeseen is still a named, counted failure, never a crashed pool
        return clip.clip_id, clip.split, "error", f"{type(err).__name__}: {err}"


# ----------------------------------------------------------------------------- the whole dataset

def preprocess(dataset: str, raw: str | Path, out: str | Path, *, workers: int = 0, fps: float = 1.0,
               sample_rate: int | None = None, frame_size: int | None = None,
               drop_empty_classes: bool | None = None, overwrite: bool = False, progress: bool = True,
               **reader_options) -> PreprocessReport:
    """Preprocess `dataset` (a key of `avlab.data.raw.READERS`) from the raw folder into `<out>/<dataset>/`.

    `reader_options` go to the dataset's reader (CREMA-D `split_files=`, Kinetics-Sounds `classes=`, UCF101
    `fold=`, ...). `drop_empty_classes` (default: only for UCF101) leaves classes with no usable clip out of
    `classes.txt`. `overwrite=True` extracts every clip again; otherwise a folder made with other settings
    (fps, sample rate, frame size) is refused rather than mixed."""
    if dataset not in READERS:
        raise ValueError(f"unknown dataset {dataset!r}; choose one of {sorted(READERS)}")
    start = time.perf_counter()
    listing: RawListing = READERS[dataset](raw, **reader_options)
    sample_rate = sample_rate or AUDIO_RATES.get(dataset, DEFAULT_AUDIO_RATE)
    layout = Layout(Path(out).expanduser() / dataset)
    settings = {"format_version": FORMAT_VERSION, "dataset": dataset, "fps": fps, "sample_rate": sample_rate,
                "frame_size": frame_size}
    _check_settings(layout, settings, overwrite)

    clips = _validated(listing)
    todo, done, failed = [], [], []
    for clip in clips:
        if clip.problem:
            kind = "unknown class" if clip.problem.startswith("unknown class") else "missing file"
            failed.append({"clip_id": clip.clip_id, "split": clip.split, "kind": kind, "reason": clip.problem})
        elif not overwrite and layout.is_done(clip.clip_id):
            done.append(clip)
        else:
            todo.append(clip)
    layout.folder.mkdir(parents=True, exist_ok=True)
    atomic_write_json(layout.info_path, {**settings, "complete": False})

    tasks = [(clip, str(layout.folder), sample_rate, fps, frame_size) for clip in todo]
    extracted = []
    by_id = {c.clip_id: c for c in todo}
    bar = tqdm(total=len(tasks), desc=f"{dataset} preprocessing", unit="clip", disable=not progress)
    if workers and workers > 0 and len(tasks) > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            results = pool.map(_work, tasks, chunksize=max(1, min(32, len(tasks) // (4 * workers))))
            for result in results:
                _collect(result, by_id, extracted, failed)
                bar.update()
    else:
        for task in tasks:
            _collect(_work(task), by_id, extracted, failed)
            bar.update()
    bar.close()

    in_place = done + extracted
    classes = list(listing.classes)
    if drop_empty_classes if drop_empty_classes is not None else dataset in DROP_EMPTY_CLASSES:
        used = {c.label for c in in_place}
        classes = [c for c in classes if c in used]
    splits = {s: sorted((c.clip_id, c.label) for c in in_place if c.split == s)
              for s in sorted({c.split for c in clips}, key=lambda s: (SPLITS + (s,)).index(s))}
    for split, rows in splits.items():
        write_split_csv(layout.split_path(split), rows)
    write_classes(layout.classes_path, classes)
    failed.sort(key=lambda f: (f["split"], f["clip_id"]))
    _write_failures(layout, failed)
    report = PreprocessReport(dataset, layout.folder, {s: len(r) for s, r in splits.items()}, len(extracted),
                              len(done), failed, time.perf_counter() - start, listing.notes)
    atomic_write_json(layout.info_path, {**settings, "complete": True, "counts": report.counts,
                                         "classes": len(classes), "failed": len(failed),
                                         "failures_by_kind": report.failures_by_kind(), "notes": listing.notes})
    return report


def _collect(result, by_id, extracted, failed) -> None:
    clip_id, split, kind, reason = result
    if kind is None:
        extracted.append(by_id[clip_id])
    else:
        failed.append({"clip_id": clip_id, "split": split, "kind": kind, "reason": reason})


def _validated(listing: RawListing) -> list[RawClip]:
    """Unknown classes become named failures; a clip in two splits is an error (it would leak); a clip listed
    twice in one split is kept once."""
    known = set(listing.classes)
    split_of: dict[str, str] = {}
    clips = []
    for clip in listing.clips:
        previous = split_of.get(clip.clip_id)
        if previous is not None:
            if previous != clip.split:
                raise ValueError(f"clip {clip.clip_id!r} is listed in both the {previous} and the {clip.split} "
                                 "split; fix the split files (a clip in two splits leaks the test set)")
            continue
        split_of[clip.clip_id] = clip.split
        if clip.problem is None and clip.label not in known:
            clip.problem = f"unknown class {clip.label!r} (the {listing.dataset} classes are {sorted(known)})"
        clips.append(clip)
    return clips


def _check_settings(layout: Layout, settings: dict, overwrite: bool) -> None:
    if overwrite or not layout.info_path.is_file():
        return
    try:
        old = json.loads(layout.info_path.read_text())
    except ValueError:
        return
    differ = {k: (old.get(k), v) for k, v in settings.items() if old.get(k) != v}
    if differ:
        raise ValueError(f"{layout.folder} was preprocessed with other settings {differ} (then, now); "
                         "pass overwrite=True to extract every clip again, or use another output folder")


def _write_failures(layout: Layout, failed: list[dict]) -> None:
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, ["clip_id", "split", "kind", "reason"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(failed)
    atomic_write_text(layout.failed_csv, buffer.getvalue())
    atomic_write_json(layout.failed_json, {"count": len(failed),
                                           "by_kind": dict(Counter(f["kind"] for f in failed).most_common()),
                                           "clips": failed})
