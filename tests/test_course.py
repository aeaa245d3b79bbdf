"""The notebook pipeline on a tiny fake repo written into tmp_path: real files, real jupytext, a real kernel."""
import json
import re

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

import jupytext
import nbformat
import pytest

from avlab import course

# What an author writes as the first code cell; `build` replaces it by the stamped set-up cell.
COLAB = "# %%\n# Colab set-up\nimport sys\n\n"
PYPROJECT = """[project]
name = "avlab"
version = "9.8.7"
[project.optional-dependencies]
real = ["av>=14"]
[project.urls]
Repository = "https://github.com/someone/course"
[tool.avlab]
colab-install = "repository"
"""

DEMO = '''# %% [markdown]
# # Demo
#
# Why does late fusion help here?
#
# <!-- BEGIN SOLUTION -->
# Because the audio is noisy.
# <!-- END SOLUTION -->
#
# Next question.

''' + COLAB + '''# %%
# SOLUTION-ONLY: the answer key
secret = 42


# %%
def double(a):
    # EXERCISE: return twice a
    ### BEGIN SOLUTION
    b = 2 * a
    return b
    ### END SOLUTION


class Model:
    def forward(self, x):
        ### BEGIN SOLUTION
        return x
        ### END SOLUTION
'''


def make_repo(tmp_path, files=None):
    (tmp_path / "solutions").mkdir()
    (tmp_path / "jupytext.toml").write_text((course.REPO / "jupytext.toml").read_text())
    (tmp_path / "pyproject.toml").write_text(PYPROJECT)
    for name, text in (files or {"00_demo.py": DEMO}).items():
        (tmp_path / "solutions" / name).write_text(text)
    return tmp_path


def cells(*sources):
    return [nbformat.v4.new_markdown_cell(s[3:]) if s.startswith("md:") else nbformat.v4.new_code_cell(s)
            for s in sources]


def test_exercise_region_becomes_stub_at_its_indentation():
    [out] = course.student_cells(cells(
        "def f(a):\n    # EXERCISE: return twice a\n    ### BEGIN SOLUTION\n    return 2 * a\n    ### END SOLUTION\n"
        "\nclass M:\n    def g(self):\n        ### BEGIN SOLUTION\n        return 1\n        ### END SOLUTION\nx = 1"))
    assert out.source == (
        'def f(a):\n    # EXERCISE: return twice a\n    raise NotImplementedError("Exercise: return twice a")\n'
        '\nclass M:\n    def g(self):\n        raise NotImplementedError("Exercise: fill in this block")\nx = 1')


def test_solution_only_cell_is_dropped_and_others_copied():
    out = course.student_cells(cells("# SOLUTION-ONLY\nsecret = 1", "md:# Title", "print('hi')"))
    assert [(c.cell_type, c.source) for c in out] == [("markdown", "# Title"), ("code", "print('hi')")]


def test_markdown_solution_block_becomes_placeholder():
    [out] = course.student_cells(cells("md:Q?\n\n<!-- BEGIN SOLUTION -->\nA.\nMore.\n<!-- END SOLUTION -->\n\nNext."))
    assert out.source == "Q?\n\n*Your answer here.*\n\nNext."


@pytest.mark.parametrize("source", ["### BEGIN SOLUTION\nx = 1", "x = 1\n### END SOLUTION",
                                    "### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION"])
def test_unbalanced_markers_are_an_error(source):
    with pytest.raises(ValueError, match="cell 1"):
        course.student_cells(cells(source))


def test_build_writes_notebooks_and_chapter(tmp_path):
    root = make_repo(tmp_path)
    written = course.build(root)
    assert {p.relative_to(root).as_posix() for p in written} >= {
        "solutions/00_demo.ipynb", "chapters/00_demo.py", "chapters/00_demo.ipynb"}
    chapter = (root / "chapters/00_demo.py").read_text()
    assert 'raise NotImplementedError("Exercise: return twice a")' in chapter
    assert "secret" not in chapter and "BEGIN SOLUTION" not in chapter and "audio is noisy" not in chapter
    assert "*Your answer here.*" in chapter and course.setup_cell(course.project(root)) in chapter
    solution = nbformat.read(root / "solutions/00_demo.ipynb", as_version=4)
    assert "secret = 42" in solution.cells[3].source  # after the badge, the question and the set-up cell
    assert all(c.get("outputs", []) == [] for c in solution.cells)
    # Each generated .py is exactly what jupytext writes for its notebook: `jupytext --sync` changes nothing.
    config = course._config(root)
    for name in ["solutions/00_demo", "chapters/00_demo"]:
        nb = jupytext.read(root / f"{name}.ipynb")
        assert jupytext.writes(nb, fmt="py:percent", config=config) == (root / f"{name}.py").read_text()


def test_build_is_deterministic(tmp_path):
    root = make_repo(tmp_path)
    course.build(root)
    generated = ["solutions/00_demo.ipynb", "chapters/00_demo.py", "chapters/00_demo.ipynb"]
    first = {name: (root / name).read_bytes() for name in generated}
    assert course.build(root) == []  # nothing changed, nothing rewritten
    for name in generated:
        (root / name).unlink()
    course.build(root)
    assert {name: (root / name).read_bytes() for name in generated} == first


def test_check_detects_missing_and_stale_then_passes_after_build(tmp_path):
    root = make_repo(tmp_path)
    assert "chapters/00_demo.py: missing" in course.check(root)
    course.build(root)
    assert course.check(root) == []
    (root / "chapters/00_demo.ipynb").unlink()
    src = root / "solutions/00_demo.py"
    src.write_text(src.read_text().replace("return twice a", "return two times a"))
    problems = course.check(root)
    assert "chapters/00_demo.ipynb: missing" in problems
    assert "chapters/00_demo.py: out of date" in problems
    assert "solutions/00_demo.ipynb: out of date" in problems
    course.build(root)
    assert course.check(root) == []


def test_check_flags_broken_chapter_and_orphans(tmp_path):
    # An exercise region inside an expression leaves the chapter unparseable.
    broken = COLAB + "# %%\nx = [\n    ### BEGIN SOLUTION\n    1, 2,\n    ### END SOLUTION\n]\n"
    root = make_repo(tmp_path, {"01_broken.py": broken})
    course.build(root)
    (root / "chapters/09_old.py").write_text("x = 1\n")
    problems = course.check(root)
    assert any(p.startswith("chapters/01_broken.py: not valid Python") for p in problems)
    assert "chapters/09_old.py: no solutions/09_old.py generates it" in problems


def test_missing_colab_cell_fails_build_with_clear_message(tmp_path):
    root = make_repo(tmp_path, {"00_demo.py": "# %% [markdown]\n# # Title\n\n# %%\nimport torch\n"})
    with pytest.raises(ValueError, match="first code cell must be the Colab set-up cell"):
        course.build(root)
    assert not (root / "chapters").exists()  # nothing half-written
    assert any("Colab set-up" in p for p in course.check(root))


def test_run_executes_notebooks_through_a_kernel(tmp_path, monkeypatch, capsys):
    ok = COLAB + '# %%\nfrom avlab.course import headline\nheadline("00_ok", accuracy=0.5, steps=3)\n'
    bad = COLAB + "# %%\n1 / 0\n"
    root = make_repo(tmp_path, {"00_ok.py": ok, "01_bad.py": bad, "02_after.py": COLAB})
    monkeypatch.setenv("PYTHONPATH", str(course.REPO))  # the kernel imports this checkout's avlab
    results = course.run(root, headline_dir=tmp_path / "headlines")
    assert list(results) == ["00_ok", "01_bad", "02_after"]  # a failure does not stop the rest
    assert results["00_ok"]["error"] is None and results["00_ok"]["headline"] == {"accuracy": 0.5, "steps": 3}
    assert json.loads((tmp_path / "headlines/00_ok.json").read_text()) == {"accuracy": 0.5, "steps": 3}
    assert "ZeroDivisionError" in results["01_bad"]["error"]
    assert results["02_after"]["error"] is None
    assert "ZeroDivisionError" in capsys.readouterr().out
    assert list(course.run(root, chapters=["02"], headline_dir=tmp_path / "headlines")) == ["02_after"]
    with pytest.raises(ValueError, match="no solution matches 07"):
        course.run(root, chapters=["07"])


def test_repo_generated_files_up_to_date():
    assert course.check() == [], "run `python -m avlab.course build`"


# ----------------------------------------------------------------------------- version stamp and Colab badge

def _setup_and_badge(path):
    """(set-up cell source, badge cell source) of a generated notebook or percent script."""
    nb = jupytext.read(path)
    return next(c.source for c in nb.cells if c.cell_type == "code"), nb.cells[0].source


def test_build_stamps_version_badge_and_install_source_from_pyproject(tmp_path):
    root = make_repo(tmp_path)
    course.build(root)
    for folder in ("solutions", "chapters"):
        for ext in ("py", "ipynb"):
            setup, badge = _setup_and_badge(root / folder / f"00_demo.{ext}")
            assert 'AVLAB = "avlab @ git+https://github.com/someone/course@v9.8.7"' in setup
            assert "KEEP_DATA_ON_DRIVE = False" in setup
            assert badge.startswith("[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
                                    f"(https://colab.research.google.com/github/someone/course/blob/v9.8.7/"
                                    f"{folder}/00_demo.ipynb)")
            assert "Runtime → Change runtime type → GPU" in badge
    # A new version and a switch to the package index: check notices, build restamps, the badge is not doubled.
    pyproject = root / "pyproject.toml"
    pyproject.write_text(PYPROJECT.replace("9.8.7", "9.9.0").replace('"repository"', '"index"'))
    assert "chapters/00_demo.ipynb: out of date" in course.check(root)
    course.build(root)
    assert course.check(root) == []
    nb = jupytext.read(root / "chapters/00_demo.ipynb")
    assert sum(c.source.startswith(course.BADGE_MARK) for c in nb.cells) == 1
    setup, badge = _setup_and_badge(root / "chapters/00_demo.ipynb")
    assert 'AVLAB = "avlab==9.9.0"' in setup and "/blob/v9.9.0/chapters/00_demo.ipynb)" in badge


def test_setup_cell_keeps_the_chapters_extras_and_rejects_unknown_ones(tmp_path):
    real = '# %%\n# Colab set-up\nAVLAB = "avlab[real]"\n\n# %%\nx = 1\n'
    root = make_repo(tmp_path, {"00_video.py": real})
    course.build(root)
    setup, _ = _setup_and_badge(root / "chapters/00_video.ipynb")
    assert 'AVLAB = "avlab[real] @ git+https://github.com/someone/course@v9.8.7"' in setup
    course.build(root)  # the stamped cell keeps its extras on the next build
    assert _setup_and_badge(root / "chapters/00_video.ipynb")[0] == setup
    (root / "solutions/00_video.py").write_text(real.replace("[real]", "[real,gpu]"))
    with pytest.raises(ValueError, match=r"00_video.py: .*extras \['gpu'\]"):
        course.build(root)


def test_repository_url_must_be_a_github_repository(tmp_path):
    root = make_repo(tmp_path)
    (root / "pyproject.toml").write_text(PYPROJECT.replace("https://github.com/someone/course", "https://example.org/x"))
    with pytest.raises(ValueError, match=r"Repository must be https://github.com/<owner>/<repo>"):
        course.build(root)
    assert any("Repository must be" in p for p in course.check(root))


def test_repo_notebooks_pin_the_version_of_pyproject_and_of_the_package():
    """Read independently of course.py: pyproject's version, avlab.__version__ and every stamp must agree."""
    import avlab

    meta = tomllib.loads((course.REPO / "pyproject.toml").read_text())
    version, repo_url = meta["project"]["version"], meta["project"]["urls"]["Repository"]
    owner_repo = repo_url.removeprefix("https://github.com/")
    assert avlab.__version__ == version, "avlab/__init__.py and pyproject.toml disagree on the version"
    generated = sorted(course.REPO.glob("solutions/[0-9][0-9]_*.*")) + sorted(course.REPO.glob("chapters/[0-9][0-9]_*.*"))
    assert len(generated) == 4 * len(course.sources())
    for path in generated:
        setup, badge = _setup_and_badge(path)
        where = path.relative_to(course.REPO)
        pin = re.search(r'AVLAB = "avlab(\[[\w,]*\])?(?:==(?P<index>[^"]+)| @ git\+(?P<url>[^"@]+)@v(?P<tag>[^"]+))"', setup)
        assert pin, f"{where}: no pinned avlab in the set-up cell"
        assert (pin["index"] or pin["tag"]) == version, f"{where}: set-up cell pins another version"
        assert pin["url"] in (None, repo_url), f"{where}: installs from another repository"
        link = re.search(r"\]\(https://colab\.research\.google\.com/github/(?P<repo>[^/]+/[^/]+)/blob/v(?P<v>[^/]+)/"
                         r"(?P<path>[^)]+)\)", badge)
        assert link, f"{where}: no Open-in-Colab badge in the first cell"
        assert (link["repo"], link["v"], link["path"]) == (owner_repo, version, f"{where.parent}/{path.stem}.ipynb")


# -----------------------------------------------------------------------------
# the headless runner's progress lines and rounded summary

TINY = '''# %% [markdown]
# # Tiny chapter

''' + COLAB + '''# %% [markdown]
# ## Warm up
#
# Text under the heading.

# %%
x = 0.7646666765213013

# %% [markdown]
# A markdown cell without a heading keeps the section.

# %%
from avlab.course import headline
headline("00_tiny", accuracy=x, small=0.000123456, big=1234.56789, steps=3)
'''


def test_run_prints_progress_per_cell_and_rounds_the_summary(tmp_path, monkeypatch, capfd):
    import re
    root = make_repo(tmp_path, {"00_tiny.py": TINY})
    monkeypatch.setenv("PYTHONPATH", str(course.REPO))
    results = course.run(root, headline_dir=tmp_path / "headlines")
    out, err = capfd.readouterr()  # fd-level: the kernel process's own stderr lands here too
    progress = [m.groups() for m in re.finditer(r"^00_tiny \| cell (\d+)/(\d+) \| ([\d.]+) s \| (.+)$", out, re.M)]
    # Three code cells (Colab set-up, x = ..., headline); the section is the last heading seen before each.
    assert [(k, n, section) for k, n, _, section in progress] == [
        ("1", "3", "Tiny chapter"), ("2", "3", "Warm up"), ("3", "3", "Warm up")]
    seconds = [float(s) for _, _, s, _ in progress]
    assert seconds == sorted(seconds)
    # Printed numbers are rounded: 3 decimals, or 3 significant digits below 1; results keep full precision.
    rounded = '{"accuracy": 0.765, "small": 0.000123, "big": 1234.568, "steps": 3}'
    assert "00_tiny: ok in " in out and out.count(rounded) == 2  # the chapter's line and the summary row
    assert "0.7646666765213013" not in out
    assert results["00_tiny"]["headline"]["accuracy"] == 0.7646666765213013
    # The kernel's traffic is encrypted, so ipykernel has no plain-TCP warning to print.
    assert "without encryption" not in out + err


def test_progress_rewrites_one_line_on_a_terminal():
    import io

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    nb = nbformat.v4.new_notebook(cells=cells("md:# Title", "a = 1", "md:## Part two", "b = 2", "   "))
    term = Terminal()
    progress = course._Progress("00_demo", nb, out=term)
    for i, cell in enumerate(nb.cells):
        progress.on_cell_start(cell, i)
        if cell.cell_type == "code" and cell.source.strip():  # nbclient skips empty cells
            progress.on_cell_execute(cell, i)
    progress.finish()
    lines = term.getvalue().split("\r")[1:]
    assert lines[0].startswith("00_demo | cell 1/2 | ") and lines[0].endswith(" s | Title")
    assert lines[1].startswith("00_demo | cell 2/2 | ") and lines[1].endswith(" s | Part two\n")
    assert term.getvalue().count("\n") == 1  # one line, rewritten in place, then a newline at the end
