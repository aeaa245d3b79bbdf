import pytest
import torch
import torchvision

from avlab.models import FUSIONS, AVClassifier, ResNet18, make_fusion


def test_resnet18_matches_torchvision_at_full_width():
    ours, theirs = ResNet18(3, 64), torchvision.models.resnet18()
    theirs_keys = {k for k in theirs.state_dict() if not k.startswith("fc.")}
    assert set(ours.state_dict()) == theirs_keys  # ImageNet weights load by name
    ours.load_state_dict({k: v for k, v in theirs.state_dict().items() if k in theirs_keys})
    ours.eval(), theirs.eval()
    x = torch.randn(2, 3, 64, 64)
    trunk = torch.nn.Sequential(*list(theirs.children())[:-2])
    torch.testing.assert_close(ours(x), trunk(x))


@pytest.mark.parametrize("fusion", sorted(FUSIONS))
def test_classifier_outputs_for_every_fusion(fusion):
    model = AVClassifier(10, fusion, width=4, visual_channels=1)
    a, v = torch.randn(3, 1, 32, 32), torch.randn(3, 1, 4, 32, 32)
    out = model(audio=a, visual=v)
    assert out["logits"].shape == out["audio"].shape == out["visual"].shape == (3, 10)
    assert out["features"]["audio"].shape == (3, 32)
    only_audio = model(audio=a)
    assert only_audio["visual"] is None and only_audio["logits"].shape == (3, 10)
    split = out["split"]
    if fusion in ("sum", "concat"):  # the split adds up to the fused logits
        torch.testing.assert_close(split[0] + split[1], out["logits"])
    else:
        assert split is None


def test_heads_are_probes_unless_told_otherwise():
    model = AVClassifier(10, "concat", width=4, visual_channels=1)
    a, v = torch.randn(3, 1, 32, 32), torch.randn(3, 1, 4, 32, 32)
    model(audio=a, visual=v)["audio"].sum().backward()
    assert all(p.grad is None for p in model.audio.parameters())  # head loss leaves the encoder alone
    model.zero_grad(), setattr(model, "detach_heads", False)
    model(audio=a, visual=v)["audio"].sum().backward()
    assert model.audio.backbone.conv1.weight.grad.abs().sum() > 0


def test_bad_shapes_and_names_are_explained():
    model = AVClassifier(10, "sum", width=4, visual_channels=1)
    with pytest.raises(ValueError, match=r"\(B, 1, T, H, W\).*\(3, 4, 32, 32\)"):
        model(visual=torch.randn(3, 4, 32, 32))
    with pytest.raises(ValueError, match="spectrogram"):
        model(audio=torch.randn(3, 32, 32))
    with pytest.raises(ValueError, match="at least one"):
        model()
    with pytest.raises(ValueError, match="differ in size"):
        model(audio=torch.randn(2, 1, 32, 32), visual=torch.randn(3, 1, 4, 32, 32))
    with pytest.raises(ValueError, match="concat"):
        make_fusion("attention", 8, 8, 10)
