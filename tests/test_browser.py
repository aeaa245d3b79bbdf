"""The course's widgets in a real browser: JupyterLab served here, driven by headless Chromium.

nbval runs the notebooks' code but never draws a widget, so a front end that cannot render them (a widget module the
lab lacks shows ipywidgets' error view or "Error displaying widget", a missing widget manager shows the widget's text)
passes it unnoticed. This test starts `jupyter lab` on 127.0.0.1 with its own token and temporary Jupyter folders,
opens a small notebook made of the chapters' kinds of widgets, runs it from the Run menu and checks what the page shows.

Needs Debian's `chromium` and `chromium-driver` (apt-get install chromium chromium-driver) and selenium; skips
without them. Selenium is pointed at those files, so it never downloads a browser or a driver.
"""
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")

if not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()):
    pytest.skip(f"needs Debian's chromium and chromium-driver ({CHROMIUM}, {CHROMEDRIVER}): "
                "apt-get install chromium chromium-driver", allow_module_level=True)
pytest.importorskip("selenium", reason="needs selenium (pip install -e '.[test]')")
pytest.importorskip("jupyterlab", reason="needs jupyterlab (pip install -e '.[course]')")
nbformat = pytest.importorskip("nbformat")

from selenium import webdriver  # noqa: E402
from selenium.common.exceptions import TimeoutException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as EC  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

WIDGET_MANAGER = "@jupyter-widgets/jupyterlab-manager"
STDERR = '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]'

# The chapters' widget kinds, small and fast: sliders and a dropdown redrawing a seaborn figure (chapter 01), a
# selection slider and toggle buttons in boxes (chapter 03), interact_manual around a short training (every chapter).
CELLS = [
    """\
import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
from IPython.display import display""",
    """\
def plot_coefficient(alpha, rule):
    r = np.linspace(0.25, 3, 200)
    k = np.where(r > 1, 1 - np.tanh(alpha * r), 1.0) if rule == "OGM" else 1 / (1 + np.exp(-alpha * (1 / r - 1)))
    fig, ax = plt.subplots(figsize=(5, 2.2))
    sns.lineplot(x=r, y=k, ax=ax)
    ax.set(xlabel="rho", ylabel="k", title=rule)
    plt.show()


controls = dict(alpha=widgets.FloatSlider(value=0.8, min=0.1, max=3, step=0.1, description="alpha"),
                rule=widgets.Dropdown(options=["OGM", "MLB"], description="rule"))
display(widgets.VBox(list(controls.values())), widgets.interactive_output(plot_coefficient, controls))""",
    """\
def show_dead(threshold, when):
    rng = np.random.default_rng(0)
    fraction = rng.uniform(0, 0.5, size=4) * (1 if when == "end" else 0.3) * (1 + 10 * threshold)
    fig, ax = plt.subplots(figsize=(5, 2.2))
    sns.barplot(x=["conv1", "conv2", "conv3", "conv4"], y=fraction, ax=ax)
    ax.set(ylabel="dead fraction", title=f"threshold {threshold}, {when}")
    plt.show()


threshold = widgets.SelectionSlider(options=[0.01, 0.05, 0.1], value=0.05, description="threshold",
                                    continuous_update=False)
when = widgets.ToggleButtons(options=[("after training", "end"), ("at the start", "start")], value="end")
display(widgets.VBox([widgets.HBox([threshold, when]),
                      widgets.interactive_output(show_dead, {"threshold": threshold, "when": when})]))""",
    """\
def train(method="joint", lr=0.5, epochs=30):
    # a logistic regression by gradient descent: a training loop that takes milliseconds
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 2))
    y = (x[:, 0] + 0.3 * x[:, 1] > 0).astype(float)
    w, accuracy = np.zeros(2), []
    for _ in range(epochs):
        p = 1 / (1 + np.exp(-x @ w))
        accuracy.append(float(np.mean((p > 0.5) == y)))
        w -= lr * x.T @ (p - y) / len(y)
    print(f"{method}: final accuracy {accuracy[-1]:.3f}")
    fig, ax = plt.subplots(figsize=(5, 2.2))
    sns.lineplot(x=range(1, epochs + 1), y=accuracy, ax=ax)
    ax.set(xlabel="epoch", ylabel="accuracy", title=method)
    plt.show()


widgets.interact_manual(train, method=widgets.ToggleButtons(options=["joint", "OGM", "MLB"]),
                        lr=widgets.FloatLogSlider(value=0.5, base=10, min=-2, max=0.5),
                        epochs=widgets.IntSlider(value=30, min=1, max=60));""",
]
WIDGET_VIEWS = 4  # displayed widgets: VBox and Output (cell 2), VBox (cell 3), the interact_manual box (cell 4)
FIGURES = 2  # interactive_output draws once when displayed; interact_manual only when its button is pressed


# A widget whose front-end module this JupyterLab lacks, as when a kernel's widget package and the lab extension
# installed for it do not match; then a cell that errs (the last: Run All stops at an error)
BROKEN_CELLS = [CELLS[0], """\
from traitlets import Unicode


class FromAnotherVersion(widgets.FloatSlider):
    _model_module = Unicode("@jupyter-widgets/controls-of-another-version").tag(sync=True)


display(FromAnotherVersion(description="mismatch"))""", """raise RuntimeError("a cell that errs")"""]


def write_notebook(path, cells=CELLS):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source) for source in cells])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


def get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read()


@contextlib.contextmanager
def jupyter_lab(base, disabled=()):
    """`jupyter lab` of this Python on a free port of 127.0.0.1, with every Jupyter folder under `base`.

    `disabled` names lab extensions to switch off, written as `jupyter labextension disable` would.
    """
    root, config = base / "root", base / "config"
    root.mkdir()
    labconfig = config / "labconfig"
    labconfig.mkdir(parents=True)
    # the news prompt would cover the page in screenshots
    off = {"@jupyterlab/apputils-extension:announcements": True, **{name: True for name in disabled}}
    (labconfig / "page_config.json").write_text(json.dumps({"disabledExtensions": off}))
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(config), "JUPYTER_DATA_DIR": str(base / "data"),
           "JUPYTER_RUNTIME_DIR": str(base / "runtime"), "IPYTHONDIR": str(base / "ipython"),
           "JUPYTERLAB_SETTINGS_DIR": str(base / "settings"), "JUPYTERLAB_WORKSPACES_DIR": str(base / "workspaces"),
           "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")}
    env.pop("MPLBACKEND", None)  # as a user's kernel: the inline backend, which tests elsewhere replace by Agg
    token = os.urandom(16).hex()
    log = open(base / "jupyter-lab.log", "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1", "--port=0",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}", "--ServerApp.port_retries=0",
         "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
        + (["--allow-root"] if os.geteuid() == 0 else []),  # CI containers run as root
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = None
    try:
        deadline = time.monotonic() + 90
        while url is None:
            assert server.poll() is None, f"jupyter lab exited ({server.returncode}): {log_text(base)}"
            assert time.monotonic() < deadline, f"jupyter lab did not start in 90 s: {log_text(base)}"
            time.sleep(0.3)
            for info in (base / "runtime").glob(f"jpserver-{server.pid}.json"):
                with contextlib.suppress(ValueError):
                    url = f"http://127.0.0.1:{json.loads(info.read_text())['port']}"
        get(f"{url}/api/status?token={token}")
        yield dict(url=url, token=token, root=root)
    finally:
        kernels = _descendants(server.pid)
        if url:  # a clean stop shuts the kernels down too
            with contextlib.suppress(OSError):
                urllib.request.urlopen(urllib.request.Request(f"{url}/api/shutdown?token={token}", method="POST"),
                                       timeout=5)
        else:
            server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        for kernel in kernels:  # kernels run in sessions of their own; the shutdown stops them, this makes sure
            with contextlib.suppress(Exception):
                kernel.kill()
        log.close()


def log_text(base):
    return (base / "jupyter-lab.log").read_text()[-5000:]


def _descendants(pid):
    try:
        import psutil
        return psutil.Process(pid).children(recursive=True)
    except Exception:  # psutil missing or the server gone: the shutdown request still stops the kernels
        return []


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    home = tmp_path_factory.mktemp("chromium")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--no-first-run",
                "--disable-extensions", "--disable-crash-reporter", "--window-size=1300,1500",
                f"--user-data-dir={home / 'profile'}"):
        options.add_argument(arg)
    # its crash and settings folders away from the user's too
    env = {**os.environ, "XDG_CONFIG_HOME": str(home / "config"), "XDG_CACHE_HOME": str(home / "cache")}
    # an explicit driver: Selenium Manager (which downloads drivers) never runs
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER), env=env), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def run_all_from_menu(driver, lab, notebook, screenshot, timeout=120):
    """Open `notebook`, wait for its kernel, choose Run -> Run All Cells, wait until every cell has run."""
    # a workspace of its own, so that the notebooks opened before stay closed
    driver.get(f"{lab['url']}/lab/workspaces/{Path(notebook).stem}/tree/{notebook}?token={lab['token']}")
    wait = WebDriverWait(driver, timeout)
    wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, ".jp-NotebookPanel .jp-CodeCell")))

    # Run All before the page holds a kernel would ask which kernel to start: wait until the server reports this
    # notebook's kernel idle with the page connected to it
    def kernel_ready(_):
        sessions = json.loads(get(f"{lab['url']}/api/sessions?token={lab['token']}"))
        return any(s["path"] == notebook and s["kernel"]["execution_state"] == "idle"
                   and s["kernel"].get("connections", 0) > 0 for s in sessions)

    wait.until(kernel_ready, message=f"no kernel for {notebook} in {timeout} s")
    wait.until(EC.presence_of_element_located(
        (By.CSS_SELECTOR, '.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook-ExecutionIndicator[data-status="idle"]')))
    wait.until(EC.element_to_be_clickable(
        (By.XPATH, "//*[@id='jp-MainMenu']//*[contains(@class, 'lm-MenuBar-itemLabel') and text()='Run']"))).click()
    wait.until(EC.element_to_be_clickable(
        (By.XPATH, "//*[@id='jp-mainmenu-run']//li[.//*[contains(@class, 'lm-Menu-itemLabel')"
                   " and text()='Run All Cells']]"))).click()
    prompts = "return [...document.querySelectorAll('.jp-NotebookPanel .jp-CodeCell .jp-InputPrompt')]" \
              ".map(p => p.textContent.trim())"
    try:  # "[3]:" once a cell ran; "[ ]:" before, "[*]:" while queued or running
        wait.until(lambda d: (p := d.execute_script(prompts)) and all(t[1:-2].isdigit() for t in p))
    except TimeoutException:
        driver.save_screenshot(str(screenshot))
        pytest.fail(f"not every cell ran in {timeout} s: prompts {driver.execute_script(prompts)} "
                    f"(screenshot: {screenshot})")


def check_page(driver, screenshot, views=WIDGET_VIEWS, figures=FIGURES, timeout=30):
    """Every widget rendered, every figure drawn, no cell erred; on failure the message says what and where."""
    def state(d):
        return d.execute_script(f"""
            const nb = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook');
            // a cell's own outputs; those inside an Output widget belong to that widget
            const outputs = [...nb.querySelectorAll('.jp-Cell .jp-OutputArea-output')]
                            .filter(o => !o.parentElement.closest('.jupyter-widgets'));
            return {{
                views: outputs.filter(o => o.querySelector(':scope > .jupyter-widgets')
                                           && !o.querySelector('.jupyter-widgets-error-widget')).length,
                errors: [...nb.querySelectorAll('{STDERR}')].map(e => e.textContent.slice(0, 2000)),
                // ipywidgets 8 draws a widget it cannot load as an error view; older managers print a line
                broken: outputs.filter(o => o.querySelector('.jupyter-widgets-error-widget')
                                            || o.textContent.includes('Error displaying widget'))
                               .map(o => o.textContent.trim().slice(0, 300)),
                figures: [...nb.querySelectorAll('.jupyter-widgets img')]
                         .filter(i => i.src.startsWith('data:image/png') && i.naturalWidth > 0).length,
                texts: outputs.filter(o => o.dataset.mimeType === 'text/plain').map(o => o.textContent.slice(0, 200)),
            }};""")

    def settled(d):  # widgets render after the kernel is idle: wait until each is drawn or visibly failed
        s = state(d)
        failed = s["broken"] or s["texts"] or s["errors"]
        return s["views"] + len(s["broken"]) + len(s["texts"]) >= views and (s["figures"] >= figures or failed)

    try:
        WebDriverWait(driver, timeout).until(settled)
    except TimeoutException:
        pass  # reported below, with what the page shows
    s = state(driver)
    if not (s["broken"] or s["errors"] or s["views"] != views or s["figures"] < figures):
        return
    driver.save_screenshot(str(screenshot))
    problems = []
    if s["broken"]:  # a click on ipywidgets' error view shows the JavaScript error behind it
        shown = driver.execute_script("return [...document.querySelectorAll('.jupyter-widgets-error-widget')]"
                                      ".map(e => { e.click(); return e.textContent.trim().slice(0, 500); })")
        problems.append(f"{len(s['broken'])} widget(s) failed to display: {shown or s['broken']}")
    if s["views"] != views:
        problems.append(f"{s['views']} of {views} widgets rendered"
                        + (f" (shown as text instead: {s['texts']})" if s["texts"] else "")
                        + f"; is {WIDGET_MANAGER} installed, enabled and of a version that matches ipywidgets?")
    if s["errors"]:
        problems.append(f"error output: {s['errors']}")
    if s["figures"] < figures:
        problems.append(f"{s['figures']} of {figures} matplotlib figures drawn in widget outputs")
    pytest.fail("; ".join(problems) + f" (screenshot: {screenshot})")


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    base = tmp_path_factory.mktemp("jupyter")
    with jupyter_lab(base) as server:
        write_notebook(server["root"] / "widgets.ipynb")
        write_notebook(server["root"] / "broken.ipynb", BROKEN_CELLS)
        yield server


def test_widgets_render_and_interact_manual_draws(browser, lab, tmp_path):
    """Run All from the menu draws every widget and figure without an error; Run Interact draws its figure."""
    run_all_from_menu(browser, lab, "widgets.ipynb", tmp_path / "run-all.png")
    check_page(browser, tmp_path / "after-run-all.png")

    interact = browser.find_element(By.CSS_SELECTOR, ".widget-interact")
    button = interact.find_element(By.XPATH, ".//button[normalize-space()='Run Interact']")
    button.click()
    check_page(browser, tmp_path / "after-run-interact.png", figures=FIGURES + 1)
    text = interact.text
    assert "final accuracy" in text, f"the interact_manual output lacks its printed line: {text!r}"
    assert interact.find_elements(By.CSS_SELECTOR, "img[src^='data:image/png']"), \
        "Run Interact drew no figure inside its widget"


def test_the_check_fails_when_widgets_do_not_render(browser, tmp_path_factory, tmp_path):
    """The same notebook in a JupyterLab whose widget manager is switched off: the check must fail, and say why."""
    with jupyter_lab(tmp_path_factory.mktemp("jupyter-no-widgets"), disabled=[WIDGET_MANAGER]) as broken:
        write_notebook(broken["root"] / "widgets.ipynb")
        run_all_from_menu(browser, broken, "widgets.ipynb", tmp_path / "run-all.png")
        with pytest.raises(pytest.fail.Exception, match=f"0 of {WIDGET_VIEWS} widgets rendered") as failure:
            check_page(browser, tmp_path / "after-run-all.png")
    print(failure.value)  # shown with -rP: what a user of this test would read
    assert "VBox(children=" in str(failure.value) and WIDGET_MANAGER in str(failure.value)
    assert (tmp_path / "after-run-all.png").stat().st_size > 0


def test_the_check_fails_on_a_widget_the_lab_cannot_load_and_on_a_cell_that_errs(browser, lab, tmp_path):
    """A widget whose module the front end lacks (ipywidgets' error view) and a cell's traceback: the check must fail,
    and say why."""
    run_all_from_menu(browser, lab, "broken.ipynb", tmp_path / "run-all.png")
    with pytest.raises(pytest.fail.Exception, match=r"1 widget\(s\) failed to display") as failure:
        check_page(browser, tmp_path / "after-run-all.png", views=1, figures=0)
    print(failure.value)
    assert "@jupyter-widgets/controls-of-another-version is registered" in str(failure.value)  # the JS error
    assert "RuntimeError: a cell that errs" in str(failure.value)
