"""`python -m avlab bench` (avlab.bench): a tiny grid writes its CSV, summary and figures, resumes without
retraining, records a combination a method refuses, and bad options give one `avlab:` line."""
import csv

import pytest

from avlab import bench, cli

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(cache):  # the session's tiny AV-Digits build (frames do not change its cached audio)
    return dict(data=dict(n_train=200, n_val=100, n_test=100, cache_dir=cache), train=dict(epochs=1, width=4))


def rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_tiny_grid_writes_rows_resumes_and_records_unsupported(avdigits_cache, tmp_path):
    out = tmp_path / "grid"
    grid = dict(fusions=["film"], optimizers=["adam"], presets=["dominant_audio"], seeds=[0], workers=0, out=out)
    result = bench.run_grid(["joint", "mmcosine"], **grid, **tiny(avdigits_cache), log=lambda *a: None)
    assert result["ran"] == 2 and result["skipped"] == 0
    written = rows(out / "grid.csv")
    assert [(r["method"], r["status"]) for r in written] == [("joint", "ok"), ("mmcosine", "unsupported")]
    joint, cosine = written
    assert 0 <= float(joint["test_acc"]) <= 1 and 0 <= float(joint["probe_visual"]) <= 1
    assert joint["selected_epoch"] == "0" and joint["optimizer"] == "adam" and joint["torch"]
    assert joint["n_train"] == "200" and joint["epochs"] == "1" and joint["lr"] == "0.003"
    assert "MMCosine does not support fusion 'film'" in cosine["reason"] and cosine["test_acc"] == ""
    assert (out / "summary.md").exists() and "mmcosine | film | unsupported" in (out / "summary.md").read_text()
    # a rerun trains nothing; a wider grid runs only its new rows
    before = (out / "grid.csv").read_text()
    again = bench.run_grid(["joint", "mmcosine"], **grid, **tiny(avdigits_cache), log=lambda *a: None)
    assert again["ran"] == 0 and again["skipped"] == 2 and (out / "grid.csv").read_text() == before
    wider = bench.run_grid(["joint", "mmcosine", "ume"], **grid, **tiny(avdigits_cache), log=lambda *a: None)
    assert wider["ran"] == 1 and (out / "grid.csv").read_text().startswith(before)
    ume = rows(out / "grid.csv")[-1]
    assert ume["method"] == "ume" and ume["status"] == "ok" and float(ume["seconds"]) > 0
    assert (out / "gain_test_acc.png").stat().st_size > 0
    # other settings in the same CSV would not compare: refused
    with pytest.raises(bench.BenchError, match="other settings"):
        bench.run_grid(["joint"], **grid, data=dict(n_train=200, n_val=100, n_test=100, cache_dir=avdigits_cache),
                       train=dict(epochs=2, width=4), log=lambda *a: None)


def test_paired_gains_pair_by_fusion_and_seed():
    def row(method, fusion, seed, acc):
        return {"method": method, "fusion": fusion, "optimizer": "sgd", "preset": "p", "seed": str(seed),
                "status": "ok", "test_acc": str(acc)}
    grid = [row("joint", "sum", 0, 0.5), row("joint", "sum", 1, 0.7), row("mlb", "sum", 0, 0.6),
            row("mlb", "sum", 1, 0.9), row("mlb", "concat", 0, 0.99)]  # no concat joint: not paired
    (gain,) = bench.paired_gains(grid, "test_acc")
    # differences 0.1 and 0.2: mean 0.15, std 0.0707, s.e. 0.05
    assert gain["n"] == 2 and gain["gain"] == pytest.approx(0.15) and gain["se"] == pytest.approx(0.05)


@pytest.mark.parametrize("argv, message", [
    (["--methods", "joint,nope"], "avlab: unknown method 'nope'; choose from joint"),
    (["--fusions", "late"], "avlab: unknown fusion 'late'"),
    (["--optimizers", "adamw"], "avlab: unknown optimizer 'adamw'"),
    (["--presets", "loud"], "avlab: unknown preset 'loud'"),
    (["--seeds", "a,b"], "avlab: --seeds takes integers"),
    (["--methods", ","], "avlab: --methods is empty"),
    (["--epochs", "0"], "avlab: --epochs and --n-train must be positive"),
])
def test_bad_options_are_one_line(argv, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["bench", "--out", str(tmp_path), *argv])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1 and not (tmp_path / "grid.csv").exists()


def test_a_named_budget_is_recorded_and_an_older_csv_resumes(avdigits_cache, tmp_path):
    """`budget="chapter01"` brings chapter 01's data knobs (vis_noise, snr_db) into every row; a CSV written before
    those columns existed (the quick budget, which leaves them at the preset's default) resumes under today's header."""
    grid = dict(fusions=["concat"], optimizers=["sgd"], presets=["dominant_audio"], seeds=[0], workers=0,
                log=lambda *a: None)
    small = dict(data=dict(n_train=200, n_val=100, n_test=100, cache_dir=avdigits_cache), train=dict(epochs=1, width=4))
    bench.run_grid(["joint"], out=tmp_path / "c1", budget="chapter01", **small, **grid)
    (row,) = rows(tmp_path / "c1" / "grid.csv")
    assert (row["vis_noise"], row["snr_db"], row["batch_size"], row["n_train"]) == ("0.2", "5.0", "64", "200")
    with pytest.raises(bench.BenchError, match="unknown budget 'huge'"):
        bench.run_grid(["joint"], out=tmp_path / "c2", budget="huge", **small, **grid)

    old = tmp_path / "old"
    bench.run_grid(["joint"], out=old, **small, **grid)
    (quick,) = rows(old / "grid.csv")
    assert quick["vis_noise"] == "" and quick["batch_size"] == "32"
    older = [c for c in bench.COLUMNS if c not in ("vis_noise", "snr_db")]
    with (old / "grid.csv").open("w", newline="") as f:  # as an avlab without those columns wrote it
        writer = csv.DictWriter(f, fieldnames=older)
        writer.writeheader()
        writer.writerow({k: quick[k] for k in older})
    again = bench.run_grid(["joint", "mmcosine"], out=old, **small, **grid)
    assert again["skipped"] == 1 and again["ran"] == 1
    assert [r["method"] for r in rows(old / "grid.csv")] == ["joint", "mmcosine"]
    assert list(rows(old / "grid.csv")[0]) == list(bench.COLUMNS)
