"""The notebook pipeline: solutions/NN_topic.py -> notebooks and student chapters.

    python -m avlab.course build          # write solutions/*.ipynb, chapters/*.py, chapters/*.ipynb
    python -m avlab.course check          # fail if any generated file is missing or stale
    python -m avlab.course run [NN ...]   # execute the solution notebooks, print headline numbers

The hand-written jupytext percent scripts in solutions/ are the only source of truth. Markers:
  code cell      # EXERCISE: <hint>            (optional, kept; becomes the error message)
                 ### BEGIN SOLUTION ... ### END SOLUTION
                 -> raise NotImplementedError("Exercise: <hint>")   at the marker's indentation
  code cell      first line "# SOLUTION-ONLY"  -> cell dropped from the chapter
  markdown cell  <!-- BEGIN SOLUTION --> ... <!-- END SOLUTION -->  -> *Your answer here.*
"""
# jupytext, nbformat and nbclient are imported inside functions: notebooks import this module for
# headline() on installs (Colab) that have none of them.
import argparse
import ast
import hashlib
import json
import os
import re
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent  # avlab/ lives at the repo root

# The set-up cell: `build` rewrites each solution's first code cell from this template, stamped with the version of
# pyproject.toml and an install line that [tool.avlab] colab-install picks. Only the extras in the brackets of the
# cell's `avlab[...]` are the chapter's own choice (most chapters need none); `build` keeps them.
COLAB_SETUP_CELL = '''\
# Colab set-up: installs avlab {version}, the version this notebook was written for (Colab keeps its own torch).
# Does nothing elsewhere. KEEP_DATA_ON_DRIVE = True keeps avlab's data folder on your Google Drive across sessions.
KEEP_DATA_ON_DRIVE = False
AVLAB = "{requirement}"
import os, subprocess, sys
if "google.colab" in sys.modules:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", AVLAB], check=True)
    if KEEP_DATA_ON_DRIVE:
        from google.colab import drive
        drive.mount("/content/drive")
        os.environ["AVLAB_DATA"] = "/content/drive/MyDrive/avlab-data"'''
SETUP_MARK = "# Colab set-up"
SETUP_EXTRAS = re.compile(r'"avlab(?:\[([^\]]*)\])?(?:==| @|")')  # "avlab", "avlab[real]==0.1", "avlab @ git+..."
BADGE_MARK = "[![Open In Colab]"
BADGE = (BADGE_MARK + "(https://colab.research.google.com/assets/colab-badge.svg)]({url})\n\n"
         "On Colab, ask for a GPU first: *Runtime → Change runtime type → GPU*; then run the cells in order.")
COLAB_URL = "https://colab.research.google.com/github/{repo}/blob/v{version}/{path}"
GITHUB = re.compile(r"^https://github\.com/([\w.-]+/[\w.-]+?)(?:\.git)?/?$")

BEGIN = re.compile(r"^(\s*)### BEGIN SOLUTION\s*$")
END = re.compile(r"^\s*### END SOLUTION\s*$")
EXERCISE = re.compile(r"^\s*# EXERCISE:\s*(.*?)\s*$")
MD_BEGIN, MD_END = "<!-- BEGIN SOLUTION -->", "<!-- END SOLUTION -->"
SOLUTION_ONLY = "# SOLUTION-ONLY"
STUB = "raise NotImplementedError("  # what every exercise region turns into
MARKERS = ("### BEGIN SOLUTION", "### END SOLUTION", MD_BEGIN, MD_END, SOLUTION_ONLY)
KERNEL_META = {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
               "language_info": {"name": "python"}}


# -----------------------------------------------------------------------------
# what pyproject.toml stamps into every notebook: version, install line, badge link

def project(root=None) -> dict:
    """version, GitHub owner/repo, extras and Colab install source, read from `root`'s pyproject.toml."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    path = Path(root or REPO) / "pyproject.toml"
    meta = tomllib.loads(_read(path))
    prj, tool = meta["project"], meta.get("tool", {}).get("avlab", {})
    url = prj.get("urls", {}).get("Repository", "")
    if not (m := GITHUB.match(url)):
        raise ValueError(f"{path}: [project.urls] Repository must be https://github.com/<owner>/<repo>, not {url!r}; "
                         f"the Colab badge and the pre-release install line are built from it")
    source = tool.get("colab-install", "index")
    if source not in ("index", "repository"):
        raise ValueError(f"{path}: [tool.avlab] colab-install must be \"index\" or \"repository\", not {source!r}")
    return {"version": prj["version"], "url": url.rstrip("/"), "repo": m.group(1), "source": source,
            "extras": sorted(prj.get("optional-dependencies", {}))}


def requirement(proj, extras=()) -> str:
    """What the set-up cell pip-installs: avlab==<version> from the index, or the repository's tag v<version>."""
    name = "avlab" + (f"[{','.join(extras)}]" if extras else "")
    if proj["source"] == "index":
        return f"{name}=={proj['version']}"
    return f"{name} @ git+{proj['url']}@v{proj['version']}"


def setup_cell(proj, extras=()) -> str:
    return COLAB_SETUP_CELL.format(version=proj["version"], requirement=requirement(proj, extras))


def badge(proj, path) -> str:
    """The Open-in-Colab markdown for the notebook at `path` (relative to the repository root) of tag v<version>."""
    return BADGE.format(url=COLAB_URL.format(repo=proj["repo"], version=proj["version"], path=path))


def _setup_extras(source, proj, where):
    """The extras a solution's set-up cell asks for (its `avlab[...]`), checked against pyproject's."""
    m = SETUP_EXTRAS.search(source)
    extras = [e.strip() for e in (m.group(1) or "").split(",") if e.strip()] if m else []
    if unknown := [e for e in extras if e not in proj["extras"]]:
        raise ValueError(f"{where}: the set-up cell asks for avlab extras {unknown} that pyproject.toml does not "
                         f"declare (known: {', '.join(proj['extras'])})")
    return extras


# -----------------------------------------------------------------------------
# solution -> chapter

def _strip_regions(lines, is_begin, is_end, replace, where):
    """Replace each begin..end region (marker lines included) by replace(begin_match, lines_so_far)."""
    out, begin = [], None
    for i, line in enumerate(lines):
        if begin is None:
            if m := is_begin(line):
                begin = m
            elif is_end(line):
                raise ValueError(f"{where}, line {i + 1}: END SOLUTION without BEGIN SOLUTION")
            else:
                out.append(line)
        elif is_begin(line):
            raise ValueError(f"{where}, line {i + 1}: nested BEGIN SOLUTION")
        elif is_end(line):
            out.append(replace(begin, out))
            begin = None
    if begin is not None:
        raise ValueError(f"{where}: BEGIN SOLUTION without END SOLUTION")
    return out


def _code_stub(begin, out):
    hint = EXERCISE.match(out[-1]) if out else None
    msg = "Exercise: " + (hint.group(1) if hint else "fill in this block")
    return f"{begin.group(1)}{STUB}{json.dumps(msg, ensure_ascii=False)})"  # json string == valid Python literal


def student_cells(cells):
    """The student version of a list of notebook cells (see the module docstring for the markers)."""
    import nbformat
    out = []
    for n, cell in enumerate(cells, 1):
        kind, lines, where = cell["cell_type"], cell["source"].split("\n"), f"cell {n} ({cell['cell_type']})"
        if kind == "code":
            if lines[0].startswith(SOLUTION_ONLY):
                continue
            lines = _strip_regions(lines, BEGIN.match, END.match, _code_stub, where)
        elif kind == "markdown":
            lines = _strip_regions(lines, lambda l: l.strip() == MD_BEGIN, lambda l: l.strip() == MD_END,
                                   lambda b, o: "*Your answer here.*", where)
        out.append(nbformat.from_dict({**cell, "source": "\n".join(lines)}))
    return out


# -----------------------------------------------------------------------------
# notebooks in memory, files on disk

def _config(root):
    from jupytext.config import load_jupytext_config
    return load_jupytext_config(str(root))  # jupytext.toml: which metadata the .py files keep


def _notebook(cells):
    """A clean notebook: no outputs, no metadata, cell ids derived from content so builds are byte-stable."""
    import nbformat
    nb = nbformat.v4.new_notebook(metadata=json.loads(json.dumps(KERNEL_META)))
    seen = set()
    for cell in cells:
        new = {"code": nbformat.v4.new_code_cell, "markdown": nbformat.v4.new_markdown_cell,
               "raw": nbformat.v4.new_raw_cell}[cell.cell_type](cell.source)
        digest, k = hashlib.sha1(cell.source.encode()).hexdigest(), 0
        while (cid := f"{digest[:8]}{f'-{k}' if k else ''}") in seen:  # identical cells: suffix a counter
            k += 1
        seen.add(cid)
        new.id = cid
        nb.cells.append(new)
    return nb


def _ipynb(nb):
    import jupytext
    return jupytext.writes(nb, fmt="ipynb") + "\n"  # what Jupyter writes on save: trailing newline


def _py(nb, cfg):
    import jupytext
    return jupytext.writes(nb, fmt="py:percent", config=cfg)


def _solution_notebook(src, cfg, proj=None):
    """The solution notebook, stamped: badge cell first, then the set-up cell made for this version."""
    import jupytext
    import nbformat
    proj = proj or project(src.parent.parent)
    cells = [c for c in jupytext.reads(_read(src), fmt="py:percent", config=cfg).cells
             if not (c.cell_type == "markdown" and c.source.startswith(BADGE_MARK))]  # the old stamp
    first = next((c for c in cells if c.cell_type == "code"), None)
    if first is None or not first.source.startswith(SETUP_MARK):
        raise ValueError(f"{src}: the first code cell must be the Colab set-up cell; start the file with\n\n"
                         f"# %%\n{setup_cell(proj)}\n")
    first.source = setup_cell(proj, _setup_extras(first.source, proj, src))
    return _notebook([nbformat.v4.new_markdown_cell(badge(proj, f"solutions/{src.stem}.ipynb"))] + cells)


def _read(path):
    return path.read_text(encoding="utf-8")


def _write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8", newline="\n")  # same bytes on every OS


def sources(root=None):
    return sorted((Path(root or REPO) / "solutions").glob("[0-9][0-9]_*.py"))


def render(src, cfg, proj=None):
    """{path: text} of every file generated from one solution script (its own canonical form included)."""
    proj = proj or project(src.parent.parent)
    sol = _solution_notebook(src, cfg, proj)
    chap_cells = student_cells(sol.cells)
    chap_cells[0].source = badge(proj, f"chapters/{src.stem}.ipynb")  # the student opens the chapter
    chap = _notebook(chap_cells)
    dst = src.parent.parent / "chapters" / src.name
    # Rewriting the solution .py the way jupytext would is what keeps `jupytext --sync` a no-op.
    return {src: _py(sol, cfg), src.with_suffix(".ipynb"): _ipynb(sol),
            dst: _py(chap, cfg), dst.with_suffix(".ipynb"): _ipynb(chap)}


def build(root=None):
    """Generate every notebook and chapter; returns the files whose content changed."""
    root = Path(root or REPO)
    cfg, proj, written = _config(root), project(root), []
    files = {path: text for src in sources(root) for path, text in render(src, cfg, proj).items()}  # all or nothing
    for path, text in files.items():
        if not path.exists() or _read(path) != text:  # untouched files keep their mtime
            _write(path, text)
            written.append(path)
    return written


def _validate(src, files, cfg):
    """Problems with one solution's generated chapter: it must be valid Python with every exercise stubbed."""
    sol_py, chap_py = files[src], files[src.parent.parent / "chapters" / src.name]
    name, problems = f"chapters/{src.name}", []
    try:
        ast.parse(chap_py)
    except SyntaxError as e:
        problems.append(f"{name}: not valid Python after stubbing exercises (line {e.lineno}: {e.msg})")
    problems += [f"{name}: marker {m!r} leaked into the chapter" for m in MARKERS if m in chap_py]
    import jupytext
    kept = [c for c in jupytext.reads(sol_py, fmt="py:percent", config=cfg).cells
            if c.cell_type == "code" and not c.source.startswith(SOLUTION_ONLY)]
    regions = sum(bool(BEGIN.match(l)) for c in kept for l in c.source.split("\n"))
    stubs = chap_py.count(STUB + '"Exercise: ') - sol_py.count(STUB + '"Exercise: ')
    if stubs != regions:
        problems.append(f"{name}: {regions} exercise regions but {stubs} NotImplementedError stubs")
    return problems


def check(root=None):
    """Everything wrong with the generated files, as a list of messages (empty: all good)."""
    root = Path(root or REPO)
    cfg, problems = _config(root), []
    try:
        proj = project(root)
    except (ValueError, KeyError, OSError) as e:
        return [f"pyproject.toml: {e}"]
    for src in sources(root):
        try:
            files = render(src, cfg, proj)
        except ValueError as e:
            problems.append(str(e))
            continue
        for path, text in files.items():
            if not path.exists():
                problems.append(f"{path.relative_to(root)}: missing")
            elif _read(path) != text:
                problems.append(f"{path.relative_to(root)}: out of date")
        problems += _validate(src, files, cfg)
    stems = {src.stem for src in sources(root)}
    for folder, ext in [("solutions", "ipynb"), ("chapters", "py"), ("chapters", "ipynb")]:
        for path in sorted((root / folder).glob(f"[0-9][0-9]_*.{ext}")):
            if path.stem not in stems:  # left behind by a renamed or deleted solution
                problems.append(f"{path.relative_to(root)}: no solutions/{path.stem}.py generates it")
    return problems


# -----------------------------------------------------------------------------
# headline numbers and the headless runner

def headline(chapter: str, **numbers):
    """Report a chapter's headline numbers: one parseable stdout line plus runs/headlines/<chapter>.json."""
    numbers = json.loads(json.dumps(numbers, default=lambda x: x.item()))  # .item(): numpy / torch scalars
    print(f"HEADLINE {chapter} {json.dumps(numbers)}")
    # The runner may redirect; outside a checkout (pip-installed avlab, Colab) write next to the notebook.
    default = REPO / "runs" / "headlines" if (REPO / "solutions").is_dir() else Path("runs") / "headlines"
    _write(Path(os.environ.get("AVLAB_HEADLINES", default)) / f"{chapter}.json", json.dumps(numbers, indent=2) + "\n")
    return numbers


def _headlines(nb):
    """Merge every HEADLINE line the executed notebook printed."""
    found = {}
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            for line in out.get("text", "").splitlines() if out.get("output_type") == "stream" else []:
                if line.startswith("HEADLINE "):
                    found.update(json.loads(line.split(" ", 2)[2]))
    return found


def _rounded(value):
    """A number as a person reads it: at most 3 decimals, 3 significant digits below 1 (0.7646666 -> 0.765)."""
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    if isinstance(value, float) and value == value and abs(value) not in (0.0, float("inf")):
        return float(f"{value:.3g}") if abs(value) < 1 else round(value, 3)
    return value


HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.+?)\s*#*\s*$")


class _Progress:
    """nbclient hooks that print where a notebook is: chapter, section (the last markdown heading), cell k of n,
    seconds since the chapter started. One line per code cell, so a CI log shows what is running and what
    hangs; on a terminal the line is rewritten in place instead."""

    def __init__(self, name, nb, out=None):
        self.name, self.out, self.t0 = name, out or sys.stdout, time.perf_counter()
        self.total = sum(c.cell_type == "code" and bool(c.source.strip()) for c in nb.cells)
        self.done, self.section, self.width = 0, "", 0
        self.tty = self.out.isatty()

    def on_cell_start(self, cell, cell_index):  # every cell, markdown included
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if m := HEADING.match(line):
                    self.section = m.group(1)

    def on_cell_execute(self, cell, cell_index):  # code cells only, just before they run
        self.done += 1
        line = (f"{self.name} | cell {self.done}/{self.total} | {time.perf_counter() - self.t0:.1f} s"
                + (f" | {self.section}" if self.section else ""))
        if self.tty:
            self.out.write("\r" + line.ljust(self.width))
            self.width = len(line)
        else:
            self.out.write(line + "\n")
        self.out.flush()

    def finish(self):
        if self.tty and self.width:  # leave the terminal on a fresh line
            self.out.write("\n")
            self.out.flush()
            self.width = 0


def _kernel_config():
    """Manager-side config for the notebook kernels: encrypt the kernel's ZeroMQ traffic with CurveZMQ keys.

    ipykernel >= 7 warns at every start that a kernel on unencrypted TCP can be eavesdropped; jupyter_client then
    offers `transport_encryption`, and "auto" provisions keys when the kernelspec declares curve support (ipykernel's
    does). Older jupyter_client or a pyzmq built without libsodium: nothing to set, and no warning to fix.
    """
    import zmq
    from jupyter_client.manager import KernelManager
    from traitlets.config import Config
    if "transport_encryption" not in KernelManager.class_trait_names() or not zmq.has("curve"):
        return Config()
    return Config({"KernelManager": {"transport_encryption": "auto"}})


def run(root=None, chapters=None, headline_dir=None, timeout=900):
    """Execute solution notebooks in order; returns {name: {"seconds", "headline", "error"}}.

    chapters: prefixes such as "03" or full names; None runs all. Notebooks are built in memory from the
    .py sources, so what runs is always the current solution even if `build` was not rerun. Prints a progress
    line per code cell, a result line per notebook and a summary table (numbers rounded; the returned results
    and the headline files keep full precision).
    """
    from nbclient import NotebookClient
    root = Path(root or REPO)
    cfg, results, kernel_config = _config(root), {}, _kernel_config()
    env = dict(os.environ, **({"AVLAB_HEADLINES": str(headline_dir)} if headline_dir else {}))
    picked = lambda src, c: src.stem == c or src.stem.startswith(f"{c}_")
    if unknown := [c for c in chapters or [] if not any(picked(src, c) for src in sources(root))]:
        raise ValueError(f"no solution matches {', '.join(unknown)}")
    for src in sources(root):
        if chapters and not any(picked(src, c) for c in chapters):
            continue
        print(f"=== {src.stem}", flush=True)
        t0, error = time.perf_counter(), None
        nb = _solution_notebook(src, cfg)
        progress = _Progress(src.stem, nb)
        try:
            NotebookClient(nb, kernel_name="python3", timeout=timeout, config=kernel_config,
                           on_cell_start=progress.on_cell_start, on_cell_execute=progress.on_cell_execute,
                           resources={"metadata": {"path": str(src.parent)}}).execute(env=env)
        except Exception as e:  # the failing cell's traceback; keep going with the other notebooks
            error = re.sub(r"\x1b\[[0-9;]*m", "", str(e)) or type(e).__name__
            progress.finish()
            print(error, flush=True)
        progress.finish()
        results[src.stem] = {"seconds": time.perf_counter() - t0, "headline": _headlines(nb), "error": error}
        r = results[src.stem]
        print(f"{src.stem}: {'FAILED' if error else 'ok'} in {r['seconds']:.1f} s "
              f"{json.dumps(_rounded(r['headline']))}", flush=True)
    print(f"\n{'notebook':<32} {'status':<7} {'seconds':>8}  headline")
    for name, r in results.items():
        print(f"{name:<32} {'FAILED' if r['error'] else 'ok':<7} {r['seconds']:>8.1f}  "
              f"{json.dumps(_rounded(r['headline']))}")
    return results


# -----------------------------------------------------------------------------

def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m avlab.course", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("build", help="generate solution notebooks and student chapters")
    sub.add_parser("check", help="fail if a generated file is missing or out of date")
    r = sub.add_parser("run", help="execute solution notebooks headless, print headline numbers")
    r.add_argument("chapters", nargs="*", help="chapter numbers (e.g. 01 03); default: all")
    args = p.parse_args(argv)
    try:
        if args.cmd == "build":
            for path in build():
                print(f"wrote {path.relative_to(REPO)}")
        elif args.cmd == "check":
            problems = check()
            for problem in problems:
                print(problem)
            if problems:
                print("run `python -m avlab.course build`")
                return 1
            print(f"ok: {len(sources())} solutions, generated files up to date")
        else:
            return int(any(r["error"] for r in run(chapters=args.chapters or None).values()))
    except ValueError as e:  # marker or Colab-cell mistakes in a solution
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
