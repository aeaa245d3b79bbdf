"""Tiny raw downloads in each real dataset's layout, made of real encoded media (PyAV), for the tests, the
benchmark, and for trying the preprocessing pipeline without a multi-gigabyte download.

    make_raw("cremad", "/tmp/raw-cremad", clips_per_class=2)     # VideoFlash/*.flv + AudioWAV/*.wav
    preprocess("cremad", "/tmp/raw-cremad", "/tmp/avdata")

Every clip carries its class in both modalities: the frames show a square whose colour and drift are set by
the class, the sound is a tone whose pitch is set by the class, plus a little noise.
"""
from __future__ import annotations

import csv
from fractions import Fraction
from pathlib import Path

import numpy as np

CODECS = {".mp4": ("mpeg4", "aac"), ".flv": ("flv", "aac"), ".avi": ("mpeg4", "libmp3lame"),
          ".mkv": ("mpeg4", "aac")}


def clip_signals(label: int, num_classes: int, seconds: float, fps: int = 10, size: int | tuple[int, int] = 32,
                 sample_rate: int = 16_000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(frames (N, H, W, 3) uint8, audio float32 in [-1, 1]) of one synthetic clip of class `label`;
    `size` is W = H or (W, H) (even numbers: the video codecs need them)."""
    rng = np.random.default_rng(seed)
    width, height = (size, size) if isinstance(size, int) else size
    n = max(1, int(round(seconds * fps)))
    hue = np.array([np.cos(2 * np.pi * label / num_classes), np.sin(2 * np.pi * label / num_classes), 0.5])
    colour = (127 + 120 * hue).astype(np.uint8)
    frames = rng.integers(0, 40, size=(n, height, width, 3), dtype=np.uint8)
    side = min(width, height) // 3
    for t in range(n):
        x = int((t * (1 + label % 3) * max(1, side // 8)) % (width - side))
        frames[t, height // 3:height // 3 + side, x:x + side] = colour
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    audio = 0.4 * np.sin(2 * np.pi * (300 + 150 * label) * t) + rng.normal(0, 0.02, len(t))
    return frames, audio.astype(np.float32)


def write_video(path: str | Path, frames: np.ndarray, fps: int = 10, audio: np.ndarray | None = None,
                sample_rate: int = 16_000) -> Path:
    """Encode RGB frames (N, H, W, 3) uint8 (and a mono track) into `path`; the codec follows the suffix."""
    import av

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    vcodec, acodec = CODECS.get(path.suffix.lower(), ("mpeg4", "aac"))
    with av.open(str(path), "w") as container:
        video = container.add_stream(vcodec, rate=fps)
        video.width, video.height, video.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        sound = None
        if audio is not None:
            sound = container.add_stream(acodec, rate=sample_rate, layout="mono")
        for frame in frames:
            container.mux(video.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")))
        container.mux(video.encode(None))
        if sound is not None:
            size = sound.codec_context.frame_size or 1024
            fmt = sound.codec_context.format.name
            padded = np.zeros(-(-len(audio) // size) * size, np.float32)
            padded[:len(audio)] = audio
            for pts in range(0, len(padded), size):
                chunk = padded[pts:pts + size][None]
                if fmt.startswith("s16"):
                    chunk = (chunk * 32767).astype(np.int16)
                elif fmt.startswith("s32"):
                    chunk = (chunk * 2_147_483_000).astype(np.int32)
                frame = av.AudioFrame.from_ndarray(chunk, format=fmt, layout="mono")
                frame.sample_rate, frame.pts, frame.time_base = sample_rate, pts, Fraction(1, sample_rate)
                container.mux(sound.encode(frame))
            container.mux(sound.encode(None))
    return path


def _write_clip(folder: Path, name: str, label: int, num_classes: int, seconds: float, seed: int,
          audio_in_video: bool = True, sample_rate: int = 16_000, size=32) -> np.ndarray:
    frames, audio = clip_signals(label, num_classes, seconds, size=size, seed=seed, sample_rate=sample_rate)
    write_video(folder / name, frames, audio=audio if audio_in_video else None, sample_rate=sample_rate)
    return audio


def make_raw(dataset: str, folder: str | Path, clips_per_class: int = 2, num_classes: int = 3,
             seconds: float = 2.0, seed: int = 0, size: int | tuple[int, int] = 32) -> dict:
    """Write a tiny raw download of `dataset` into `folder` (videos of `size` pixels, W = H or (W, H), 10 fps);
    returns what was written ({"classes", "clips", plus dataset-specific paths: "split_files" for CREMA-D,
    "classes_file" for Kinetics-Sounds}) and "options", the reader options `preprocess` needs for it."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    k = 0

    def _clip(*a, **kw):
        return _write_clip(*a, size=size, **kw)

    def next_seed():
        nonlocal k
        k += 1
        return seed * 10_000 + k

    if dataset == "cremad":
        emotions = ["NEU", "HAP", "SAD", "FEA", "DIS", "ANG"][:max(1, min(num_classes, 6))]
        import soundfile as sf  # CREMA-D's AudioWAV: written with soundfile, as a user's files would be

        clips, actors = [], [1001 + a for a in range(max(2, clips_per_class))]
        for a, actor in enumerate(actors):
            for e, emo in enumerate(emotions):
                name = f"{actor}_IEO_{emo}_{'XX' if a % 2 else 'LO'}"
                audio = _clip(folder / "VideoFlash", f"{name}.flv", e, len(emotions), seconds, next_seed(),
                              audio_in_video=False)
                (folder / "AudioWAV").mkdir(exist_ok=True)
                sf.write(str(folder / "AudioWAV" / f"{name}.wav"), audio, 16_000, subtype="PCM_16")
                clips.append((name, emo))
        split_dir = folder.parent / f"{folder.name}-ogm-splits"
        split_dir.mkdir(exist_ok=True)
        test = {c for i, (c, _) in enumerate(clips) if (i // len(emotions) + i) % 3 == 2}  # every 3rd, all classes
        for split, keep in (("train", lambda c: c not in test), ("test", lambda c: c in test)):
            with open(split_dir / f"{split}.csv", "w", encoding="utf-8-sig", newline="") as f:  # with a BOM, as OGM-GE's
                f.writelines(f"{c},{emo}\n" for c, emo in clips if keep(c))
        split_files = {"train": split_dir / "train.csv", "test": split_dir / "test.csv"}
        return {"classes": emotions, "clips": clips, "split_files": split_files,
                "options": {"split_files": split_files}}

    names = [f"class {chr(65 + c)}" for c in range(num_classes)]
    if dataset == "ave":
        names = [f"Event {chr(65 + c)}, sound" for c in range(num_classes)]  # real AVE names hold commas too
        rows = {"train": [], "val": [], "test": []}
        for c, name in enumerate(names):
            for i in range(clips_per_class + 2):
                vid = f"vid{c}{i:02d}x"
                _clip(folder / "AVE", f"{vid}.mp4", c, num_classes, seconds, next_seed())
                split = "test" if i == clips_per_class + 1 else "val" if i == clips_per_class else "train"
                rows[split].append(f"{name}&{vid}&good&0&{int(seconds)}")
        header = "Category&VideoID&Quality&StartTime&EndTime"
        for split, lines in rows.items():
            (folder / f"{split}Set.txt").write_text("\n".join(lines) + "\n")
        (folder / "Annotations.txt").write_text("\n".join([header] + [l for ls in rows.values() for l in ls]) + "\n")
        return {"classes": names, "clips": [l.split("&")[1] for ls in rows.values() for l in ls], "options": {}}

    if dataset == "kinetics_sounds":
        names = names + ["not a sound class"]  # a Kinetics class outside the Kinetics-Sounds subset
        clips = []
        for split in ("train", "val"):
            lines = ["label,youtube_id,time_start,time_end,split"]
            for c, name in enumerate(names):
                for i in range(clips_per_class if split == "train" else 1):
                    yid, start = f"-k{c}{i}{split[0]}", 10 * i
                    _clip(folder / split / name, f"{yid}_{start:06d}_{start + 10:06d}.mp4", c, len(names), seconds,
                          next_seed())
                    lines.append(f"{name},{yid},{start},{start + 10},{split}")
                    clips.append(f"{yid}_{start:06d}_{start + 10:06d}")
            (folder / "annotations").mkdir(exist_ok=True)
            (folder / "annotations" / f"{split}.csv").write_text("\n".join(lines) + "\n")
        classes_file = folder / "kinetics_sounds_classes.txt"
        classes_file.write_text("\n".join(names[:-1]) + "\n")
        return {"classes": names[:-1], "clips": clips, "classes_file": classes_file,
                "options": {"classes": classes_file}}

    if dataset == "vggsound":
        names = [f"sound {chr(97 + c)}, loud" for c in range(num_classes)]  # VGGSound labels may hold commas
        rows = []
        for c, name in enumerate(names):
            for i in range(clips_per_class + 1):
                yid, start = f"-v{c}{i}", 30 + i
                _clip(folder / "video", f"{yid}_{start:06d}.mp4", c, num_classes, seconds, next_seed())
                rows.append([yid, start, name, "test" if i == clips_per_class else "train"])
        with open(folder / "vggsound.csv", "w", newline="") as f:
            csv.writer(f).writerows(rows)
        return {"classes": names, "clips": [f"{r[0]}_{r[1]:06d}" for r in rows], "options": {}}

    if dataset == "ucf101":
        names = [f"Action{chr(65 + c)}" for c in range(num_classes + 1)]  # the last class has no sound at all
        lists = folder / "ucfTrainTestlist"
        lists.mkdir(exist_ok=True)
        (lists / "classInd.txt").write_text("".join(f"{i + 1} {n}\n" for i, n in enumerate(names)))
        train, test = [], []
        for c, name in enumerate(names):
            for g in range(1, clips_per_class + 2):
                clip = f"v_{name}_g{g:02d}_c01"
                _clip(folder / "UCF-101" / name, f"{clip}.avi", c, len(names), seconds, next_seed(),
                      audio_in_video=c < num_classes)
                (test if g == clips_per_class + 1 else train).append(f"{name}/{clip}.avi")
        for fold in (1, 2, 3):
            (lists / f"trainlist0{fold}.txt").write_text(
                "".join(f"{p} {names.index(p.split('/')[0]) + 1}\n" for p in train))
            (lists / f"testlist0{fold}.txt").write_text("".join(f"{p}\n" for p in test))
        return {"classes": names[:-1], "clips": [Path(p).stem for p in train + test], "options": {}}

    raise ValueError(f"unknown dataset {dataset!r}")


__all__ = ["clip_signals", "make_raw", "write_video"]
