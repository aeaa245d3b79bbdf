"""AV-Digits: the course's embedded audio-visual dataset, built offline and deterministically from a seed.

Each sample pairs, AV-MNIST style, a spoken digit word (eSpeak NG, 128 voices, random rate and pitch, additive
noise at a chosen SNR, as a log-mel spectrogram) with a short clip of a real handwritten digit
(scikit-learn's `load_digits`) drifting across a noisy 32x32 canvas. Both show the same class; nothing else ties
them. Train, val and test use disjoint speakers and disjoint source images.

The knobs decide which modality learns fast (`snr_db`, `vis_noise`) and how much of the label a modality can
carry at all (`coarse_audio`: the audio names only the pair of digits, so audio alone caps at 50%).
`shared/research/data.md` explains the design; `PRESETS` names the settings the chapters use.
"""
from __future__ import annotations

import hashlib
import json
import os
import zipfile
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import numpy as np
import torch
import torchaudio
from torch.utils.data import Dataset

from avlab.data import speech
from avlab.utils import data_dir

SPLITS = ("train", "val", "test")
SAMPLE_RATE = 16_000
NUM_CLASSES = 10
CACHE_VERSION = 1  # bump when the audio recipe changes, so old caches are not reused

PRESETS: dict[str, dict] = {
    # audio is clean and learned in a few epochs; the noisy digits are slow: the CREMA-D picture
    "dominant_audio": dict(snr_db=20.0, vis_noise=0.3),
    # both modalities are hard alone, fusion clearly helps
    "complementary": dict(snr_db=-5.0, vis_noise=0.3),
    # audio says only the pair ("zero" for 0 and 1, "two" for 2 and 3, ...): capped at 50%, vision must finish
    "coarse_audio": dict(snr_db=20.0, vis_noise=0.3, coarse_audio=True),
    # the mirror image: drowned speech, clean digits
    "dominant_visual": dict(snr_db=-10.0, vis_noise=0.0),
}


class DatasetCacheError(RuntimeError):
    pass


@dataclass(frozen=True)
class AVDigitsConfig:
    snr_db: float = 20.0  # speech-to-noise ratio of the audio, in dB
    vis_noise: float = 0.3  # std of the Gaussian noise added to every frame (digits are in [0, 1])
    coarse_audio: bool = False  # audio names only the pair of digits (label // 2)
    n_train: int = 3000
    n_val: int = 1000
    n_test: int = 1000
    frames: int = 4  # clip length T
    image_size: int = 32  # frame side H = W
    audio_size: int = 32  # log-mel (64 mels x 64 frames) average-pooled to audio_size x audio_size
    seed: int = 0

    def audio_key(self) -> str:
        """Hash of what the cached audio depends on (the visual part is regenerated on load: it is cheap)."""
        audio = {k: v for k, v in asdict(self).items() if k not in ("vis_noise", "frames", "image_size")}
        text = json.dumps({"version": CACHE_VERSION, **audio}, sort_keys=True)
        return hashlib.sha1(text.encode()).hexdigest()[:12]


def make_config(preset: str | None = "dominant_audio", **overrides) -> AVDigitsConfig:
    if preset is not None and preset not in PRESETS:
        raise ValueError(f"unknown AV-Digits preset {preset!r}; choose one of {sorted(PRESETS)} or None")
    known = {f.name for f in fields(AVDigitsConfig)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise TypeError(f"unknown AV-Digits setting(s) {unknown}; the settings are {sorted(known)}")
    return replace(AVDigitsConfig(), **{**(PRESETS[preset] if preset else {}), **overrides})


class AVDigits(Dataset):
    """One split. Items are dicts: `audio` (1, F, T), `visual` (1, frames, H, W), `label`, `index`."""

    modalities = ("audio", "visual")
    num_classes = NUM_CLASSES

    def __init__(self, audio: torch.Tensor, visual: torch.Tensor, labels: torch.Tensor, meta: dict,
                 config: AVDigitsConfig, split: str):
        if not (len(audio) == len(visual) == len(labels)):
            raise ValueError(f"audio, visual and labels disagree in length: {len(audio)}, {len(visual)}, {len(labels)}")
        self.audio, self.visual, self.labels, self.meta = audio, visual, labels, meta
        self.config, self.split = config, split

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict:
        return {"audio": self.audio[i], "visual": self.visual[i], "label": self.labels[i], "index": i}

    def waveform(self, i: int) -> np.ndarray:
        """Sample i's noisy 1-s waveform at 16 kHz, re-synthesised with the voice, offset and noise it was built
        with. eSpeak's pitch flutter depends on what the engine said before, so it matches the built features
        closely (correlation > 0.99), not bit for bit."""
        return _waveforms(self.meta, [i], self.config.snr_db)[0]

    def __repr__(self) -> str:
        return (f"AVDigits({self.split}, n={len(self)}, audio={tuple(self.audio.shape[1:])}, "
                f"visual={tuple(self.visual.shape[1:])}, snr_db={self.config.snr_db}, "
                f"vis_noise={self.config.vis_noise}, coarse_audio={self.config.coarse_audio})")


def load_avdigits(preset: str | None = "dominant_audio", *, build: bool = True, rebuild: bool = False,
                  cache_dir: str | Path | None = None, **overrides) -> dict[str, AVDigits]:
    """The three splits of AV-Digits under `preset` (see PRESETS), with any setting overridden.

    The audio features are cached under `$AVLAB_DATA/avdigits/` (default `data/`); a missing cache is built
    (a few seconds) unless `build=False`, and `rebuild=True` replaces it.
    """
    config = make_config(preset, **overrides)
    path = Path(cache_dir or data_dir() / "avdigits") / f"audio-{config.audio_key()}.npz"
    if rebuild or not path.exists():
        if not build:
            raise FileNotFoundError(f"AV-Digits cache {path} does not exist; call load_avdigits(..., build=True) "
                                    "to build it (a few seconds, no download)")
        _build_in_fresh_process(config, path)
    audio_cache = _read_cache(path, config)
    images, targets = _load_digit_images()
    datasets = {}
    for split_index, split in enumerate(SPLITS):
        meta = {k[len(split) + 1:]: v for k, v in audio_cache.items() if k.startswith(split + "/")}
        labels = torch.from_numpy(meta["label"].astype(np.int64))
        audio = torch.from_numpy(meta.pop("features").astype(np.float32))
        rng = np.random.default_rng([config.seed, 1, split_index])
        visual, visual_meta = _moving_digit_clips(images, targets, meta["image_idx"], config, rng)
        datasets[split] = AVDigits(audio, visual, labels, {**meta, **visual_meta}, config, split)
    return datasets


# ----------------------------------------------------------------------------- audio

def _speaker_split(seed: int) -> dict[str, list[str]]:
    order = np.random.default_rng([seed, 7]).permutation(len(speech.SPEAKERS))
    names = [speech.SPEAKERS[i] for i in order]
    return {"train": names[:96], "val": names[96:112], "test": names[112:]}


def _image_split(seed: int, targets: np.ndarray) -> dict[str, np.ndarray]:
    """Per class: 60% of the source images for train, 15% val, 25% test."""
    rng = np.random.default_rng([seed, 8])
    parts = {s: [] for s in SPLITS}
    for c in range(NUM_CLASSES):
        idx = rng.permutation(np.flatnonzero(targets == c))
        a, b = int(0.60 * len(idx)), int(0.75 * len(idx))
        parts["train"].append(idx[:a]); parts["val"].append(idx[a:b]); parts["test"].append(idx[b:])
    return {s: np.sort(np.concatenate(p)) for s, p in parts.items()}


def _build_in_fresh_process(config: AVDigitsConfig, path: Path) -> None:
    """eSpeak NG keeps state across utterances (its pitch flutter runs on a global counter), so the same calls
    give the same audio only from a fresh engine: every build runs in a new Python process."""
    import subprocess
    import sys

    args = [sys.executable, "-m", "avlab.data.avdigits", json.dumps(asdict(config)), str(path)]
    done = subprocess.run(args, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"building AV-Digits into {path} failed:\n{done.stderr[-3000:]}")


def _build_audio(config: AVDigitsConfig) -> dict[str, np.ndarray]:
    _, targets = _load_digit_images()
    speakers, images = _speaker_split(config.seed), _image_split(config.seed, targets)
    arrays: dict[str, np.ndarray] = {}
    stats = None
    for split_index, split in enumerate(SPLITS):
        n = getattr(config, f"n_{split}")
        rng = np.random.default_rng([config.seed, 2, split_index])
        labels = np.arange(n) % NUM_CLASSES  # balanced classes
        rng.shuffle(labels)
        spoken = labels // 2 * 2 if config.coarse_audio else labels
        voices = speech.random_voices(rng, speakers[split], n)
        meta = {
            "label": labels.astype(np.int16),
            "word": spoken.astype(np.int16),
            "speaker": np.array([speech.SPEAKERS.index(v.speaker) for v in voices], np.int16),
            "rate": np.array([v.rate for v in voices], np.int16),
            "pitch": np.array([v.pitch for v in voices], np.int16),
            "pitch_range": np.array([v.pitch_range for v in voices], np.int16),
            "offset": rng.random(n).astype(np.float32),  # where the word sits in its 1-s window, as a fraction
            "noise_seed": rng.integers(2**31, size=n),
            "image_idx": np.array([rng.choice(images[split][targets[images[split]] == c]) for c in labels]),
        }
        features = _log_mel(_waveforms(meta, range(n), config.snr_db), config.audio_size)
        if stats is None:  # standardise with the training split's statistics
            stats = features.mean(), features.std()
        meta["features"] = ((features - stats[0]) / stats[1]).astype(np.float16)
        arrays.update({f"{split}/{k}": v for k, v in meta.items()})
    arrays["config"] = np.array(json.dumps(asdict(config), sort_keys=True))
    return arrays


def _waveforms(meta: dict, indices, snr_db: float) -> list[np.ndarray]:
    indices = list(indices)
    voices = [speech.Voice(speech.SPEAKERS[meta["speaker"][i]], meta["rate"][i], meta["pitch"][i],
                           meta["pitch_range"][i]) for i in indices]
    words = [speech.DIGIT_WORDS[meta["word"][i]] for i in indices]
    out = []
    seeds = [int(meta["noise_seed"][i]) for i in indices]
    for i, wav in zip(indices, speech.synthesize(words, voices, SAMPLE_RATE, seeds)):
        wav = wav[:SAMPLE_RATE]
        window = np.zeros(SAMPLE_RATE, np.float32)
        start = int(meta["offset"][i] * (SAMPLE_RATE - len(wav)))
        window[start:start + len(wav)] = wav
        noise_std = np.sqrt(np.mean(wav**2) / 10 ** (snr_db / 10))  # SNR over the spoken part
        window += np.random.default_rng(int(meta["noise_seed"][i])).normal(0, noise_std, SAMPLE_RATE).astype(np.float32)
        out.append(window)
    return out


def _log_mel(waves: list[np.ndarray], size: int) -> np.ndarray:
    """(N, 1, size, size) log-mel: 64 mels, 25 ms windows, 15 ms hop, 64 frames, then average-pooled."""
    mel = torchaudio.transforms.MelSpectrogram(SAMPLE_RATE, n_fft=512, win_length=400, hop_length=240, n_mels=64)
    with torch.no_grad():
        spec = torch.log(mel(torch.from_numpy(np.stack(waves)))[..., :64] + 1e-6).unsqueeze(1)
        if size != 64:
            spec = torch.nn.functional.adaptive_avg_pool2d(spec, size)
    return spec.numpy()


def _write_cache(path: Path, arrays: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)  # atomic: a crash mid-write never leaves a half-written cache behind


def _read_cache(path: Path, config: AVDigitsConfig) -> dict[str, np.ndarray]:
    try:
        with np.load(path) as f:
            arrays = {k: f[k] for k in f.files}
        missing = [f"{s}/{k}" for s in SPLITS for k in ("features", "label", "image_idx") if f"{s}/{k}" not in arrays]
        if missing:
            raise KeyError(f"missing arrays {missing}")
        n_built = {s: len(arrays[f"{s}/label"]) for s in SPLITS}
        if n_built != {s: getattr(config, f"n_{s}") for s in SPLITS}:
            raise ValueError(f"it holds {n_built} samples, the config asks for others")
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
        raise DatasetCacheError(f"AV-Digits cache {path} is corrupt or stale ({err}); delete the file or call "
                                "load_avdigits(..., rebuild=True) to build it again") from err
    return arrays


# ----------------------------------------------------------------------------- visual

def _load_digit_images() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    return (digits.images / 16.0).astype(np.float32), digits.target  # 1,797 real 8x8 digits in [0, 1]


def _moving_digit_clips(images: np.ndarray, targets: np.ndarray, image_idx: np.ndarray, config: AVDigitsConfig,
                        rng: np.random.Generator) -> tuple[torch.Tensor, dict]:
    """Each 8x8 digit, upsampled to 16x16, drifts across a `image_size` canvas over `frames` frames (+-3 px/frame)."""
    n, T, S = len(image_idx), config.frames, config.image_size
    sprites = images[image_idx].repeat(2, axis=1).repeat(2, axis=2)  # nearest-neighbour 16x16
    velocity = rng.integers(-3, 4, size=(n, 2))
    span = S - 16 - np.abs(velocity) * (T - 1)  # room left for the start so the digit stays on the canvas
    start = (rng.random((n, 2)) * (span + 1)).astype(int) + np.maximum(0, -velocity) * (T - 1)
    clips = np.zeros((n, T, S, S), np.float32)
    for t in range(T):
        y, x = (start + velocity * t).T
        for i in range(n):
            clips[i, t, y[i]:y[i] + 16, x[i]:x[i] + 16] = sprites[i]
    clips += rng.normal(0, config.vis_noise, clips.shape).astype(np.float32)
    assert targets[image_idx].shape == (n,)
    return torch.from_numpy(clips).unsqueeze(1), {"velocity": velocity, "start": start}


if __name__ == "__main__":  # the fresh process that `_build_in_fresh_process` starts
    import sys

    _config = AVDigitsConfig(**json.loads(sys.argv[1]))
    _write_cache(Path(sys.argv[2]), _build_audio(_config))
