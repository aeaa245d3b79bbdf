"""Readers of each real dataset's raw download: which clips exist, their labels and splits, where their files are.

Each reader returns a `RawListing` (clips + class list) that `avlab.data.preprocess` turns into the common layout.
The readers look files up by name anywhere under the raw folder, so the usual variants of each download (flat
or one folder per class) all work. A clip named by a split file whose video is missing, or whose label is not a
class, is kept in the listing with its `problem` set: preprocessing reports it, by name, in `failed.csv`.

| reader            | raw folder holds                                                    | splits                        |
|-------------------|---------------------------------------------------------------------|-------------------------------|
| `cremad`          | `VideoFlash/*.flv`, `AudioWAV/*.wav` (git lfs clone of CREMA-D)      | the OGM-GE lists, or by actor |
| `ave`             | `AVE/*.mp4`, `Annotations.txt`, `{train,val,test}Set.txt` (`&` rows) | official                      |
| `kinetics_sounds` | Kinetics-400 `*.mp4` + `annotations/{train,val,test}.csv`, classes  | official, class subset        |
| `vggsound`        | `vggsound.csv` (`id,start,label,split`) + `<id>_<start:06d>.mp4`     | the csv's train/test column   |
| `ucf101`          | `UCF-101/<Class>/*.avi` + `ucfTrainTestlist/`                        | official fold 1, 2 or 3       |
"""
from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from avlab.data.layout import read_classes, read_split_csv

VIDEO_EXTENSIONS = (".mp4", ".flv", ".avi", ".mkv", ".webm", ".mov", ".m4v")
AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".m4a", ".aac", ".ogg")

# OGM-GE `data/CREMAD/stat.csv`: the class order every paper in this line uses (label index 0..5)
CREMAD_CLASSES = ("NEU", "HAP", "SAD", "FEA", "DIS", "ANG")
CREMAD_NAME = re.compile(r"^(\d{4})_([A-Z]{3})_([A-Z]{3})_([A-Z]{2})$")  # actor_sentence_EMO_level


@dataclass
class RawClip:
    clip_id: str
    label: str
    split: str
    video: Path | None = None  # frames come from here (and the audio, unless `audio` is given)
    audio: Path | None = None  # a separate audio file (CREMA-D's AudioWAV)
    problem: str | None = None  # set when the clip cannot be used; reported in failed.csv, never dropped silently


@dataclass
class RawListing:
    dataset: str
    clips: list[RawClip]
    classes: list[str]
    notes: dict = field(default_factory=dict)  # what the reader did that a user may want to know (counts)


def raw_folder(raw: str | Path, what: str) -> Path:
    raw = Path(raw).expanduser()
    if not raw.is_dir():
        raise FileNotFoundError(f"raw {what} folder {raw} does not exist; point `raw` at the unpacked download")
    return raw


def index_files(folder: Path, extensions) -> dict[str, Path]:
    """{file stem: path} of every file under `folder` with one of `extensions` (first found wins, sorted walk)."""
    found: dict[str, Path] = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames.sort()
        for name in sorted(filenames):
            stem, ext = os.path.splitext(name)
            if ext.lower() in extensions and not name.startswith("."):
                found.setdefault(stem, Path(dirpath) / name)
    return found


def find_file(folder: Path, name: str) -> Path | None:
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames.sort()
        if name in filenames:
            return Path(dirpath) / name
    return None


def group_split(groups: dict[str, str], test_fraction: float = 0.1, val_fraction: float = 0.0,
                seed: int = 0) -> dict[str, str]:
    """{item: split} with whole groups in one split: shuffle the sorted group names with `seed`, then give
    round(fraction * #groups) groups (at least one if the fraction is > 0) to test, then val; the rest is train."""
    names = sorted(set(groups.values()))
    order = [names[i] for i in np.random.default_rng(seed).permutation(len(names))]
    take = [max(1, round(f * len(names))) if f > 0 else 0 for f in (test_fraction, val_fraction)]
    if sum(take) >= len(names):
        raise ValueError(f"{len(names)} groups cannot be split into test {test_fraction} and val {val_fraction} "
                         "with groups left for training")
    of = {g: "test" for g in order[:take[0]]}
    of.update({g: "val" for g in order[take[0]:take[0] + take[1]]})
    return {item: of.get(g, "train") for item, g in groups.items()}


# ----------------------------------------------------------------------------- CREMA-D

def cremad(raw, split_files: dict | None = None, test_fraction: float = 0.1, val_fraction: float = 0.0,
           seed: int = 0) -> RawListing:
    """CREMA-D: frames from `VideoFlash/<clip>.flv`, audio from `AudioWAV/<clip>.wav` (the video's own track
    where there is no wav). The label is the clip name's third field (`1001_IEO_HAP_LO` is HAP).

    Splits: `split_files={"train": ".../train.csv", "test": ".../test.csv"}` reads the lists every paper in the
    OGM-GE line uses (6,698 / 744 clips, `clip_id,EMO` with a BOM). They ship in the OGM-GE repository
    (`data/CREMAD/`), not with CREMA-D, and avlab cannot download them: supply them yourself. That split is
    not actor-disjoint (all 91 actors are in both). Without split files, clips are split by actor (no actor in
    two splits): `test_fraction` and `val_fraction` of the actors, drawn with `seed`.
    """
    raw = raw_folder(raw, "CREMA-D")
    videos = {k: v for k, v in index_files(raw, VIDEO_EXTENSIONS).items() if CREMAD_NAME.match(k)}
    audios = {k: v for k, v in index_files(raw, (".wav",)).items() if CREMAD_NAME.match(k)}
    if not videos and not audios:
        raise FileNotFoundError(f"no CREMA-D clips (VideoFlash/<actor>_<sentence>_<EMO>_<level>.flv, "
                                f"AudioWAV/....wav) under {raw}")
    notes = {}
    if split_files:
        rows = [(split, clip_id, label) for split, path in split_files.items()
                for clip_id, label in read_split_csv(path)]
    else:
        ids = sorted(set(videos) | set(audios))
        actor_of = {c: CREMAD_NAME.match(c).group(1) for c in ids}
        split_of = group_split(actor_of, test_fraction, val_fraction, seed)
        rows = [(split_of[c], c, CREMAD_NAME.match(c).group(3)) for c in ids]
        notes["split"] = f"actor-disjoint, seed {seed}, test {test_fraction}, val {val_fraction} of the actors"
    clips = []
    for split, clip_id, label in rows:
        clip = RawClip(clip_id, label, split, videos.get(clip_id), audios.get(clip_id))
        if clip.video is None:
            clip.problem = f"no video file {clip_id}.flv under {raw}"
        clips.append(clip)
    return RawListing("cremad", clips, list(CREMAD_CLASSES), notes)


# ----------------------------------------------------------------------------- AVE

def _read_ave_rows(path: Path) -> list[tuple[str, str]]:
    """(category, video_id) of an AVE list, rows `Category&VideoID&Quality&StartTime&EndTime`."""
    rows = []
    for line_no, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), start=1):
        fields = [f.strip() for f in line.split("&")]
        if not line.strip() or fields[0] == "Category":  # blank line or header
            continue
        if len(fields) < 2 or not fields[0] or not fields[1]:
            raise ValueError(f"{path}, line {line_no}: expected 'Category&VideoID&Quality&Start&End', got {line!r}")
        rows.append((fields[0], fields[1]))
    return rows


def ave(raw) -> RawListing:
    """AVE (Tian et al. 2018): `AVE/<VideoID>.mp4` and the official `trainSet.txt`, `valSet.txt`,
    `testSet.txt` (3,339 / 402 / 402). Classes: the 28 categories of `Annotations.txt`, sorted. A video listed
    twice in one split (AVE has a few) is used once."""
    raw = raw_folder(raw, "AVE")
    lists = {s: find_file(raw, f"{s}Set.txt") for s in ("train", "val", "test")}
    missing = [f"{s}Set.txt" for s, p in lists.items() if p is None]
    if missing:
        raise FileNotFoundError(f"AVE split lists {missing} not found under {raw} (they come in AVE_Dataset.zip)")
    videos = index_files(raw, VIDEO_EXTENSIONS)
    per_split = {s: _read_ave_rows(p) for s, p in lists.items()}
    annotations = find_file(raw, "Annotations.txt")
    rows_for_classes = _read_ave_rows(annotations) if annotations else [r for rs in per_split.values() for r in rs]
    classes = sorted({c for c, _ in rows_for_classes})
    clips, duplicates = [], 0
    for split, rows in per_split.items():
        seen = set()
        for label, vid in rows:
            if vid in seen:
                duplicates += 1
                continue
            seen.add(vid)
            clip = RawClip(vid, label, split, videos.get(vid))
            if clip.video is None:
                clip.problem = f"no video file {vid}.mp4 under {raw}"
            clips.append(clip)
    return RawListing("ave", clips, classes, {"duplicate_rows_merged": duplicates})


# ----------------------------------------------------------------------------- Kinetics-Sounds

def kinetics_sounds(raw, classes=None, annotations: dict | None = None) -> RawListing:
    """Kinetics-Sounds: the clips of a subset of Kinetics-400 classes. Videos `<youtube_id>_<start:06d>_<end:06d>.mp4`
    anywhere under `raw` (the CVDF layout `train/`, `val/`, `test/`, or per class); annotations
    `annotations/{train,val,test}.csv` (header `label,youtube_id,time_start,time_end,split`) or
    `annotations={split: path}`.

    `classes`: the subset, a list of Kinetics class names or a file with one per line (OGM-GE's Kinetics-Sounds
    has 31 classes; the list is the user's to supply), or "all" for every class in the annotations. Clips of
    other classes are not part of the dataset and are left out (their number is in `notes`)."""
    raw = raw_folder(raw, "Kinetics")
    if classes is None:
        raise ValueError("Kinetics-Sounds is a subset of the Kinetics-400 classes: pass classes=[...] or a file "
                         "with one class name per line (or classes='all' for every class)")
    if annotations is None:
        annotations = {s: p for s in ("train", "val", "test") if (p := find_file(raw, f"{s}.csv")) is not None}
    if not annotations:
        raise FileNotFoundError(f"no Kinetics annotation files (annotations/train.csv, ...) under {raw}")
    rows = []
    for split, path in annotations.items():
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            need = {"label", "youtube_id", "time_start", "time_end"}
            if not need <= set(reader.fieldnames or ()):
                raise ValueError(f"Kinetics annotation file {path} lacks the columns {sorted(need)} "
                                 f"(it has {reader.fieldnames})")
            for r in reader:
                clip_id = f"{r['youtube_id']}_{int(float(r['time_start'])):06d}_{int(float(r['time_end'])):06d}"
                rows.append((split, clip_id, r["label"].strip()))
    if isinstance(classes, str) and classes == "all":
        classes = sorted({label for _, _, label in rows})
    elif isinstance(classes, (str, Path)):
        classes = read_classes(classes)
    classes = list(classes)
    wanted = set(classes)
    unknown = sorted(wanted - {label for _, _, label in rows})
    if unknown:
        raise ValueError(f"classes {unknown} do not occur in the Kinetics annotations {sorted(map(str, annotations.values()))}")
    videos = index_files(raw, VIDEO_EXTENSIONS)
    clips = []
    for split, clip_id, label in rows:
        if label not in wanted:
            continue
        clip = RawClip(clip_id, label, split, videos.get(clip_id))
        if clip.video is None:
            clip.problem = f"no video file {clip_id}.mp4 under {raw}"
        clips.append(clip)
    return RawListing("kinetics_sounds", clips, classes, {"rows_of_other_classes": len(rows) - len(clips)})


# ----------------------------------------------------------------------------- VGGSound

def vggsound(raw, csv_path=None) -> RawListing:
    """VGGSound: `vggsound.csv` (no header: `YouTubeID,start_seconds,label,split`, split train or test) and the
    videos `<id>_<start:06d>.mp4` (or `<id>_<start>.mp4`) anywhere under `raw`. 309 classes, sorted."""
    raw = raw_folder(raw, "VGGSound")
    path = Path(csv_path) if csv_path else find_file(raw, "vggsound.csv")
    if path is None or not path.is_file():
        raise FileNotFoundError(f"vggsound.csv not found under {raw} (pass csv_path=...)")
    rows = []
    with open(path, newline="", encoding="utf-8-sig") as f:
        for line_no, r in enumerate(csv.reader(f), start=1):
            if not r:
                continue
            if len(r) != 4:
                raise ValueError(f"{path}, line {line_no}: expected 'YouTubeID,start_seconds,label,split', got {r!r}")
            yid, start, label, split = (x.strip() for x in r)
            rows.append((yid, int(float(start)), label, split))
    videos = index_files(raw, VIDEO_EXTENSIONS)
    clips = []
    for yid, start, label, split in rows:
        names = (f"{yid}_{start:06d}", f"{yid}_{start}", f"{yid}_{start:06d}_{start + 10:06d}")
        video = next((videos[n] for n in names if n in videos), None)
        clip = RawClip(names[0], label, split, video)
        if video is None:
            clip.problem = f"no video file {names[0]}.mp4 under {raw}"
        clips.append(clip)
    return RawListing("vggsound", clips, sorted({r[2] for r in rows}))


# ----------------------------------------------------------------------------- UCF101

UCF_GROUP = re.compile(r"_g(\d+)_c\d+$")


def ucf101(raw, fold: int = 1, val_fraction: float = 0.0, seed: int = 0) -> RawListing:
    """UCF101: `UCF-101/<Class>/v_<Class>_gXX_cYY.avi` and `ucfTrainTestlist/` (`classInd.txt`,
    `trainlist0<fold>.txt`, `testlist0<fold>.txt`). About half the videos have no audio track; preprocessing
    reports each as failed ("no audio track"), which is how MLB's RGB+audio subset is formed, and
    `drop_empty_classes` then keeps only the classes that have audio. `val_fraction` > 0 moves that share of
    each class's training groups (`gXX`, the same people and scene) to a validation split: no group straddles
    two splits."""
    raw = raw_folder(raw, "UCF101")
    if fold not in (1, 2, 3):
        raise ValueError(f"UCF101 has official folds 1, 2 and 3, not {fold}")
    class_ind = find_file(raw, "classInd.txt")
    if class_ind is None:
        raise FileNotFoundError(f"classInd.txt not found under {raw} (unpack UCF101TrainTestSplits-RecognitionTask.zip there)")
    classes = []
    for line_no, line in enumerate(class_ind.read_text(encoding="utf-8-sig").splitlines(), start=1):
        if line.strip():
            parts = line.split()
            if len(parts) != 2 or not parts[0].isdigit():
                raise ValueError(f"{class_ind}, line {line_no}: expected '<index> <ClassName>', got {line!r}")
            classes.append(parts[1])
    by_lower = {c.lower(): c for c in classes}
    videos = index_files(raw, VIDEO_EXTENSIONS)
    videos_lower = {k.lower(): v for k, v in videos.items()}
    clips = []
    for split in ("train", "test"):
        path = class_ind.parent / f"{split}list0{fold}.txt"
        if not path.is_file():
            raise FileNotFoundError(f"UCF101 split list {path} does not exist")
        for line in path.read_text(encoding="utf-8-sig").splitlines():
            if not line.strip():
                continue
            rel = line.split()[0]
            folder, _, name = rel.replace("\\", "/").rpartition("/")
            clip_id = os.path.splitext(name)[0]
            label = by_lower.get(folder.lower(), folder)
            video = videos.get(clip_id) or videos_lower.get(clip_id.lower())
            clip = RawClip(clip_id, label, split, video)
            if video is None:
                clip.problem = f"no video file {name} under {raw}"
            clips.append(clip)
    notes = {"fold": fold}
    if val_fraction > 0:
        train = [c for c in clips if c.split == "train"]
        for label in sorted({c.label for c in train}):
            members = {c.clip_id: (m.group(1) if (m := UCF_GROUP.search(c.clip_id)) else c.clip_id)
                       for c in train if c.label == label}
            split_of = group_split(members, 0.0, val_fraction, seed) if len(set(members.values())) > 1 else {}
            for c in train:
                if c.label == label and split_of.get(c.clip_id) == "val":
                    c.split = "val"
        notes["val"] = f"{val_fraction} of each class's training groups, seed {seed}"
    return RawListing("ucf101", clips, classes, notes)


READERS = {"cremad": cremad, "ave": ave, "kinetics_sounds": kinetics_sounds, "vggsound": vggsound, "ucf101": ucf101}
