"""Real audio-visual datasets read from the common layout: CREMA-D, AVE, Kinetics-Sounds, VGGSound, UCF101.

    splits = load_real("cremad", "~/avdata")          # {"train": CremaD, "test": CremaD} (+ "val" if there is one)
    splits["train"][0]   # {"audio": (1, 257, 188), "visual": (3, 1, 224, 224), "label": tensor(3), "index": 0}

Items are the dicts AV-Digits yields, so `avlab.train.Trainer` and `avlab.experiment.build_model` take them
unchanged. Per item:

* audio: the dataset's spectrogram recipe (`avlab.data.recipes`) on the clip's wav, computed on the fly;
* visual: `num_frames` of the clip's 1-fps frames, in time order: the frames are cut into `num_frames` equal
  segments and one is taken per segment, at random within it when training and in its middle at test (the
  GeWu-Lab convention); train: `RandomResizedCrop(image_size)` + horizontal flip, test: `Resize((s, s))`; both
  normalised with the ImageNet mean and std. One crop per clip (the authors' code draws one per frame).

Frames per clip default to the papers' (CREMA-D 1 as in OGM-GE, BalanceBenchmark uses 2; AVE, Kinetics-Sounds,
VGGSound, UCF101: 3). `train=None` means "augment if the split is train". Randomness comes from torch's global
generator, which the Trainer seeds (and the DataLoader seeds per worker). A file that is missing or cannot be
decoded raises an error that names it.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from avlab.data.layout import Layout, read_wav
from avlab.data.recipes import SpectrogramRecipe, get_recipe

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def segment_indices(n_frames: int, num_segments: int, train: bool, generator: torch.Generator | None = None) -> list[int]:
    """One frame index per equal segment of [0, n_frames): random within the segment (train) or its middle
    (test). With fewer frames than segments, frames repeat. Indices are non-decreasing."""
    if n_frames < 1:
        raise ValueError("a clip needs at least one frame")
    edges = np.linspace(0, n_frames, num_segments + 1)
    out = []
    for i in range(num_segments):
        lo = min(int(edges[i]), n_frames - 1)
        hi = min(max(lo + 1, int(edges[i + 1])), n_frames)
        out.append(lo + int(torch.randint(hi - lo, (1,), generator=generator)) if train else (lo + hi - 1) // 2)
    return out


class ClipDataset(Dataset):
    """One split of a preprocessed dataset (`<root>/<name>/`, see `avlab.data.layout`)."""

    name = "clips"
    recipe_name = "cremad"
    default_frames = 3
    modalities = ("audio", "visual")

    def __init__(self, root: str | Path, split: str = "train", *, recipe: str | SpectrogramRecipe | None = None,
                 num_frames: int | None = None, image_size: int = 224, train: bool | None = None,
                 check_files: bool = True):
        root = Path(root).expanduser()
        folder = root if (root / "classes.txt").is_file() else root / self.name
        self.layout = Layout(folder)
        if not (folder / "classes.txt").is_file():
            raise FileNotFoundError(f"no preprocessed {self.name} dataset at {folder} (classes.txt is missing); run "
                                    f"`python -m avlab preprocess {self.name} --raw <download> --out {root}` first")
        self.split, self.train = split, (split == "train") if train is None else train
        self.recipe = get_recipe(recipe or self.recipe_name)
        self.num_frames, self.image_size = num_frames or self.default_frames, image_size
        self.classes = self.layout.read_classes()
        if not self.layout.split_path(split).is_file():
            raise FileNotFoundError(f"{self.name} has no {split!r} split at {self.layout.split_path(split)}; "
                                    f"its splits are {self.layout.splits()}")
        index = {c: i for i, c in enumerate(self.classes)}
        rows = self.layout.read_split(split)
        bad = [(clip, label) for clip, label in rows if label not in index]
        if bad:
            raise ValueError(f"{self.layout.split_path(split)} names classes that are not in {self.layout.classes_path}: "
                             f"{bad[:5]}{' ...' if len(bad) > 5 else ''} ({len(bad)} rows)")
        if not rows:
            raise ValueError(f"split file {self.layout.split_path(split)} lists no clip")
        self.clip_ids = [clip for clip, _ in rows]
        self.labels = torch.tensor([index[label] for _, label in rows], dtype=torch.int64)
        if check_files:
            self.check_files()

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def __len__(self) -> int:
        return len(self.clip_ids)

    def check_files(self) -> None:
        """Every clip of the split has its wav and its frames folder (raises naming the missing ones)."""
        missing = [str(p) for c in self.clip_ids
                   for p in (self.layout.audio_path(c), self.layout.frames_dir(c)) if not p.exists()]
        if missing:
            raise FileNotFoundError(f"{len(missing)} files of the {self.split} split of {self.layout.folder} are "
                                    f"missing: {missing[:5]}{' ...' if len(missing) > 5 else ''}; preprocess again "
                                    "(it resumes and lists what it cannot decode in failed.csv)")

    # ------------------------------------------------------------------ items
    def audio(self, i: int, generator: torch.Generator | None = None) -> torch.Tensor:
        path = self.layout.audio_path(self.clip_ids[i])
        samples, rate = read_wav(path)
        if generator is None and not self.train and not self.recipe.deterministic:
            generator = torch.Generator().manual_seed(i)  # repeatable "random" test crop (VGGSound)
        try:
            return self.recipe(samples, rate, generator)
        except Exception as err:
            raise ValueError(f"cannot compute the {self.recipe.name} spectrogram of {path}: {err}") from err

    def frames(self, i: int) -> torch.Tensor:
        """(T, 3, H, W) uint8: the sampled frames, before any transform."""
        from torchvision.io import ImageReadMode, decode_image, read_file

        paths = self.layout.frame_paths(self.clip_ids[i])
        if not paths:
            raise FileNotFoundError(f"frames folder {self.layout.frames_dir(self.clip_ids[i])} holds no jpg")
        images = []
        for j in segment_indices(len(paths), self.num_frames, self.train):
            try:
                images.append(decode_image(read_file(str(paths[j])), mode=ImageReadMode.RGB))
            except Exception as err:
                raise ValueError(f"frame {paths[j]} cannot be decoded ({err})") from err
        sizes = {tuple(im.shape) for im in images}
        if len(sizes) > 1:
            raise ValueError(f"frames of clip {self.clip_ids[i]} differ in size: {sorted(sizes)}")
        return torch.stack(images)

    def visual(self, i: int) -> torch.Tensor:
        """(3, T, H, W) float32, normalised."""
        from torchvision.transforms import v2

        x = self.frames(i)
        if self.train:
            x = v2.RandomResizedCrop(self.image_size, antialias=True)(x)
            if torch.rand(()) < 0.5:
                x = x.flip(-1)
        else:
            x = v2.functional.resize(x, [self.image_size, self.image_size], antialias=True)
        x = x.float().div_(255)
        mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
        return ((x - mean) / std).transpose(0, 1).contiguous()

    def __getitem__(self, i: int) -> dict:
        if not 0 <= i < len(self):
            raise IndexError(f"index {i} out of range for {len(self)} clips")
        return {"audio": self.audio(i), "visual": self.visual(i), "label": self.labels[i], "index": i}

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.split}, n={len(self)}, classes={self.num_classes}, "
                f"audio={(1, *self.recipe.shape)}, visual={(3, self.num_frames, self.image_size, self.image_size)}, "
                f"train={self.train}, folder={str(self.layout.folder)!r})")


class CremaD(ClipDataset):
    """CREMA-D, 6 emotions (NEU, HAP, SAD, FEA, DIS, ANG); audio 257 x 188; 1 frame (OGM-GE)."""
    name, recipe_name, default_frames = "cremad", "cremad", 1


class AVE(ClipDataset):
    """AVE, 28 events; audio 257 x 1004; 3 frames."""
    name, recipe_name, default_frames = "ave", "ave", 3


class KineticsSounds(ClipDataset):
    """Kinetics-Sounds (a Kinetics-400 class subset, 31 in OGM-GE); audio 1024 x 128 fbank; 3 frames."""
    name, recipe_name, default_frames = "kinetics_sounds", "kinetics_sounds", 3


class VGGSound(ClipDataset):
    """VGGSound, 309 classes; audio 129 x 626 (random 5-s crop); 3 frames."""
    name, recipe_name, default_frames = "vggsound", "vggsound", 3


class UCF101(ClipDataset):
    """UCF101, RGB + audio (the classes with sound, MLB's setting); audio 257 x 136; 3 frames (MLB keeps 4)."""
    name, recipe_name, default_frames = "ucf101", "ucf101", 3


REAL_DATASETS: dict[str, type[ClipDataset]] = {c.name: c for c in (CremaD, AVE, KineticsSounds, VGGSound, UCF101)}
ALIASES = {"crema-d": "cremad", "crema_d": "cremad", "ks": "kinetics_sounds", "kinetics-sounds": "kinetics_sounds",
           "vgg": "vggsound", "ucf": "ucf101"}


def load_real(name: str, root: str | Path, splits=None, **options) -> dict[str, ClipDataset]:
    """Every split (or those named) of a preprocessed real dataset; `options` go to the dataset class
    (`num_frames`, `image_size`, `recipe`, `check_files`)."""
    key = ALIASES.get(name.lower(), name.lower())
    if key not in REAL_DATASETS:
        raise ValueError(f"unknown real dataset {name!r}; choose one of {sorted(REAL_DATASETS)}")
    cls = REAL_DATASETS[key]
    root = Path(root).expanduser()
    folder = root if (root / "classes.txt").is_file() else root / cls.name
    names = splits or Layout(folder).splits()
    if not names:
        raise FileNotFoundError(f"no split files under {folder / 'splits'}; run `python -m avlab preprocess "
                                f"{cls.name} --raw <download> --out {root}` first")
    return {s: cls(root, s, **options) for s in names}
