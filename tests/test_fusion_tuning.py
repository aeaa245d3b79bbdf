"""Chapter 05: Fusion Tuning's stage-1 confidence recorder, the mask rule, patch masking and the stage-2 plug-in."""
import math

import pytest
import torch

from avlab.experiment import train_model
from avlab.methods.fusion_tuning import ConfidenceRecorder, FusionTuning, fusion_tuning_ratios, mask_patches

# (c_a, c_v) hand-made stage-1 confidences; threshold 0.5, eta 5 for both, rho_audio 0.5, rho_visual 0.8
C_A = [0.9, 0.6, 0.9, 0.3, 0.7, 0.55]
C_V = [0.6, 0.9, 0.3, 0.2, 0.5, 0.5]
SETTINGS = dict(threshold=0.5, eta_audio=5.0, eta_visual=5.0, rho_audio=0.5, rho_visual=0.8)
T15, T10, T025 = math.tanh(1.5), math.tanh(1.0), math.tanh(0.25)  # 0.905148, 0.761594, 0.244919


def test_mask_rule_as_released_on_hand_made_confidences():
    ratio_a, ratio_v = fusion_tuning_ratios(C_A, C_V, rule="as_released", **SETTINGS)
    expected_a = [
        0.5 * T15,  # c_v = 0.6 >= 0.5: 0.5 * tanh(5 * (0.9 - 0.6)) = 0.5 * tanh(1.5) = 0.452574
        0.0,        # c_v = 0.9 >= 0.5 but audio less confident: 0.5 * tanh(5 * -0.3) < 0 -> no mask
        0.0,        # c_v = 0.3 < 0.5: first branch not taken
        0.0,        # neither confident
        0.5 * T10,  # c_v = 0.5 = threshold counts (>=): 0.5 * tanh(5 * 0.2) = 0.5 * tanh(1) = 0.380797
        0.5 * T025,  # 0.5 * tanh(5 * 0.05) = 0.5 * tanh(0.25) = 0.122459
    ]
    torch.testing.assert_close(ratio_a, torch.tensor(expected_a))
    # as released the visual is never masked: sample 2 (c_a 0.9 >= 0.5, c_v 0.3) reaches the elif, where
    # 0.8 * tanh(5 * (0.3 - 0.9)) < 0; sample 1 (c_v 0.9 > c_a 0.6) never reaches it (c_v >= threshold)
    torch.testing.assert_close(ratio_v, torch.zeros(6))


def test_mask_rule_symmetric_masks_the_more_confident_modality():
    ratio_a, ratio_v = fusion_tuning_ratios(C_A, C_V, rule="symmetric", **SETTINGS)
    torch.testing.assert_close(ratio_a, torch.tensor([0.5 * T15, 0, 0, 0, 0.5 * T10, 0.5 * T025]))
    # sample 1: c_a = 0.6 >= 0.5 and c_v = 0.9 > c_a: 0.8 * tanh(5 * 0.3) = 0.8 * 0.905148 = 0.724119
    torch.testing.assert_close(ratio_v, torch.tensor([0, 0.8 * T15, 0, 0, 0, 0]))
    assert not torch.any((ratio_a > 0) & (ratio_v > 0))  # never both on one sample


def test_mask_rule_mean_mode_and_bad_arguments():
    ratio_a, ratio_v = fusion_tuning_ratios(C_A, C_V, rule="as_released", ratio_mode="mean", **SETTINGS)
    mean_a = (0.5 * T15 + 0.5 * T10 + 0.5 * T025) / 6  # (0.452574 + 0.380797 + 0.122459) / 6 = 0.159305
    torch.testing.assert_close(ratio_a, torch.full((6,), mean_a))
    torch.testing.assert_close(ratio_v, torch.zeros(6))
    ratio_a, _ = fusion_tuning_ratios([float("nan"), 0.9], [0.9, 0.6], **SETTINGS)  # never seen: no mask
    assert ratio_a[0] == 0 and ratio_a[1] > 0
    with pytest.raises(ValueError, match="rule"):
        fusion_tuning_ratios(C_A, C_V, rule="both")
    with pytest.raises(ValueError, match="ratio_mode"):
        fusion_tuning_ratios(C_A, C_V, ratio_mode="median")


def test_shuffled_mode_is_a_random_mask_at_the_rules_rate():
    # the random-mask control: the rule's ratios dealt to the samples by one permutation
    rule_a, rule_v = fusion_tuning_ratios(C_A, C_V, rule="symmetric", **SETTINGS)
    order = torch.randperm(6, generator=torch.Generator().manual_seed(3))
    ratio_a, ratio_v = fusion_tuning_ratios(C_A, C_V, rule="symmetric", ratio_mode="shuffled",
                                            generator=torch.Generator().manual_seed(3), **SETTINGS)
    torch.testing.assert_close(ratio_a, rule_a[order])  # the same permutation for both modalities:
    torch.testing.assert_close(ratio_v, rule_v[order])  # still never both on one sample
    assert not torch.any((ratio_a > 0) & (ratio_v > 0))
    # the same ratios (so the same number of masked samples and the same mean ratio), on other samples
    torch.testing.assert_close(ratio_a.sort().values, rule_a.sort().values)
    assert not torch.equal(order, torch.arange(6)) and not torch.equal(ratio_a, rule_a)
    # FusionTuning draws the permutation from its seed: reproducible, and another seed deals differently
    one, same, other = (FusionTuning(C_A, C_V, ratio_mode="shuffled", seed=s, rule="symmetric", **SETTINGS)
                        for s in (3, 3, 4))
    torch.testing.assert_close(one.ratio_audio, ratio_a)
    torch.testing.assert_close(one.ratio_audio, same.ratio_audio)
    assert not torch.equal(one.ratio_audio, other.ratio_audio)
    assert one.masked_audio == pytest.approx(3 / 6) and one.masked_visual == pytest.approx(1 / 6)


def test_mask_patches_zeroes_int_n_times_ratio_patches():
    x = torch.ones(3, 1, 8, 8)  # 4 patches of 4x4
    out = mask_patches(x, torch.tensor([0.5, 0.3, 0.0]), (4, 4), torch.Generator().manual_seed(0))
    # int(4 * 0.5) = 2 patches = 32 pixels; int(4 * 0.3) = 1 patch = 16 pixels; none
    assert [(out[i] == 0).sum().item() for i in range(3)] == [32, 16, 0]
    assert torch.equal(x, torch.ones(3, 1, 8, 8))  # the input is left untouched
    zeros = (out[0, 0] == 0).reshape(2, 4, 2, 4).all(3).all(1)  # whole patches, not scattered pixels
    assert zeros.sum() == 2
    # a spectrogram with 2 channels: both channels share the patches
    two = mask_patches(torch.ones(1, 2, 8, 8), torch.tensor([0.5]), (4, 4), torch.Generator().manual_seed(1))
    assert torch.equal(two[0, 0], two[0, 1])
    # a clip: every frame has its own int(4 * 0.75) = 3 masked patches
    clip = mask_patches(torch.ones(2, 1, 3, 8, 8), torch.tensor([0.75, 0.0]), (4, 4),
                        torch.Generator().manual_seed(0))
    assert [(clip[0, :, t] == 0).sum().item() for t in range(3)] == [48, 48, 48] and (clip[1] == 0).sum() == 0
    # pixels outside the last whole patch are never masked: 10x10 with 4x4 patches -> an 8x8 maskable block
    edge = mask_patches(torch.ones(1, 1, 10, 10), torch.tensor([1.0]), (4, 4))
    assert (edge == 0).sum() == 64 and edge[0, 0, 8:].eq(1).all() and edge[0, 0, :, 8:].eq(1).all()


def test_confidence_recorder_means_over_epochs():
    rec = ConfidenceRecorder(num_samples=4)
    y = torch.tensor([0, 1])
    # epoch 1, samples 0 and 2: logits [ln 3, 0] -> softmax [0.75, 0.25]; true classes 0 and 1 -> 0.75, 0.25
    logits = torch.tensor([[math.log(3), 0.0], [math.log(3), 0.0]])
    logs = rec.after_backward({"logits": logits}, {"label": y, "index": torch.tensor([0, 2])}, None)
    assert logs["confidence"] == pytest.approx(0.5)
    # epoch 2, samples 2 and 0 (in that order): equal logits -> 0.5 each
    rec.after_backward({"logits": torch.zeros(2, 2)}, {"label": y, "index": torch.tensor([2, 0])}, None)
    mean = rec.mean_confidence()
    assert mean[0].item() == pytest.approx((0.75 + 0.5) / 2)  # 0.625
    assert mean[2].item() == pytest.approx((0.25 + 0.5) / 2)  # 0.375
    assert math.isnan(mean[1]) and math.isnan(mean[3])  # never seen
    copy = ConfidenceRecorder(4)
    copy.load_state_dict(rec.state_dict())
    torch.testing.assert_close(copy.mean_confidence(), mean, equal_nan=True)


def test_transform_batch_masks_only_the_chosen_samples_and_modality():
    n = 4
    # as released, threshold 0.5: sample 0 and 3 get audio masks (c_v >= 0.5, c_a > c_v), 1 and 2 none
    method = FusionTuning([0.99, 0.2, 0.9, 0.99], [0.6, 0.9, 0.1, 0.6], threshold=0.5, rho_audio=1.0,
                          eta_audio=100.0, seed=0)  # ratio ~ 1.0 * tanh(39) = 1: every patch
    assert method.masked_audio == pytest.approx(0.5) and method.masked_visual == 0.0
    method._generator.manual_seed(0)
    batch = {"audio": torch.ones(n, 1, 32, 32), "visual": torch.ones(n, 1, 4, 32, 32),
             "label": torch.zeros(n, dtype=torch.long), "index": torch.tensor([3, 1, 2, 0])}
    out = method.transform_batch(batch, None)
    # batch rows hold samples 3, 1, 2, 0: rows 0 and 3 fully masked (int(64 * 0.99999...) = 63 or 64 patches)
    zeros = [(out["audio"][i] == 0).float().mean().item() for i in range(n)]
    assert zeros[0] > 0.95 and zeros[3] > 0.95 and zeros[1] == 0 and zeros[2] == 0
    assert torch.equal(out["visual"], batch["visual"]) and torch.equal(batch["audio"], torch.ones(n, 1, 32, 32))


def test_two_stages_run_in_the_loop(tiny_splits):
    train = tiny_splits["train"]
    conf = {}
    for m in ("audio", "visual"):
        rec = ConfidenceRecorder(len(train))
        _, run = train_model(tiny_splits, rec, modalities=(m,), width=4, epochs=2, progress=False)
        c = rec.mean_confidence()
        seen = ~torch.isnan(c)
        assert seen.float().mean() > 0.9 and ((c[seen] >= 0) & (c[seen] <= 1)).all()
        assert "confidence" in run.history[-1]
        conf[m] = c
    method = FusionTuning(conf["audio"], conf["visual"], threshold=0.0, rule="symmetric")
    assert method.masked_audio + method.masked_visual > 0.5  # threshold 0: every seen sample masks one side
    _, run = train_model(tiny_splits, method, width=4, epochs=1, progress=False)
    assert run.history[-1]["mask_ratio_audio"] + run.history[-1]["mask_ratio_visual"] > 0
