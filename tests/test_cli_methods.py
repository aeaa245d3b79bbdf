"""Every method of the registry trains from the command line (parametrised over the registry: a method exported
by `avlab.methods` is tested here without an edit), compositions, the --init options, Fusion Tuning's two
stages, Zorro; and every user error is one `avlab:` line with exit code 2, found before any data is loaded."""
import json
import subprocess
import sys

import pytest
import torch

from avlab import cli

pytestmark = pytest.mark.usefixtures("one_thread")


def digits(cache, out, *extra):
    return ["train", "--data", "avdigits:dominant_audio", "--data-arg", "n_train=200", "--data-arg", "n_val=100",
            "--data-arg", "n_test=100", "--data-arg", f"cache_dir={cache}", "--width", "4", "--batch-size", "100",
            "--epochs", "1", "--device", "cpu", "--no-progress", "--no-test", "--out", str(out), *extra]


@pytest.fixture(scope="module")
def prepared(avdigits_cache, tmp_path_factory):
    """What the methods that need context read: a visual teacher (UMT) and the two stage-1 runs of Fusion
    Tuning, each trained from the command line (stage 1 is the confidence_recorder method)."""
    root = tmp_path_factory.mktemp("prepared")
    cli.run(digits(avdigits_cache, root / "teacher", "--modalities", "visual"))
    for m in ("audio", "visual"):
        cli.run(digits(avdigits_cache, root / f"s1-{m}", "--modalities", m, "--method", "confidence_recorder"))
    return root


def needs(name: str, root) -> list[str]:
    """The extra command-line arguments a method needs (context, or its model); none for most."""
    parts = name.split("+")
    extra = []
    if "umt" in parts:
        extra += ["--teachers", f"visual={root / 'teacher' / 'checkpoint.pt'}"]
    if "fusion_tuning" in parts:
        extra += ["--stage1", f"audio={root / 's1-audio'}", f"visual={root / 's1-visual'}"]
    if "zorro_contrastive" in parts:
        extra += ["--model", "zorro"]
    return extra


@pytest.mark.parametrize("name", sorted(cli.methods()))
def test_every_method_of_the_registry_trains_one_epoch_from_the_command_line(name, avdigits_cache, prepared, tmp_path):
    out = tmp_path / name
    row = cli.run(digits(avdigits_cache, out, "--method", name, *needs(name, prepared)))
    assert row["method"] == name and row["epochs"] == 1 and 0 <= row["val_acc"] <= 1
    record = json.loads((out / "record.json").read_text())
    assert record["method"]["name"] == name and torch.isfinite(torch.tensor(record["history"][0]["loss"]))


def test_a_composition_from_the_command_line_records_every_part(avdigits_cache, prepared, tmp_path):
    row = cli.run(digits(avdigits_cache, tmp_path / "c", "--method", "umt+mlb", "--method-arg", "weight=2",
                         "--method-arg", "mlb.alpha=0.5", *needs("umt", prepared)))
    assert row["method"] == "umt+mlb"
    record = json.loads((tmp_path / "c" / "record.json").read_text())
    parts = record["method"]["parts"]
    assert [p["name"] for p in parts] == ["umt", "mlb"] and parts[0]["weight"] == 2.0 and parts[1]["alpha"] == 0.5
    h = record["history"][0]
    assert h["loss_distill_visual"] > 0 and "mlb_k_audio" in h


def test_fusion_tuning_stage_one_saves_confidences_and_stage_two_reads_them(avdigits_cache, prepared, tmp_path):
    saved = torch.load(prepared / "s1-audio" / "confidences.pt", weights_only=False)
    assert saved["modality"] == "audio" and saved["confidence"].shape == (200,)
    assert float(saved["confidence"].nanmean()) > 0
    out = tmp_path / "ft"
    # learning rate 0 (SGD, no weight decay): what stage 2 ends with is what it started from
    cli.run(digits(avdigits_cache, out, "--method", "fusion_tuning", "--method-arg", "threshold=0.0",
                   "--method-arg", "rule=symmetric", "--optimizer", "sgd", "--lr", "0", "--weight-decay", "0",
                   *needs("fusion_tuning", prepared)))
    record = json.loads((out / "record.json").read_text())
    method = record["method"]
    assert method["threshold"] == 0.0 and method["masked_audio"] + method["masked_visual"] > 0
    assert record["history"][0]["mask_ratio_audio"] + record["history"][0]["mask_ratio_visual"] > 0
    stage2 = torch.load(out / "checkpoint.pt", weights_only=False)["model"]
    for m in ("audio", "visual"):  # each encoder starts from its stage-1 run
        stage1 = torch.load(prepared / f"s1-{m}" / "checkpoint.pt", weights_only=False)["model"]
        convs = [k for k in stage1 if k.startswith(f"{m}.") and "conv" in k]
        assert convs and all(torch.equal(stage1[k], stage2[k]) for k in convs)
    short = tmp_path / "short"
    short.mkdir()
    torch.save({"confidence": torch.rand(150), "modality": "audio"}, short / "confidences.pt")
    with pytest.raises(SystemExit, match="recorded on 150 training samples, this run trains on 200"):
        cli.run(digits(avdigits_cache, tmp_path / "x", "--method", "fusion_tuning", "--stage1", f"audio={short}",
                       f"visual={prepared / 's1-visual'}"))


@pytest.mark.parametrize("init", ["cross-modal", "abri", "bn-reset"])
def test_init_options_start_the_audio_encoder_from_the_pretrained_visual_network(init, avdigits_cache, tmp_path):
    args = digits(avdigits_cache, tmp_path / init, "--init", init, "--modalities", "audio")
    args[args.index("--width") + 1] = "8"  # the shipped checkpoint is the width-8 ResNet-18
    row = cli.run(args)
    assert row["init"] == init
    record = json.loads((tmp_path / init / "record.json").read_text())
    assert record["init"]["loaded"] > 0 and record["init"]["source"].endswith(".pt")
    if init == "abri":
        assert record["init"]["abri_mode"] == "layer"
    if init == "bn-reset":
        assert record["init"]["bn_channels_reset"] > 0


def test_zorro_is_a_model_option(avdigits_cache, tmp_path):
    for model, fusion in (("zorro", "zorro"), ("full_attention", "full-attention")):
        row = cli.run(digits(avdigits_cache, tmp_path / model, "--model", model, "--method", "joint"))
        record = json.loads((tmp_path / model / "record.json").read_text())
        assert record["model"]["class"] == "AVTransformer" and record["model"]["fusion"] == fusion
        assert row["fusion"] == fusion


def test_a_new_method_exported_by_avlab_methods_joins_the_registry_without_an_edit(avdigits_cache, tmp_path,
                                                                                   monkeypatch):
    import avlab.methods
    from avlab.methods.base import Method

    class ScaleVisual(Method):
        name = "scale_visual"

        def __init__(self, factor: float = 0.5, steps: int | None = None, label: str = "x"):
            self.factor, self.steps, self.label = factor, steps, label

        def after_backward(self, out, batch, trainer):
            for p in trainer.model.encoder("visual").parameters():
                p.grad.mul_(self.factor)
            return {"scaled": self.factor}

    monkeypatch.setattr(avlab.methods, "ScaleVisual", ScaleVisual, raising=False)
    monkeypatch.setattr(cli, "METHODS", {})
    assert "scale_visual" in cli.methods()
    row = cli.run(digits(avdigits_cache, tmp_path / "s", "--method", "scale_visual", "--method-arg", "factor=0.25",
                         "--method-arg", "steps=none"))
    assert row["method"] == "scale_visual"
    assert json.loads((tmp_path / "s" / "record.json").read_text())["history"][0]["scaled"] == 0.25
    with pytest.raises(SystemExit, match="steps takes an int or none, got '1.5'"):
        cli.run(digits(avdigits_cache, tmp_path / "s", "--method", "scale_visual", "--method-arg", "steps=1.5"))


def test_list_shows_every_method_with_its_options_one_line_each(capsys):
    cli.run(["list"])
    lines = capsys.readouterr().out.splitlines()
    for name in cli.methods():
        line = next(line for line in lines if line.split()[:1] == [name])
        assert "(" in line or "no options" in line
    assert any("alpha=0.8 (float)" in line and line.split()[0] == "ogm_ge" for line in lines)


# ----------------------------------------------------------------------------- user errors

USER_ERRORS = {  # arguments -> what the one line must say. --data cremad has no --root here: a method check
    # that ran after loading data would print the data error instead
    "bad type": (["--data", "cremad", "--method", "ogm_ge", "--method-arg", "alpha=abc"],
                 "avlab: --method-arg alpha=abc: alpha takes a float, got 'abc'"),
    "unknown option": (["--data", "cremad", "--method", "ogm_ge", "--method-arg", "alpah=0.5"],
                       "avlab: ogm_ge has no option 'alpah'; its options are alpha (float), start (int)"),
    "unknown method": (["--data", "cremad", "--method", "ogm-ge"], "avlab: unknown method 'ogm-ge'; choose one of"),
    "conflicting composition": (["--data", "cremad", "--method", "ogm_ge+mlb"],
                                "avlab: --method ogm_ge+mlb: ogm_ge and mlb cannot be composed: both claim "
                                "grad:audio, grad:visual"),
    "ambiguous option": (["--data", "cremad", "--method", "ogm_ge+multiloss", "--method-arg", "alpha=1"],
                         "avlab: --method-arg alpha: ogm_ge and multiloss both take 'alpha'; write ogm_ge.alpha="),
    "unknown dataset": (["--data", "audioset"], "avlab: --data audioset: unknown dataset; choose avdigits"),
    "missing --root": (["--data", "cremad"], "avlab: --data cremad: no preprocessed cremad under $AVLAB_DATA"),
    "missing teachers": (["--data", "cremad", "--method", "umt"], "avlab: UMT distils uni-modal teachers"),
    "zorro loss on a CNN": (["--data", "cremad", "--method", "zorro_contrastive"],
                            "avlab: zorro_contrastive needs --model zorro"),
    "init at another width": (["--data", "cremad", "--init", "abri", "--width", "4"],
                              "avlab: --init abri loads the shipped width-8 ResNet-18: use --width 8"),
}


@pytest.mark.parametrize("case", sorted(USER_ERRORS))
def test_a_user_error_is_one_avlab_line_and_exit_code_2(case, capsys):
    args, expected = USER_ERRORS[case]
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["train", *args, "--no-progress"])
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith(expected), captured.err
    assert captured.err.count("\n") == 1


def test_a_resume_with_other_settings_is_a_user_error(avdigits_cache, tmp_path, capsys):
    cli.run(digits(avdigits_cache, tmp_path / "r"))
    with pytest.raises(SystemExit) as exit_info:
        cli.main(digits(avdigits_cache, tmp_path / "r", "--lr", "0.1", "--epochs", "2"))
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.startswith("avlab: checkpoint") and "other settings" in err
    assert "--restart" in err and err.count("\n") == 1


def test_python_dash_m_avlab_prints_no_traceback():
    done = subprocess.run([sys.executable, "-m", "avlab", "train", "--data", "avdigits", "--method", "ogm_ge",
                           "--method-arg", "alpha=abc"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == "avlab: --method-arg alpha=abc: alpha takes a float, got 'abc'\n"


def test_a_real_dataset_layout_trains_a_composition_from_the_pretrained_start(tmp_path):
    pytest.importorskip("av")
    from avlab.data.fixtures import make_raw

    made = make_raw("ave", tmp_path / "raw", clips_per_class=2, num_classes=2, seconds=1.0)
    cli.run(["preprocess", "ave", "--raw", str(tmp_path / "raw"), "--out", str(tmp_path / "data"), "--workers", "0",
             "--no-progress", *[f"--option={k}={v}" for k, v in made.get("options", {}).items()]])
    row = cli.run(["train", "--data", "ave", "--root", str(tmp_path / "data"), "--data-arg", "image_size=32",
                   "--width", "8", "--epochs", "1", "--batch-size", "2", "--method", "multiloss+ogm_ge",
                   "--method-arg", "ogm_ge.alpha=0.5", "--init", "abri", "--device", "cpu", "--no-progress",
                   "--out", str(tmp_path / "run")])
    assert row["data"] == "ave" and row["method"] == "multiloss+ogm_ge" and row["init"] == "abri"
    record = json.loads((tmp_path / "run" / "record.json").read_text())
    assert [p["name"] for p in record["method"]["parts"]] == ["multiloss", "ogm_ge"]
    assert record["method"]["parts"][1]["alpha"] == 0.5 and "ogm_k_audio" in record["history"][0]


def test_option_types_come_from_annotations_or_defaults():
    from avlab.methods.registry import REQUIRED, Option, OptionError, option_kind

    # annotations as text (postponed evaluation, as in every avlab module) and as real types
    assert option_kind("float", 0.8) == "float" and option_kind(float, 0.8) == "float"
    assert option_kind("int | None", 50) == "int | None" and option_kind(int | None, None) == "int | None"
    assert option_kind("Optional[str]", None) == "str | None" and option_kind("bool", True) == "bool"
    assert option_kind(REQUIRED, (4, 4)) == "tuple" and option_kind(REQUIRED, 0.5) == "float"
    assert option_kind("torch.Tensor", REQUIRED) == "value"
    assert Option("end", "int | None").convert("None") is None and Option("end", "int | None").convert("7") == 7
    assert Option("noise", "bool").convert("False") is False and Option("patch", "tuple").convert("(2,2)") == (2, 2)
    assert Option("rule", "str").convert("symmetric") == "symmetric"
    for kind, text in (("int", "1.5"), ("bool", "maybe"), ("float", "abc"), ("tuple", "3")):
        with pytest.raises(OptionError, match=f"x takes an? {kind}"):
            Option("x", kind).convert(text)
