"""The one on-disk layout every real dataset is preprocessed into (shared/research/data.md §2.8), and its file IO.

    <root>/<dataset>/
      classes.txt                          one class name per line; the line order is the label index
      splits/{train,val,test}.csv          clip_id,label_name   (no header, UTF-8; a BOM is tolerated)
      audio/<clip_id>.wav                  mono PCM16 (16 kHz; 22,050 Hz for CREMA-D)
      frames/<clip_id>/frame_00001.jpg ... 1 frame per second, taken at (i + 0.5) s
      failed.csv, failed.json              the clips preprocessing could not decode, each with its reason
      preprocess.json                      the settings and counts of the last preprocessing run

Every write is atomic (a temporary file, then `os.replace`), so an interrupted run never leaves a half-written
file under its final name. The split reader also reads the OGM-GE CREMA-D lists (`train.csv` 6,698 rows,
`test.csv` 744 rows: `clip_id,EMO` with a BOM), which have exactly this format.
"""
from __future__ import annotations

import csv
import io
import json
import os
import wave
from pathlib import Path

import numpy as np

SPLITS = ("train", "val", "test")
FRAME_PATTERN = "frame_{:05d}.jpg"


class Layout:
    """Paths of one preprocessed dataset folder `<root>/<dataset>`."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)

    def __repr__(self) -> str:
        return f"Layout({str(self.folder)!r})"

    @property
    def classes_path(self) -> Path:
        return self.folder / "classes.txt"

    def split_path(self, split: str) -> Path:
        return self.folder / "splits" / f"{split}.csv"

    def audio_path(self, clip_id: str) -> Path:
        return self.folder / "audio" / f"{clip_id}.wav"

    def frames_dir(self, clip_id: str) -> Path:
        return self.folder / "frames" / clip_id

    def frame_paths(self, clip_id: str) -> list[Path]:
        """The clip's frames in time order (sorted names, never the file system's listing order)."""
        folder = self.frames_dir(clip_id)
        if not folder.is_dir():
            raise FileNotFoundError(f"frames folder {folder} does not exist (clip {clip_id!r} was not preprocessed)")
        return sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg"))

    @property
    def failed_csv(self) -> Path:
        return self.folder / "failed.csv"

    @property
    def failed_json(self) -> Path:
        return self.folder / "failed.json"

    @property
    def info_path(self) -> Path:
        return self.folder / "preprocess.json"

    def splits(self) -> list[str]:
        """The splits that have a split file, in train/val/test order (then any other name)."""
        names = sorted(p.stem for p in (self.folder / "splits").glob("*.csv"))
        return [s for s in SPLITS if s in names] + [s for s in names if s not in SPLITS]

    def read_classes(self) -> list[str]:
        return read_classes(self.classes_path)

    def read_split(self, split: str) -> list[tuple[str, str]]:
        return read_split_csv(self.split_path(split))

    def is_done(self, clip_id: str) -> bool:
        """A clip is done once both its wav and its frames folder exist (each is put in place atomically)."""
        frames = self.frames_dir(clip_id)
        return self.audio_path(clip_id).is_file() and frames.is_dir() and any(frames.glob("*.jpg"))


# ----------------------------------------------------------------------------- atomic writes

def _tmp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp{os.getpid()}")


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_name(path)
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=1, default=str) + "\n")


# ----------------------------------------------------------------------------- split files and classes

def read_split_csv(path: str | Path) -> list[tuple[str, str]]:
    """Rows `(clip_id, label_name)` of a split file: no header, UTF-8 with or without a BOM, blank lines skipped.
    Labels holding commas must be quoted (the csv module's rule; VGGSound has such labels)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"split file {path} does not exist")
    rows = []
    with open(path, newline="", encoding="utf-8-sig") as f:
        for line, row in enumerate(csv.reader(f), start=1):
            if not row or all(not cell.strip() for cell in row):
                continue
            if len(row) != 2 or not row[0].strip() or not row[1].strip():
                raise ValueError(f"{path}, line {line}: expected 'clip_id,label_name', got {row!r}")
            rows.append((row[0].strip(), row[1].strip()))
    return rows


def write_split_csv(path: str | Path, rows) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    for clip_id, label in rows:
        writer.writerow([clip_id, label])
    atomic_write_text(path, buffer.getvalue())


def read_classes(path: str | Path) -> list[str]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"class list {path} does not exist")
    names = [line.strip() for line in path.read_text(encoding="utf-8-sig").splitlines() if line.strip()]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"class list {path} names {duplicates} more than once")
    if not names:
        raise ValueError(f"class list {path} is empty")
    return names


def write_classes(path: str | Path, names) -> None:
    atomic_write_text(path, "".join(f"{n}\n" for n in names))


# ----------------------------------------------------------------------------- wav (mono PCM16, stdlib only)

def write_wav(path: str | Path, samples: np.ndarray, sample_rate: int) -> None:
    """Atomically write mono PCM16; `samples` int16, or float in [-1, 1]."""
    samples = np.asarray(samples)
    if samples.dtype != np.int16:
        samples = (np.clip(samples, -1.0, 1.0) * 32767.0).round().astype(np.int16)
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(int(sample_rate))
        w.writeframes(samples.astype("<i2").tobytes())
    atomic_write_bytes(path, buffer.getvalue())


def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    """(float32 samples in [-1, 1], sample rate) of a layout wav (PCM16; several channels are averaged)."""
    path = Path(path)
    try:
        with wave.open(str(path), "rb") as w:
            channels, width, rate, n = w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()
            data = w.readframes(n)
    except FileNotFoundError:
        raise FileNotFoundError(f"audio file {path} does not exist") from None
    except (wave.Error, EOFError, OSError) as err:
        raise ValueError(f"audio file {path} cannot be read as a PCM wav ({err})") from err
    if width != 2:
        raise ValueError(f"audio file {path} has {8 * width}-bit samples; the layout stores 16-bit PCM")
    usable = len(data) // (2 * channels) * 2 * channels
    if usable == 0:
        raise ValueError(f"audio file {path} holds no samples")
    samples = np.frombuffer(data[:usable], dtype="<i2").astype(np.float32) / 32768.0
    return samples.reshape(-1, channels).mean(axis=1), rate
