"""Zorro: the attention mask, the streams' independence, the contrastive loss, and the model in the Trainer."""
import math

import pytest
import torch

from avlab.methods.zorro_contrastive import ZorroContrastive, info_nce, retrieval_accuracy
from avlab.models.zorro import AVTransformer, build_transformer, full_mask, zorro_mask
from avlab.train import Trainer, TrainConfig, evaluate


def inputs(batch=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 1, 32, 32, generator=g), torch.randn(batch, 1, 4, 32, 32, generator=g)


def model(zorro=True, seed=0, **kwargs):
    torch.manual_seed(seed)
    return AVTransformer(10, zorro=zorro, fusion_tokens=3, **kwargs)


def test_mask_equals_the_table_of_methods_md():
    # shared/research/methods.md §5.1: rows are queries, columns keys, sequence [audio | video | fusion]
    #                keys: audio  video  fusion
    expected = torch.tensor([[1, 1, 0, 0, 0],   # audio query
                             [1, 1, 0, 0, 0],   # audio query
                             [0, 0, 1, 1, 0],   # video query
                             [0, 0, 1, 1, 0],   # video query
                             [1, 1, 1, 1, 1]],  # fusion query
                            dtype=torch.bool)
    assert torch.equal(zorro_mask(2, 2, 1), expected)
    assert torch.equal(full_mask(2, 2, 1), torch.ones(5, 5, dtype=torch.bool))
    # a missing modality is a zero-sized block; the others keep their pattern
    assert torch.equal(zorro_mask(0, 2, 1), expected[2:, 2:])
    assert torch.equal(zorro_mask(2, 0, 1), expected[[0, 1, 4]][:, [0, 1, 4]])


def test_patches_are_cut_in_grid_order():
    net = model()
    a, v = inputs(2)
    audio_patches, video_patches = net.audio.patchify(a), net.visual.patchify(v)
    assert audio_patches.shape == (2, 16, 64) and video_patches.shape == (2, 32, 128)
    # audio token 5 = row 1, column 1 of the 4x4 grid of 8x8 patches
    assert torch.equal(audio_patches[:, 5], a[:, :, 8:16, 8:16].reshape(2, -1))
    # video token 16 + 4 + 3 = time block 1, row 1, column 3 of the 2x4x4 grid of 2x8x8 tubelets
    assert torch.equal(video_patches[:, 23], v[:, :, 2:4, 8:16, 24:32].reshape(2, -1))


@pytest.mark.parametrize("train_mode", [False, True])
def test_video_perturbation_leaves_the_audio_stream_bit_identical(train_mode):
    net = model().train(train_mode)
    a, v = inputs()
    with torch.no_grad():
        out, perturbed = net(audio=a, visual=v), net(audio=a, visual=v + 3 * torch.randn_like(v))
    assert torch.equal(out["features"]["audio"], perturbed["features"]["audio"])
    assert torch.equal(out["audio"], perturbed["audio"])
    assert torch.equal(out["embeddings"]["audio"], perturbed["embeddings"]["audio"])
    assert not torch.allclose(out["visual"], perturbed["visual"])  # the perturbation did reach the video stream
    assert not torch.allclose(out["logits"], perturbed["logits"])  # and the fusion tokens


@pytest.mark.parametrize("train_mode", [False, True])
def test_audio_perturbation_leaves_the_video_stream_bit_identical(train_mode):
    net = model().train(train_mode)
    a, v = inputs()
    with torch.no_grad():
        out, perturbed = net(audio=a, visual=v), net(audio=a + 3 * torch.randn_like(a), visual=v)
    assert torch.equal(out["features"]["visual"], perturbed["features"]["visual"])
    assert torch.equal(out["visual"], perturbed["visual"])
    assert torch.equal(out["embeddings"]["visual"], perturbed["embeddings"]["visual"])
    assert not torch.allclose(out["audio"], perturbed["audio"])


def test_without_the_mask_the_audio_output_reads_the_video():
    net = model(zorro=False).eval()
    a, v = inputs()
    with torch.no_grad():
        out, perturbed = net(audio=a, visual=v), net(audio=a, visual=v + 3 * torch.randn_like(v))
        alone = net(audio=a)
    assert not torch.allclose(out["features"]["audio"], perturbed["features"]["audio"])
    assert not torch.allclose(out["audio"], alone["audio"])


def test_uni_modal_inference_drops_the_other_modality():
    net = model().eval()
    a, v = inputs()
    with torch.no_grad():
        both, audio_only, video_only = net(audio=a, visual=v), net(audio=a), net(visual=v)
    assert audio_only["visual"] is None and video_only["audio"] is None
    assert set(audio_only["features"]) == {"audio"}
    # same values; the sequence is shorter, so allow the last bit of rounding a differently sized matmul may give
    torch.testing.assert_close(audio_only["audio"], both["audio"], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(video_only["visual"], both["visual"], rtol=1e-5, atol=1e-6)
    assert both["split"] is None and both["logits"].shape == (4, 10) and both["fusion"].shape == (4, 64)
    with pytest.raises(ValueError, match="at least one"):
        net()


def test_info_nce_matches_a_hand_computation():
    a = torch.tensor([[2.0, 0.0], [0.0, 1.0]])  # normalised: [1, 0], [0, 1]
    v = torch.tensor([[0.6, 0.8], [0.0, 3.0]])  # normalised: [0.6, 0.8], [0, 1]
    # similarities / t with t = 1: S = [[0.6, 0.0], [0.8, 1.0]]
    audio_to_video = ((-0.6 + math.log(math.exp(0.6) + math.exp(0.0)))      # row 0, own pair 0
                      + (-1.0 + math.log(math.exp(0.8) + math.exp(1.0)))) / 2  # row 1, own pair 1
    video_to_audio = ((-0.6 + math.log(math.exp(0.6) + math.exp(0.8)))      # column 0
                      + (-1.0 + math.log(math.exp(0.0) + math.exp(1.0)))) / 2  # column 1
    expected = 0.5 * (audio_to_video + video_to_audio)
    assert info_nce(a, v, temperature=1.0).item() == pytest.approx(expected, rel=1e-6)
    # the temperature divides the similarities: identical pairs at t = 0.5 give log(1 + e^-2) each way
    eye = torch.eye(2)
    assert info_nce(eye, eye, temperature=0.5).item() == pytest.approx(math.log(1 + math.exp(-2)), rel=1e-6)
    assert retrieval_accuracy(a, v).item() == 1.0  # row 0: 0.6 > 0.0, row 1: 1.0 > 0.8
    assert retrieval_accuracy(a, v.flip(0)).item() == 0.0
    assert retrieval_accuracy(torch.tensor([[1.0, 0.0], [1.0, 0.0]]), v).item() == 0.5  # both rows pick column 0


def test_class_retrieval_counts_a_neighbour_of_the_same_class():
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.1]])
    v = torch.tensor([[0.0, 1.0], [1.0, 0.0], [0.0, 2.0]])
    # nearest video by cosine: row 0 -> 1, row 1 -> 0 (ties with 2 resolve to the first), row 2 -> 1
    assert retrieval_accuracy(a, v).item() == 0.0  # no row finds its own pair
    labels = torch.tensor([3, 3, 5])
    assert retrieval_accuracy(a, v, labels).item() == pytest.approx(2 / 3)  # rows 0, 1: label 3 = 3; row 2: 3 != 5
    with pytest.raises(ValueError, match="labels must have shape"):
        retrieval_accuracy(a, v, labels[:2])
    with pytest.raises(ValueError, match="same shape"):
        retrieval_accuracy(a, v[:2])


def test_detached_heads_leave_the_transformer_to_the_method():
    net = model()
    net.detach_heads = True
    a, v = inputs()
    out = net(audio=a, visual=v)
    (out["logits"].sum() + out["audio"].sum() + out["visual"].sum()).backward()
    assert all(p.grad is None for p in net.blocks.parameters())
    net.zero_grad()
    info_nce(*net(audio=a, visual=v)["embeddings"].values()).backward()
    assert net.blocks[0].attn.qkv.weight.grad.abs().sum() > 0
    assert net.heads["fusion"].weight.grad is None


def test_encoder_view_has_the_modality_parameters_and_reads_the_stream():
    net = model().eval()
    names = {n for n, _ in net.encoder("visual").named_parameters()}
    assert names == {"tokenizer.proj.weight", "tokenizer.proj.bias", "tokenizer.pos", "tokenizer.modality_embedding"}
    a, v = inputs()
    with torch.no_grad():
        torch.testing.assert_close(net.encoder("audio")(a), net(audio=a, visual=v)["features"]["audio"],
                                   rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="unknown modality"):
        net.encoder("text")


def test_trains_in_the_trainer_supervised_and_contrastive(tiny_splits):
    torch.manual_seed(0)
    net = build_transformer(tiny_splits["train"], depth=1)
    net.detach_heads = True  # contrastive pre-training: the heads are online probes
    run = Trainer(net, TrainConfig(epochs=1, batch_size=32, seed=0, progress=False),
                  ZorroContrastive(weight=1.0, temperature=0.1)).fit(tiny_splits["train"], tiny_splits["val"])
    h = run.history[-1]
    assert {"loss_contrastive", "contrastive_retrieval", "loss_head_audio", "grad_norm_visual"} <= set(h)
    assert 0 < h["loss_contrastive"] < 10 and 0 <= h["contrastive_retrieval"] <= 1
    net.detach_heads = False  # supervised fine-tuning, audio only
    Trainer(net, TrainConfig(epochs=1, batch_size=32, seed=0, modalities=("audio",), progress=False)).fit(
        tiny_splits["train"])
    result = evaluate(net, tiny_splits["test"], ("audio",))
    assert set(result) == {"acc", "loss", "acc_audio"}
    with pytest.raises(ValueError, match="both modalities"):
        Trainer(net, TrainConfig(epochs=1, modalities=("audio",), progress=False), ZorroContrastive())


def test_a_batch_of_one_trains_without_embeddings():
    net = model().train()
    a, v = inputs(1)
    out = net(audio=a, visual=v)
    assert out["embeddings"] == {} and out["logits"].shape == (1, 10)
    assert set(net.eval()(audio=a, visual=v)["embeddings"]) == {"audio", "visual"}
