"""The built wheel, installed the way a notebook's Colab set-up cell installs it, into a fresh virtual environment.

Colab already holds torch; the set-up cell must leave it alone. Here the fresh venv sees the torch of this
interpreter (and the rest of its packages, as Colab has numpy, scikit-learn, seaborn...) through a .pth path line to
a folder of links that leaves avlab out, so nothing is downloaded, avlab is not importable until the wheel is
installed, and pip never touches the linked packages (they lie outside the venv, which pip refuses to uninstall
from). The dry-run test resolves the wheel against the torch trio Colab ships today.

These tests cost about a minute together (build ~5 s, venv ~5 s, pip ~10 s, chapter 00's first cells ~20 s);
`-m "not packaging"` leaves them out.
"""
import hashlib
import json
import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import jupytext
import pytest

from avlab.course import REPO, project

pytestmark = pytest.mark.packaging

VERSION = project()["version"]
WHEEL = f"avlab-{VERSION}-py3-none-any.whl"
CHECKPOINT = "avlab/weights/pretrained/visual_resnet18_w8_slim.pt"
HOST = Path(sysconfig.get_paths()["purelib"])  # this interpreter's site-packages: torch and the rest
COLAB_TRIO = {"torch": "2.8.0", "torchvision": "0.23.0", "torchaudio": "2.8.0"}  # what Colab ships (late 2025)


def _run(cmd, **kw):
    kw.setdefault("timeout", 300)
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)


def _clean_env(tmp):
    """Nothing of this checkout leaks in: no PYTHONPATH, no AVLAB_DATA, a HOME and cache of its own."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "AVLAB_DATA", "VIRTUAL_ENV")}
    (tmp / "home").mkdir(exist_ok=True)
    return dict(env, HOME=str(tmp / "home"), XDG_CACHE_HOME=str(tmp / "cache"), MPLBACKEND="Agg",
                PYTHONDONTWRITEBYTECODE="1", PIP_DISABLE_PIP_VERSION_CHECK="1")


def _linked_site(folder, leave_out=()):
    """A folder of links to every entry of HOST's site-packages but avlab's own (and any in leave_out)."""
    folder.mkdir()
    for entry in HOST.iterdir():
        name = entry.name.lower()
        if name.startswith(("avlab", "__editable__", "__editable___avlab")) or name.endswith(".pth"):
            continue
        if any(name == p or name.startswith((f"{p}-", f"{p}.")) for p in leave_out):
            continue
        (folder / entry.name).symlink_to(entry)
    return folder


def _venv(path, site, with_pip=True):
    """A fresh venv whose sys.path ends with `site` (a .pth path line, as a pre-installed system would)."""
    _run([sys.executable, "-m", "venv", *([] if with_pip else ["--without-pip"]), path], check=True)
    python = path / "bin" / "python"
    purelib = Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                        check=True).stdout.strip())
    (purelib / "host-site.pth").write_text(f"{site}\n")
    return python, purelib


def _snapshot(folder):
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*")}


@pytest.fixture(scope="session")
def dist(tmp_path_factory):
    """sdist and wheel from `python -m build` (the sdist first, the wheel from it), built once per session."""
    for module in ("build", "twine"):
        pytest.importorskip(module, reason=f"`{module}` is in the test extra: pip install -e .[test]")
    out = tmp_path_factory.mktemp("dist")
    r = _run([sys.executable, "-m", "build", "--outdir", out, REPO], cwd=out)
    if r.returncode and any(s in r.stdout + r.stderr for s in ("Could not find a version", "NewConnectionError")):
        pytest.skip("python -m build needs setuptools>=77 from the package index, which cannot be reached")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert (out / WHEEL).exists() and (out / f"avlab-{VERSION}.tar.gz").exists(), sorted(os.listdir(out))
    return out


@pytest.fixture(scope="module")
def colab(dist, tmp_path_factory):
    """A fresh venv that holds a torch (this interpreter's) but not avlab, then the wheel installed into it."""
    tmp = tmp_path_factory.mktemp("colab")
    env = _clean_env(tmp)
    python, purelib = _venv(tmp / "venv", _linked_site(tmp / "host-site"))
    probe = "import os, torch; print(torch.__version__, os.path.realpath(torch.__file__))"
    outside = tmp / "work"
    outside.mkdir()
    no_avlab = _run([python, "-c", "import avlab"], cwd=outside, env=env)
    torch_before = _run([python, "-c", probe], cwd=outside, env=env, check=True).stdout
    installed = _run([python, "-m", "pip", "install", "-q", dist / WHEEL], cwd=outside, env=env)
    assert installed.returncode == 0, installed.stdout[-3000:] + installed.stderr[-3000:]
    torch_after = _run([python, "-c", probe], cwd=outside, env=env, check=True).stdout
    return {"python": python, "purelib": purelib, "env": env, "cwd": outside, "tmp": tmp, "no_avlab": no_avlab,
            "torch": (torch_before, torch_after), "pip": installed}


def test_data_folder_is_avlab_data_else_the_clones(monkeypatch, tmp_path):
    """The third choice, the user's cache folder for an installed wheel, is shown in the fresh venv below."""
    from avlab.utils import data_location, in_clone

    monkeypatch.setenv("AVLAB_DATA", str(tmp_path / "elsewhere"))
    assert data_location() == (tmp_path / "elsewhere", "from $AVLAB_DATA")
    monkeypatch.delenv("AVLAB_DATA")
    if not in_clone():
        pytest.skip("not running from a git clone")
    assert data_location() == (REPO / "data", "the clone's data folder")


def test_wheel_carries_the_code_and_the_checkpoint_and_nothing_else(dist):
    with zipfile.ZipFile(dist / WHEEL) as wheel:
        names = wheel.namelist()
        shipped = wheel.read(CHECKPOINT)
    assert all(n.startswith(("avlab/", f"avlab-{VERSION}.dist-info/")) for n in names), names
    data = sorted(n for n in names if n.startswith("avlab/") and not n.endswith(".py"))
    assert data == [CHECKPOINT.replace(".pt", ".json"), CHECKPOINT]  # no caches, tests, notebooks, READMEs
    # the same bytes as the provenance's sha256 and as the file in the clone
    provenance = json.loads((REPO / CHECKPOINT.replace(".pt", ".json")).read_text())
    assert hashlib.sha256(shipped).hexdigest() == provenance["sha256"]
    assert shipped == (REPO / CHECKPOINT).read_bytes()
    twine = _run([sys.executable, "-m", "twine", "check", "--strict", *sorted(dist.iterdir())])
    assert twine.returncode == 0, twine.stdout + twine.stderr


def test_wheel_installs_beside_the_torch_already_there(colab):
    assert colab["no_avlab"].returncode != 0 and "No module named 'avlab'" in colab["no_avlab"].stderr
    before, after = colab["torch"]
    assert before == after, "installing avlab changed torch's version or location"
    assert before.split()[1].startswith(str(HOST.resolve()))  # the torch that was there, not a new download
    assert not list(colab["purelib"].glob("torch*")), "pip installed a torch into the venv"
    assert (colab["purelib"] / "avlab").is_dir()


def test_chapter_00_runs_from_outside_the_clone_and_writes_nothing_into_site_packages(colab):
    """The first code cells of chapter 00 (set-up, about, imports, a SMALL AV-Digits build) in the fresh venv."""
    nb = jupytext.read(REPO / "solutions" / "00_meet_the_data.py")
    code = [c.source for c in nb.cells if c.cell_type == "code"][:4]
    assert code[0].startswith("# Colab set-up") and "avlab.about()" in code[1]
    full = 'load_avdigits("dominant_audio")'
    assert full in code[3], "chapter 00's fourth code cell no longer loads AV-Digits: update this test"
    code[3] = code[3].replace(full, 'load_avdigits("dominant_audio", n_train=40, n_val=20, n_test=20)')
    script = "\n\n".join(code) + (
        "\nimport avlab.utils, avlab.weights.pretrain as pt"
        "\nstate = pt.pretrained_visual_state(build=False)"
        "\nprint('RESULT', avlab.__file__, avlab.utils.data_dir(), pt.SHIPPED, len(state), len(train), flush=True)\n")
    before = _snapshot(colab["purelib"])
    r = _run([colab["python"], "-c", script], cwd=colab["cwd"], env=colab["env"])
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    package, data, shipped, n_tensors, n_train = r.stdout.split("RESULT ")[1].splitlines()[0].split()
    purelib = str(colab["purelib"])
    assert package.startswith(purelib)  # the installed wheel ran, not this checkout
    assert data == str(colab["tmp"] / "cache" / "avlab") and not data.startswith(purelib)
    assert "the user's cache folder" in r.stdout  # avlab.about() says where the data goes
    assert list(Path(data).glob("avdigits/audio-*.npz")), "AV-Digits was not cached in the data folder"
    assert shipped.startswith(purelib) and int(n_tensors) > 0 and int(n_train) == 40  # the packaged checkpoint
    assert _snapshot(colab["purelib"]) == before, "running the chapter wrote into site-packages"


def test_pip_would_keep_colabs_torch(dist, tmp_path):
    """`pip install --dry-run --report` of the wheel where Colab's torch trio is installed (and pinned).

    The trio is represented by its installed-package metadata only (torch 2.8.0 cannot be installed here); that
    metadata is all pip's resolver reads. The other packages are this interpreter's, as on Colab.
    """
    site = _linked_site(tmp_path / "colab-site", leave_out=tuple(COLAB_TRIO))
    for name, version in COLAB_TRIO.items():
        info = site / f"{name}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        (info / "INSTALLER").write_text("pip\n")
        (info / "RECORD").write_text("")
    python, _ = _venv(tmp_path / "venv", site, with_pip=False)
    constraints = tmp_path / "colab-constraints.txt"
    constraints.write_text("".join(f"{n}=={v}\n" for n, v in COLAB_TRIO.items()))
    report = tmp_path / "report.json"
    r = _run([sys.executable, "-m", "pip", "--python", python, "install", "--dry-run", "--report", report,
              "-c", constraints, dist / WHEEL], env=_clean_env(tmp_path))
    if r.returncode and any(s in r.stderr for s in ("NewConnectionError", "Failed to establish", "Network is unreachable",
                                                   "Temporary failure in name resolution")):
        pytest.skip(f"the package index cannot be reached for the dry run: {r.stderr.strip().splitlines()[-1]}")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    to_install = {item["metadata"]["name"].lower(): item["metadata"]["version"]
                  for item in json.loads(report.read_text())["install"]}
    assert to_install.get("avlab") == VERSION
    assert not set(to_install) & set(COLAB_TRIO), f"pip would replace Colab's torch: {to_install}"
