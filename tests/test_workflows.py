"""The GitHub workflows cannot run here, so they are checked here: actionlint on every workflow, and the release's
tag check run for real on this checkout's pyproject.toml."""
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.yml"))
# The `test` extra installs actionlint's binary into the venv's bin/, which is not on PATH when the venv's python
# is called by its full path (as scripts/test.sh does).
ACTIONLINT = shutil.which("actionlint", path=os.pathsep.join([str(Path(sys.executable).parent),
                                                               os.environ.get("PATH", "")]))
needs_actionlint = pytest.mark.skipif(
    ACTIONLINT is None, reason="actionlint is not installed (it comes with the `test` extra: pip install -e '.[test]')")


def actionlint(*paths, cwd=REPO):
    return subprocess.run([ACTIONLINT, "-no-color", *map(str, paths)], cwd=cwd, capture_output=True, text=True,
                          timeout=120)


def load(name):
    return yaml.safe_load((REPO / ".github" / "workflows" / name).read_text())


def test_both_workflows_exist():
    assert {p.name for p in WORKFLOWS} >= {"ci.yml", "release.yml"}


@needs_actionlint
def test_actionlint_finds_nothing_in_the_workflows():
    result = actionlint(*(p.relative_to(REPO) for p in WORKFLOWS))
    assert result.returncode == 0, f"actionlint findings:\n{result.stdout}{result.stderr}"


@needs_actionlint
def test_actionlint_does_report_a_broken_workflow(tmp_path):
    # The linter really reads the files: an undefined job in `needs` and a bad expression are both reported.
    broken = tmp_path / ".github" / "workflows" / "broken.yml"
    broken.parent.mkdir(parents=True)
    broken.write_text("on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    needs: nowhere\n"
                      "    steps:\n      - run: echo ${{ github.no_such_thing( }}\n")
    result = actionlint(broken.relative_to(tmp_path), cwd=tmp_path)
    assert result.returncode != 0 and "nowhere" in result.stdout


def test_ci_runs_the_readme_test_command():
    readme = (REPO / "README.md").read_text()
    assert "bash scripts/test.sh" in readme
    steps = load("ci.yml")["jobs"]["test"]["steps"]
    assert any(step.get("run", "").strip() == "bash scripts/test.sh" for step in steps)


def test_release_publishes_by_trusted_publishing_on_version_tags():
    wf = load("release.yml")
    assert wf[True]["push"]["tags"] == ["v*"]  # YAML 1.1 reads the key `on` as True
    publish = wf["jobs"]["publish"]
    assert publish["permissions"] == {"id-token": "write"} and publish["environment"] == "pypi"
    assert any(step.get("uses", "").startswith("pypa/gh-action-pypi-publish@") for step in publish["steps"])
    assert not any("password" in step.get("with", {}) for step in publish["steps"])  # no token: trusted publishing


def pyproject_version():
    return re.search(r'^version = "(.+)"', (REPO / "pyproject.toml").read_text(), re.M).group(1)


def test_package_version_is_pyproject_version():
    # release.yml checks the tag against pyproject.toml only; what `avlab.about()` prints must agree with both.
    import avlab
    assert avlab.__version__ == pyproject_version()


@pytest.mark.parametrize("offset, ok", [(0, True), (1, False)])
def test_release_tag_check_accepts_only_the_pyproject_version(tmp_path, offset, ok):
    [step] = [s for s in load("release.yml")["jobs"]["build"]["steps"] if "TAG" in s.get("env", {})]
    version = pyproject_version()
    major, minor, patch = version.split(".")[:3]
    tag = f"v{major}.{minor}.{int(patch) + offset}"
    (tmp_path / "python").symlink_to(sys.executable)  # the step calls `python`, as on the runner
    env = dict(os.environ, TAG=tag, PATH=f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    result = subprocess.run(["bash", "-euo", "pipefail", "-c", step["run"]], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=60)
    assert (result.returncode == 0) is ok, result.stdout + result.stderr
    if not ok:
        assert f"tag {tag} does not match pyproject.toml's version {version}" in result.stdout
