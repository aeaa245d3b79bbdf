"""Chapter 04: ABRi, the dead-channel meter, cross-modal weight transfer and the shipped pre-trained checkpoint."""
import copy
import hashlib
import json

import pytest
import torch
import torchvision
from torch import nn

from avlab.methods.abri import ABRiBatchNorm2d, apply_abri, mixing_weights, reset_bn
from avlab.diagnostics.dead_channels import (activation_rates, bn_layers, bn_parameters, conv_feeding, dead_channel_rows,
                                 dead_fraction, effective_affine, filter_gradient_norms,
                                 silence_channels)
from avlab.models import AVClassifier, ResNet18
from avlab.weights.transfer import collapse_input_channels, load_resnet_weights, torchvision_resnet18_state_dict


def _pretrained_like(net: nn.Module, seed: int = 0) -> nn.Module:
    """Give every BN non-trivial gamma, beta and running statistics, as a pre-trained network has."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                c = m.num_features
                m.weight.copy_(torch.rand(c, generator=g) * 2 - 0.5)
                m.bias.copy_(torch.randn(c, generator=g) * 0.3)
                m.running_mean.copy_(torch.randn(c, generator=g) * 0.2)
                m.running_var.copy_(torch.rand(c, generator=g) + 0.5)
    return net


# ----------------------------------------------------------------------------- ABRi

@pytest.mark.parametrize("mode", ["layer", "channel"])
def test_abri_at_mixing_weight_one_is_the_original_network(mode):
    torch.manual_seed(0)
    original = _pretrained_like(ResNet18(1, 4))
    abri = apply_abri(copy.deepcopy(original), mode=mode, init=1.0)
    x = torch.randn(6, 1, 32, 32)
    original.eval(), abri.eval()  # running statistics
    torch.testing.assert_close(abri(x), original(x))
    original.train(), abri.train()  # batch statistics, and the same running-statistics update
    torch.testing.assert_close(abri(x), original(x))
    for (name, bn), (_, pair) in zip(bn_layers(original), bn_layers(abri)):
        assert isinstance(pair, ABRiBatchNorm2d), name
        torch.testing.assert_close(pair.pre.running_mean, bn.running_mean)
        torch.testing.assert_close(pair.pre.running_var, bn.running_var)
    original.eval(), abri.eval()
    torch.testing.assert_close(abri(x), original(x))


def test_abri_wraps_every_bn_with_a_fresh_twin_and_a_learnable_unclamped_weight():
    net = _pretrained_like(ResNet18(1, 4))
    n_bn = sum(isinstance(m, nn.BatchNorm2d) for m in net.modules())
    assert n_bn == 20  # stem + 2 per block x 8 blocks + 3 downsamples
    apply_abri(net, mode="channel")
    pairs = [m for m in net.modules() if isinstance(m, ABRiBatchNorm2d)]
    assert len(pairs) == n_bn and len(bn_layers(net)) == n_bn
    assert isinstance(net.layer2[0].downsample[1], ABRiBatchNorm2d)
    for p in pairs:
        assert p.mix.shape == (1, p.num_features, 1, 1) and torch.all(p.mix == 0.5)  # the authors' default
        assert torch.all(p.new.weight == 1) and torch.all(p.new.bias == 0)
        assert torch.all(p.new.running_mean == 0) and torch.all(p.new.running_var == 1)
    assert len(mixing_weights(net)) == n_bn
    names = [n for n, _ in net.named_parameters()]
    assert "layer1.0.bn1.mix" in names and "layer1.0.bn1.new.weight" in names
    with torch.no_grad():
        pairs[0].mix.fill_(1.7)  # nothing clamps w: the authors' code does not either
    net(torch.randn(2, 1, 32, 32)).sum().backward()
    assert pairs[0].mix.grad is not None and torch.allclose(pairs[0].mix, torch.tensor(1.7))
    with pytest.raises(ValueError, match="no BatchNorm2d"):
        apply_abri(net)
    with pytest.raises(ValueError, match="mode"):
        apply_abri(ResNet18(1, 4), mode="batch")


def test_abri_in_train_mode_is_one_bn_with_the_mixed_affine():
    torch.manual_seed(1)
    bn = _pretrained_like(nn.Sequential(nn.BatchNorm2d(5)))[0]
    pair = ABRiBatchNorm2d(copy.deepcopy(bn), mode="channel", init=0.3)
    gamma, beta = effective_affine(pair)
    torch.testing.assert_close(gamma, 0.3 * bn.weight.detach() + 0.7)  # w gamma_pre + (1 - w) * 1
    torch.testing.assert_close(beta, 0.3 * bn.bias.detach())  # w beta_pre + (1 - w) * 0
    single = nn.BatchNorm2d(5)
    with torch.no_grad():
        single.weight.copy_(gamma), single.bias.copy_(beta)
    x = torch.randn(8, 5, 3, 3) * 2 + 1
    torch.testing.assert_close(pair.train()(x), single.train()(x))


def test_reset_bn_baselines():
    net = _pretrained_like(ResNet18(1, 4))
    with torch.no_grad():
        net.bn1.weight[:2] = 0.0  # two exactly-dead channels
    assert reset_bn(net, max_abs_gamma=1e-6) == 2  # the authors' better_naive_bn_random
    assert net.bn1.weight[:2].tolist() == [1.0, 1.0] and net.bn1.bias[:2].tolist() == [0.0, 0.0]
    total = sum(m.num_features for m in net.modules() if isinstance(m, nn.BatchNorm2d))
    assert reset_bn(net) == total  # naive_bn_random
    assert all(torch.all(m.weight == 1) for m in net.modules() if isinstance(m, nn.BatchNorm2d))


# ----------------------------------------------------------------------------- the dead-channel meter

def _hand_built_bn() -> nn.Sequential:
    bn = nn.BatchNorm2d(3, eps=0.0).eval()  # running mean 0, var 1, eps 0: y = gamma * x + beta exactly
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([1.0, 0.0, 1.0]))
        bn.bias.copy_(torch.tensor([0.0, -0.5, -10.0]))
    return nn.Sequential(bn).eval()


def test_dead_channel_meter_on_a_hand_built_bn_layer():
    # 2 samples x 2 x 2 = 8 positions per channel
    c0 = [-1, 2, 0.005, 3, -2, 0.5, 0, 4]  # y = x: above eps = 0.01 at 2, 3, 0.5, 4 -> 4 / 8 = 0.5
    c1 = [5, 5, 5, 5, 5, 5, 5, 5]  # gamma 0, beta -0.5: y = -0.5 everywhere -> 0 / 8 = 0 (dead)
    c2 = [0, 11, 1, 2, 3, 4, 5, 6]  # y = x - 10: only 11 -> 1 / 8 = 0.125
    x = torch.tensor([c0, c1, c2]).reshape(3, 2, 2, 2).transpose(0, 1).contiguous()  # (N=2, C=3, 2, 2)
    net = _hand_built_bn()
    rates = activation_rates(net, x, eps=0.01)
    assert list(rates) == ["0"]
    torch.testing.assert_close(rates["0"], torch.tensor([0.5, 0.0, 0.125]))
    # a channel is dead when active on fewer than `threshold` of its positions
    assert dead_fraction(rates, 0.01)["0"] == pytest.approx(1 / 3)  # channel 1
    assert dead_fraction(rates, 0.2)["0"] == pytest.approx(2 / 3)  # channels 1 and 2
    assert dead_fraction(rates, 0.6)["all"] == pytest.approx(1.0)  # all three
    rows = dead_channel_rows(rates, 0.2, run="hand")
    assert rows == [{"run": "hand", "layer": "0", "stage": "stem", "channels": 3, "dead": 2,
                     "dead_fraction": pytest.approx(2 / 3)}]
    # in batches of one sample the counts add up to the same rates
    torch.testing.assert_close(activation_rates(net, x, eps=0.01, batch_size=1)["0"], rates["0"])
    params = bn_parameters(net)
    assert [(r["abs_gamma"], r["abs_beta"]) for r in params] == [(1.0, 0.0), (0.0, 0.5), (1.0, 10.0)]


def test_meter_with_batch_statistics_leaves_the_network_untouched():
    net = _hand_built_bn()
    net[0].eps = 1e-5
    before = {k: v.clone() for k, v in net.state_dict().items()}
    x = torch.randn(4, 3, 2, 2, generator=torch.Generator().manual_seed(0)) + 3.0
    rates = activation_rates(net, x, eps=0.01, batch_stats=True)
    # batch statistics: channel 0 is standardised (about half its positions above 0.01); channel 1 still dead
    assert 0.2 < rates["0"][0] < 0.8 and rates["0"][1] == 0
    assert not net.training
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_meter_reads_an_abri_pair_as_one_layer():
    net = apply_abri(_hand_built_bn(), "layer", init=0.5)
    assert [n for n, _ in bn_layers(net)] == ["0"]
    gamma, beta = effective_affine(net[0])
    torch.testing.assert_close(gamma, torch.tensor([1.0, 0.5, 1.0]))  # 0.5 * [1, 0, 1] + 0.5 * 1
    torch.testing.assert_close(beta, torch.tensor([0.0, -0.25, -5.0]))  # 0.5 * [0, -0.5, -10] + 0.5 * 0
    x = torch.full((2, 3, 2, 2), 5.0)
    # eval, both BNs eps 0: 0.5 * (gamma_pre * 5 + beta_pre) + 0.5 * 5 = [5, 2.25, 0]; 0 is not above eps
    rates = activation_rates(net, x, eps=0.01)
    torch.testing.assert_close(rates["0"], torch.tensor([1.0, 1.0, 0.0]))


def test_conv_feeding_names():
    assert conv_feeding("bn1") == "conv1"
    assert conv_feeding("backbone.layer1.0.bn2") == "backbone.layer1.0.conv2"
    assert conv_feeding("layer2.0.downsample.1") == "layer2.0.downsample.0"
    names = dict(ResNet18(1, 4).named_modules())
    assert all(conv_feeding(n) in names for n, _ in bn_layers(ResNet18(1, 4)))


def test_a_dead_channel_passes_no_gradient_to_its_filter(tiny_splits):
    torch.manual_seed(0)
    model = AVClassifier(10, "concat", width=4, visual_channels=1)
    with torch.no_grad():  # channel 0 of the first block's first BN: gamma 0, beta -1 -> ReLU output 0
        model.audio.backbone.layer1[0].bn1.weight[0] = 0.0
        model.audio.backbone.layer1[0].bn1.bias[0] = -1.0
    norms = filter_gradient_norms(model, tiny_splits["train"], "audio", batches=2)
    dead = norms["backbone.layer1.0.bn1"]
    assert dead[0] == 0 and torch.all(dead[1:] > 0)
    assert all(p.grad is None for p in model.parameters())  # measured on a copy


# ----------------------------------------------------------------------------- weight transfer

def test_collapse_input_channels():
    w = torch.arange(2 * 3 * 1 * 1, dtype=torch.float32).reshape(2, 3, 1, 1)  # filters [0,1,2] and [3,4,5]
    assert collapse_input_channels(w, 1, "sum").flatten().tolist() == [3.0, 12.0]
    assert collapse_input_channels(w, 1, "mean").flatten().tolist() == [1.0, 4.0]
    mono = w[:, :1]
    assert torch.equal(collapse_input_channels(mono, 1), mono)  # AV-Digits: 1-channel frames -> identity
    assert torch.equal(collapse_input_channels(w, 3), w)
    with pytest.raises(ValueError, match="cannot map"):
        collapse_input_channels(w, 2)


def test_torchvision_weights_load_into_the_audio_resnet(tmp_path):
    torch.manual_seed(0)
    theirs = torchvision.models.resnet18()
    _pretrained_like(theirs)
    path = tmp_path / "resnet18_imagenet_like.pth"
    torch.save(theirs.state_dict(), path)
    state = torchvision_resnet18_state_dict(path)  # a saved file: no download

    audio = ResNet18(1, 64)
    report = load_resnet_weights(audio, state, input_mode="sum")
    expected = {k for k in state if not k.startswith("fc.")}
    assert set(report["loaded"]) == expected  # every pre-trained tensor arrived ...
    assert set(audio.state_dict()) == expected  # ... and every tensor of the network was filled
    assert report["ignored"] == ["fc.bias", "fc.weight"] and report["conv1"] == (3, 1)
    mine = audio.state_dict()
    for k in expected - {"conv1.weight"}:
        assert torch.equal(mine[k], state[k]), k
    torch.testing.assert_close(mine["conv1.weight"], state["conv1.weight"].sum(1, keepdim=True))
    # the summed kernel answers a mono input as the RGB network answers the same grey image
    grey = torch.randn(2, 1, 64, 64)
    audio.eval(), theirs.eval()
    trunk = nn.Sequential(*list(theirs.children())[:-2])
    torch.testing.assert_close(audio(grey), trunk(grey.expand(-1, 3, -1, -1)), rtol=1e-4, atol=1e-4)

    with pytest.raises(ValueError, match="width"):
        load_resnet_weights(ResNet18(1, 32), state)
    with pytest.raises(ValueError, match="ABRi"):
        load_resnet_weights(apply_abri(ResNet18(1, 64)), state)
    with pytest.raises(ValueError, match="unused"):
        load_resnet_weights(ResNet18(1, 64), {**state, "layer5.weight": torch.zeros(1)})


def test_cross_modal_init_with_a_prefixed_state_dict():
    visual = AVClassifier(10, "concat", width=4, visual_channels=1)
    audio = AVClassifier(10, "concat", width=4, visual_channels=1)
    report = load_resnet_weights(audio.audio.backbone, visual.state_dict(), source_prefix="visual.backbone.",
                                 ignore_prefixes=())
    assert report["conv1"] == (1, 1)
    for k, v in visual.visual.backbone.state_dict().items():
        assert torch.equal(audio.audio.backbone.state_dict()[k], v)


# ----------------------------------------------------------------------------- the shipped checkpoint

def test_shipped_pretrained_checkpoint_has_small_bn_channels():
    from avlab.weights.pretrain import CHECKPOINT, SHIPPED, pretrained_visual_state

    folder = SHIPPED  # package data: present in a checkout and in the wheel alike
    provenance = json.loads((folder / CHECKPOINT.replace(".pt", ".json")).read_text())
    assert provenance["sha256"] == hashlib.sha256((folder / CHECKPOINT).read_bytes()).hexdigest()
    state = pretrained_visual_state(build=False)
    net = ResNet18(1, 8)
    report = load_resnet_weights(net, state)
    assert len(report["loaded"]) == len(state) and all(v.dtype != torch.float16 for v in net.state_dict().values())
    small = [r["abs_gamma"] < 0.05 and r["abs_beta"] < 0.05 for r in bn_parameters(net)]
    assert sum(small) / len(small) == pytest.approx(provenance["fraction_bn_channels_gamma_and_beta_below_0.05"],
                                                    abs=0.01)
    assert sum(small) / len(small) > 0.1


def test_gamma_l1_pretraining_loss(tiny_splits):
    from avlab.experiment import train_model
    from avlab.weights.pretrain import GammaL1

    _, run = train_model(tiny_splits, GammaL1(1e-2), modalities=("visual",), width=4, epochs=1, progress=False)
    # 20 BN layers of a width-4 ResNet-18 hold 300 channels with gamma = 1 at init: 1e-2 * 300 = 3
    assert 2.5 < run.history[0]["loss_gamma_l1"] <= 3.0


def test_silence_channels_doses_the_smallest_gamma_channels():
    bn = nn.BatchNorm2d(4)
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([0.5, 0.01, 0.2, 1.0]))
        bn.bias.copy_(torch.tensor([0.3, 0.02, -0.4, 0.1]))
    state = {f"bn.{k}": v for k, v in bn.state_dict().items()}
    # fraction 0.5 picks the 2 smallest |gamma|: channel 1 (already small: untouched) and channel 2 (x 0.01)
    out = silence_channels(state, 0.5)
    torch.testing.assert_close(out["bn.weight"], torch.tensor([0.5, 0.01, 0.002, 1.0]))
    torch.testing.assert_close(out["bn.bias"], torch.tensor([0.3, 0.02, -0.004, 0.1]))
    assert torch.equal(state["bn.weight"], bn.weight.detach())  # the input is left as it was
    assert torch.equal(silence_channels(state, 0.25)["bn.weight"], state["bn.weight"])  # only channel 1: small already
    assert (silence_channels(state, 1.0)["bn.weight"].abs() < 0.05).all()
    with pytest.raises(ValueError, match="fraction"):
        silence_channels(state, 1.5)
    with pytest.raises(ValueError, match="no BatchNorm"):
        silence_channels({"conv.weight": torch.zeros(1)}, 0.5)


# ----------------------------------------------------------------------------- the four starts, as a picklable build

def test_build_initialised_gives_each_start_and_trains_the_same_in_a_worker(tiny_splits, one_thread):
    """Chapter 04's four starts: random keeps the built weights, the other three load the pre-trained ResNet, ABRi
    wraps every BN, BN reset resets them all; and an ABRi start trained by a worker process (the build pickled)
    is the one the same job trains here."""
    import functools

    from avlab.experiment import build_model, train_many
    from avlab.methods.abri import INITS, build_initialised, initialise_encoder
    from avlab.utils import seed_everything

    torch.manual_seed(5)
    source = _pretrained_like(ResNet18(1, 4)).state_dict()
    train = tiny_splits["train"]
    built = {}
    for init in INITS:
        seed_everything(0)
        built[init] = build_initialised(train, init, source, width=4).audio.backbone
    seed_everything(0)
    plain = build_model(train, "concat", 4).audio.backbone
    assert torch.equal(built["random"].conv1.weight, plain.conv1.weight)
    for init in ("cross-modal", "ABRi", "BN reset"):
        assert torch.equal(built[init].conv1.weight, source["conv1.weight"])  # 1 input channel: loaded as is
    assert torch.equal(built["cross-modal"].bn1.weight, source["bn1.weight"])
    assert all(isinstance(m, ABRiBatchNorm2d) for _, m in bn_layers(built["ABRi"]))
    assert all((m.weight == 1).all() and (m.bias == 0).all() for m in built["BN reset"].modules()
               if isinstance(m, nn.BatchNorm2d))
    with pytest.raises(ValueError, match="unknown init 'abri'"):
        initialise_encoder(build_model(train, "concat", 4), "abri", source)
    with pytest.raises(ValueError, match="needs the pre-trained `state`"):
        initialise_encoder(build_model(train, "concat", 4), "ABRi", None)

    jobs = [dict(build=functools.partial(build_initialised, init="ABRi", state=source, width=4), seed=2,
                 modalities=("audio",), epochs=1, batch_size=64)]
    (in_worker, _), = train_many(tiny_splits, jobs, workers=2)
    (in_process, _), = train_many(tiny_splits, jobs, workers=0)
    assert torch.equal(torch.cat(list(mixing_weights(in_worker.audio).values())),
                       torch.cat(list(mixing_weights(in_process.audio).values())))
    assert not torch.equal(in_worker.audio.backbone.conv1.weight, torch.as_tensor(source["conv1.weight"]))
