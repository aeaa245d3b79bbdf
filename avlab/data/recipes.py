"""The papers' spectrogram recipes, one per dataset, so that a ResNet-18 sees the input shapes of the papers.

| recipe            | as coded in                       | waveform                                   | transform                                    | shape (F x T) |
|-------------------|-----------------------------------|--------------------------------------------|----------------------------------------------|---------------|
| `cremad`          | OGM-GE `CramedDataset`            | 22,050 Hz, tiled, first 3 s, clip [-1, 1]  | STFT 512 / hop 353, log(|S| + 1e-7)          | 257 x 188     |
| `ave`             | OGM-GE `pre-processing/AVE`       | 22,050 Hz, tiled to 160,000 samples        | scipy spectrogram 512 / overlap 353, log(S + 1e-7), z-score | 257 x 1004 |
| `kinetics_sounds` | OGM-GE `KineticSound/process_audio` (AST) | 16 kHz, minus its mean             | Kaldi fbank 128 mel, 25 ms / 10 ms, Hanning, pad or cut to 1024 frames, (x + 4.503877) / (2 * 5.141276) | 1024 x 128 (time x mel) |
| `vggsound`        | OGM-GE `VGGSoundDataset`          | 16 kHz, tiled to >= 10 s, random 5-s crop (train and test), clip | STFT 256 / hop 128, log(|S| + 1e-7) | 129 x 626 |
| `ucf101`          | MLB `datasets/UCF`                | 16 kHz, tiled, first 3 s                   | STFT 512 / hop 353, log(|S| + 1e-7)          | 257 x 136     |

(shared/research/data.md §2.8, methods.md §1.3.) The STFTs are librosa's defaults (periodic Hann window, centred
frames, zero padding as in librosa >= 0.10), computed with `torch.stft`; AVE's is `scipy.signal.spectrogram`
itself (its default Tukey window, constant detrend, density scaling). The Kinetics-Sounds spectrogram is time x
mel, as the authors' AST-style code feeds it. Where a clip is shorter than the recipe's window, it is tiled
(repeated) to length, as the authors do for CREMA-D, AVE and VGGSound.

VGGSound's crop is random at test time too in the authors' code; avlab draws the test crop from a generator
seeded with the clip's index, so evaluation is repeatable and still crops as the authors' code does on average.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class SpectrogramRecipe:
    name: str
    sample_rate: int  # the waveform is resampled to this rate first (as librosa.load(sr=...) does)
    num_samples: int | None  # waveform length fed to the transform; None: the whole clip
    transform: str  # "stft", "scipy" (scipy.signal.spectrogram) or "fbank" (Kaldi)
    n_fft: int = 512  # STFT size, scipy nperseg
    hop: int = 353  # STFT hop; for "scipy" the overlap is n_fft - hop
    tile_to: int | None = None  # tile the waveform to at least this many samples before cropping (default num_samples)
    crop: str = "start"  # "start" or "random" (a random window of num_samples within the tiled waveform)
    clip: bool = True  # clip the waveform to [-1, 1]
    demean: bool = False  # subtract the waveform's mean (AST fbank)
    log_eps: float = 1e-7
    zscore: bool = False  # per-sample (S - mean) / (std + 1e-9)
    num_mel_bins: int = 128  # fbank
    frames: int | None = None  # fbank: pad with zeros or cut to this many frames
    norm_mean: float = 0.0  # fbank: (x - norm_mean) / (2 * norm_std)
    norm_std: float = 0.5
    source: str = ""

    @property
    def deterministic(self) -> bool:
        return self.crop != "random"

    @property
    def shape(self) -> tuple[int, int]:
        """The (F, T) of the spectrogram this recipe gives (for "fbank": (frames, mel))."""
        if self.transform == "stft":
            return self.n_fft // 2 + 1, 1 + self.num_samples // self.hop
        if self.transform == "scipy":
            return self.n_fft // 2 + 1, (self.num_samples - (self.n_fft - self.hop)) // self.hop
        return self.frames, self.num_mel_bins

    def key(self) -> str:
        """Short hash of the recipe, naming a spectrogram cache that no other recipe can reuse."""
        return hashlib.sha1(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:10]

    def waveform(self, samples: np.ndarray, sample_rate: int, generator: torch.Generator | None = None) -> np.ndarray:
        """Resample, tile, crop, clip: the waveform the transform sees (float32)."""
        x = np.asarray(samples, dtype=np.float32)
        if x.ndim != 1 or len(x) == 0:
            raise ValueError(f"expected a non-empty mono waveform, got shape {x.shape}")
        if sample_rate != self.sample_rate:
            import torchaudio

            x = torchaudio.functional.resample(torch.from_numpy(x), sample_rate, self.sample_rate).numpy()
        if self.num_samples is not None:
            need = max(self.tile_to or 0, self.num_samples)
            if len(x) < need:
                x = np.tile(x, -(-need // len(x)))
            if self.crop == "random":
                span = min(len(x), max(self.tile_to or 0, self.num_samples)) - self.num_samples
                start = int(torch.randint(span + 1, (1,), generator=generator)) if span > 0 else 0
            else:
                start = 0
            x = x[start:start + self.num_samples]
        if self.clip:
            x = np.clip(x, -1.0, 1.0)
        if self.demean:
            x = x - x.mean()
        return np.ascontiguousarray(x, dtype=np.float32)

    def __call__(self, samples: np.ndarray, sample_rate: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """(1, F, T) float32 spectrogram of a mono waveform (float in [-1, 1]) recorded at `sample_rate`."""
        x = self.waveform(samples, sample_rate, generator)
        if self.transform == "stft":
            spec = torch.stft(torch.from_numpy(x), self.n_fft, self.hop, window=torch.hann_window(self.n_fft),
                              center=True, pad_mode="constant", return_complex=True).abs()
            spec = torch.log(spec + self.log_eps)
        elif self.transform == "scipy":
            from scipy.signal import spectrogram

            _, _, s = spectrogram(x.astype(np.float64), self.sample_rate, nperseg=self.n_fft,
                                  noverlap=self.n_fft - self.hop)
            spec = torch.from_numpy(np.log(s + self.log_eps).astype(np.float32))
        elif self.transform == "fbank":
            from torchaudio.compliance import kaldi

            spec = kaldi.fbank(torch.from_numpy(x)[None], htk_compat=True, sample_frequency=self.sample_rate,
                               use_energy=False, window_type="hanning", num_mel_bins=self.num_mel_bins, dither=0.0,
                               frame_shift=10)
            if self.frames is not None:
                spec = torch.nn.functional.pad(spec, (0, 0, 0, max(0, self.frames - len(spec))))[:self.frames]
            spec = (spec - self.norm_mean) / (2 * self.norm_std)
        else:
            raise ValueError(f"unknown transform {self.transform!r}; choose 'stft', 'scipy' or 'fbank'")
        if self.zscore:
            spec = (spec - spec.mean()) / (spec.std(unbiased=False) + 1e-9)
        return spec.float().unsqueeze(0)


RECIPES: dict[str, SpectrogramRecipe] = {
    "cremad": SpectrogramRecipe("cremad", 22_050, 66_150, "stft", 512, 353,
                                source="OGM-GE dataset/CramedDataset.py"),
    "ave": SpectrogramRecipe("ave", 22_050, 160_000, "scipy", 512, 512 - 353, clip=False, zscore=True,
                             source="OGM-GE pre-processing/AVE (asserts 257 x 1004)"),
    "kinetics_sounds": SpectrogramRecipe("kinetics_sounds", 16_000, None, "fbank", clip=False, demean=True,
                                         frames=1024, norm_mean=-4.503877, norm_std=5.141276,
                                         source="OGM-GE data/KineticSound/process_audio.py (AST fbank)"),
    "vggsound": SpectrogramRecipe("vggsound", 16_000, 80_000, "stft", 256, 128, tile_to=160_000, crop="random",
                                  source="OGM-GE dataset/VGGSoundDataset.py"),
    "ucf101": SpectrogramRecipe("ucf101", 16_000, 48_000, "stft", 512, 353,
                                source="MLB datasets/UCF/Preprocessing.py (num_frame 4: 3 s of audio)"),
}


def get_recipe(recipe: str | SpectrogramRecipe) -> SpectrogramRecipe:
    if isinstance(recipe, SpectrogramRecipe):
        return recipe
    if recipe not in RECIPES:
        raise ValueError(f"unknown spectrogram recipe {recipe!r}; choose one of {sorted(RECIPES)}")
    return RECIPES[recipe]
