"""The command line: `python -m avlab list | preprocess | train`, on AV-Digits (the session's tiny build) and on a
real-layout fixture; records, checkpoints, resuming, the method registry and its errors."""
import json
import subprocess
import sys

import pytest
import torch

from avlab import cli


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: see conftest.one_thread


def digits(cache, out, *extra):
    return ["train", "--data", "avdigits:dominant_audio", "--data-arg", "n_train=200", "--data-arg", "n_val=100",
            "--data-arg", "n_test=100", "--data-arg", f"cache_dir={cache}", "--width", "4", "--batch-size", "50",
            "--device", "cpu", "--no-progress", "--out", str(out), *extra]


def test_list_names_datasets_methods_and_fusions(capsys):
    cli.run(["list"])
    text = capsys.readouterr().out
    for name in ("avdigits:complementary", "cremad", "vggsound", "(1, 257, 188)", "ogm_ge", "mlb", "umt", "gated"):
        assert name in text


def test_train_writes_record_checkpoint_results_and_resumes(avdigits_cache, tmp_path, capsys):
    out = tmp_path / "run"
    row = cli.run(digits(avdigits_cache, out, "--epochs", "1", "--method", "ogm_ge", "--method-arg", "alpha=0.5"))
    assert row["method"] == "ogm_ge" and row["epochs"] == 1 and 0 <= row["test_acc"] <= 1
    printed = capsys.readouterr().out
    assert "| data" in printed and "avdigits:dominant_audio | ogm_ge" in printed
    record = json.loads((out / "record.json").read_text())
    assert record["method"]["alpha"] == 0.5 and record["config"]["batch_size"] == 50
    assert json.loads((out / "results.json").read_text())["test_acc"] == row["test_acc"]
    first = torch.load(out / "checkpoint.pt", weights_only=False)["history"]
    # the same command with more epochs goes on from the checkpoint
    row2 = cli.run(digits(avdigits_cache, out, "--epochs", "2", "--method", "ogm_ge", "--method-arg", "alpha=0.5"))
    history = torch.load(out / "checkpoint.pt", weights_only=False)["history"]
    assert row2["epochs"] == 2 and history[0] == first[0]
    with pytest.raises(SystemExit, match="other settings"):  # another learning rate: refused, not mixed
        cli.run(digits(avdigits_cache, out, "--epochs", "3", "--lr", "0.1", "--method", "ogm_ge",
                       "--method-arg", "alpha=0.5"))
    row3 = cli.run(digits(avdigits_cache, out, "--epochs", "1", "--lr", "0.1", "--restart"))
    assert row3["epochs"] == 1 and row3["method"] == "joint"


def test_umt_needs_teachers_and_takes_them_from_checkpoints(avdigits_cache, tmp_path):
    with pytest.raises(SystemExit, match="--teachers visual="):
        cli.run(digits(avdigits_cache, tmp_path / "umt", "--epochs", "1", "--method", "umt"))
    teacher = tmp_path / "teacher"
    cli.run(digits(avdigits_cache, teacher, "--epochs", "1", "--modalities", "visual", "--no-test"))
    row = cli.run(digits(avdigits_cache, tmp_path / "umt", "--epochs", "1", "--method", "umt",
                         "--teachers", f"visual={teacher / 'checkpoint.pt'}"))
    assert row["method"] == "umt"
    history = json.loads((tmp_path / "umt" / "record.json").read_text())["history"]
    assert history[0]["loss_distill_visual"] > 0
    with pytest.raises(SystemExit, match="does not exist"):
        cli.run(digits(avdigits_cache, tmp_path / "x", "--method", "umt", "--teachers", "visual=nope.pt"))
    with pytest.raises(SystemExit, match="no visual encoder of this architecture"):
        torch.save({"model": {"something": torch.zeros(1)}}, tmp_path / "odd.pt")
        cli.run(digits(avdigits_cache, tmp_path / "x", "--method", "umt", "--teachers", f"visual={tmp_path / 'odd.pt'}"))


def test_unknown_names_and_malformed_options_are_clear(avdigits_cache, tmp_path):
    with pytest.raises(SystemExit, match="unknown method 'ogm-ge'.*'ogm_ge'"):
        cli.run(digits(avdigits_cache, tmp_path / "r", "--method", "ogm-ge"))
    with pytest.raises(SystemExit, match="KEY=VALUE"):
        cli.run(digits(avdigits_cache, tmp_path / "r", "--method-arg", "alpha"))
    with pytest.raises(SystemExit, match="--data audioset: unknown dataset"):
        cli.run(["train", "--data", "audioset", "--root", str(tmp_path)])


def test_registry_is_a_plain_dict_that_takes_new_methods(avdigits_cache, tmp_path):
    from avlab.methods.base import Method

    class Halve(Method):
        name = "halve_visual"

        def after_backward(self, out, batch, trainer):
            for p in trainer.model.encoder("visual").parameters():
                p.grad.mul_(0.5)
            return {"halved": 1.0}

    methods = cli.methods()
    methods["halve_visual"] = lambda ctx, **kw: Halve(**kw)
    try:
        row = cli.run(digits(avdigits_cache, tmp_path / "h", "--epochs", "1", "--method", "halve_visual", "--no-test"))
    finally:
        del methods["halve_visual"]
    assert row["method"] == "halve_visual"
    assert json.loads((tmp_path / "h" / "record.json").read_text())["history"][0]["halved"] == 1.0


def test_preprocess_and_train_on_a_real_layout(tmp_path, capsys):
    pytest.importorskip("av")
    from avlab.data.fixtures import make_raw

    make_raw("ave", tmp_path / "raw", clips_per_class=2, num_classes=2, seconds=1.0)
    report = cli.run(["preprocess", "ave", "--raw", str(tmp_path / "raw"), "--out", str(tmp_path / "data"),
                      "--workers", "0", "--no-progress"])
    assert report.counts == {"train": 4, "val": 2, "test": 2} and "ave: 8 clips" in capsys.readouterr().out
    row = cli.run(["train", "--data", "ave", "--root", str(tmp_path / "data"), "--data-arg", "image_size=32",
                   "--width", "4", "--epochs", "1", "--batch-size", "2", "--method", "mlb", "--fusion", "gated",
                   "--device", "cpu", "--no-progress", "--out", str(tmp_path / "run")])
    assert row["data"] == "ave" and row["method"] == "mlb" and "test_acc" in row and "val_acc_visual" in row
    record = json.loads((tmp_path / "run" / "record.json").read_text())
    assert record["model"]["fusion"] == "gated" and record["history"][0]["loss_head_visual"] > 0


def test_python_dash_m_avlab():
    done = subprocess.run([sys.executable, "-m", "avlab", "list"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "methods:" in done.stdout and "ogm_ge" in done.stdout


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_train_on_the_gpu_with_mixed_precision(avdigits_cache, tmp_path):
    out = tmp_path / "gpu"
    args = digits(avdigits_cache, out, "--epochs", "1")
    args[args.index("--device") + 1] = "cuda"
    cli.run(args)
    record = json.loads((out / "record.json").read_text())
    assert record["device"].startswith("cuda") and record["config"]["amp"]
