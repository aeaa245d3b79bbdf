import numpy as np
import pytest
import torch

from avlab.data import PRESETS, DatasetCacheError, load_avdigits, make_config
from avlab.data import speech


def test_speech_synthesis_is_real_audio():
    voices = [speech.Voice("en-us+m3", 170, 50, 50), speech.Voice("en-gb-scotland+f2", 200, 70, 30)]
    waves = speech.synthesize(["seven", "two"], voices)
    assert [w.dtype for w in waves] == [np.float32, np.float32]
    for w in waves:
        assert 0.15 * 16000 < len(w) < 1.0 * 16000  # a single word, silence trimmed
        assert 0.01 < np.abs(w).max() <= 1.0
    assert not np.allclose(waves[0][:3000], waves[1][:3000])


def test_unknown_voice_is_named():
    with pytest.raises(speech.SpeechSynthesisError, match="no-such-voice"):
        speech.synthesize(["one"], [speech.Voice("no-such-voice", 170, 50, 50)])


def test_splits_shapes_and_balance(tiny_splits):
    train = tiny_splits["train"]
    item = train[0]
    assert item["audio"].shape == (1, 32, 32) and item["visual"].shape == (1, 4, 32, 32)
    assert item["audio"].dtype == torch.float32 and item["label"].dtype == torch.int64
    assert [len(tiny_splits[s]) for s in ("train", "val", "test")] == [200, 100, 100]
    assert torch.bincount(train.labels).tolist() == [20] * 10
    # standardised with the training statistics
    assert abs(train.audio.mean().item()) < 0.05 and abs(train.audio.std().item() - 1) < 0.05


def test_splits_are_disjoint_by_speaker_and_image(tiny_splits):
    speakers = {s: set(tiny_splits[s].meta["speaker"].tolist()) for s in tiny_splits}
    images = {s: set(tiny_splits[s].meta["image_idx"].tolist()) for s in tiny_splits}
    for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
        assert not speakers[a] & speakers[b]
        assert not images[a] & images[b]


def test_images_match_labels(tiny_splits):
    from sklearn.datasets import load_digits

    targets = load_digits().target
    for split in tiny_splits.values():
        assert (targets[split.meta["image_idx"]] == split.labels.numpy()).all()


def test_build_is_deterministic_and_cached(tmp_path, tiny_splits):
    again = load_avdigits("dominant_audio", cache_dir=tmp_path, n_train=200, n_val=100, n_test=100)
    for s in tiny_splits:
        assert torch.equal(again[s].visual, tiny_splits[s].visual)
        # audio is float16 in the cache: identical builds give identical arrays
        assert torch.equal(again[s].audio, tiny_splits[s].audio)
    assert len(list(tmp_path.glob("*.npz"))) == 1


def test_waveform_matches_features(tiny_splits):
    from avlab.data.avdigits import _log_mel

    train = tiny_splits["train"]
    wav = train.waveform(5)
    assert wav.shape == (16000,)
    mel = torch.from_numpy(_log_mel([wav], 32))[0]
    # same recipe, before standardisation: correlation with the stored features is ~1
    corr = np.corrcoef(mel.flatten().numpy(), train.audio[5].flatten().numpy())[0, 1]
    assert corr > 0.99


def test_coarse_audio_speaks_pairs(tmp_path):
    splits = load_avdigits("coarse_audio", cache_dir=tmp_path, n_train=40, n_val=20, n_test=20)
    meta = splits["train"].meta
    assert (meta["word"] == meta["label"] // 2 * 2).all()


def test_visual_noise_knob(tmp_path):
    quiet = load_avdigits("dominant_visual", cache_dir=tmp_path, n_train=40, n_val=20, n_test=20)["train"]
    assert quiet.visual.min() >= 0 and quiet.visual.max() <= 1  # vis_noise 0: clean digits
    assert quiet.visual.flatten(1).max(1).values.min() > 0.5  # a digit is on every clip


def test_unknown_preset_and_setting():
    with pytest.raises(ValueError, match="dominant_audio"):
        make_config("no_such_preset")
    with pytest.raises(TypeError, match="snr_db"):
        make_config("dominant_audio", snr=3)
    assert set(PRESETS) == {"dominant_audio", "complementary", "coarse_audio", "dominant_visual"}


def test_missing_cache_without_build(tmp_path):
    with pytest.raises(FileNotFoundError, match="build=True"):
        load_avdigits("dominant_audio", cache_dir=tmp_path, build=False, n_train=20, n_val=10, n_test=10)


def test_corrupt_cache_is_reported_and_rebuilt(tmp_path):
    kwargs = dict(cache_dir=tmp_path, n_train=20, n_val=10, n_test=10)
    load_avdigits("dominant_audio", **kwargs)
    (cache,) = tmp_path.glob("*.npz")
    cache.write_bytes(cache.read_bytes()[: cache.stat().st_size // 2])  # truncated, as after a crash
    with pytest.raises(DatasetCacheError, match=str(cache.name)):
        load_avdigits("dominant_audio", **kwargs)
    splits = load_avdigits("dominant_audio", rebuild=True, **kwargs)
    assert len(splits["train"]) == 20
