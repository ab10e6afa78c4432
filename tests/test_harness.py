"""The regeneration harness never damages the committed report; data, cache and notebook
parameters fail clearly; the report's colours have one source."""

import os
import re
import shutil
import socket
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from nbclient import NotebookClient

from helpers import config, data, regenerate, report, runtime
from helpers.plotting import save_table
from helpers.progress import BATCH_ENV, progress
from helpers.report import REQUIRED_COLUMNS

COMMITTED = ["notebooks", "figures", "results", "README.md"]


def snapshot() -> dict[str, tuple[int, int]]:
    """(mtime, size) of every committed output file, walked without following links."""
    files = {}
    for top in COMMITTED:
        path = config.REPO_ROOT / top
        paths = [path] if path.is_file() else [Path(d, f) for d, _, fs in os.walk(path) for f in fs]
        files.update({str(p.relative_to(config.REPO_ROOT)): (p.stat().st_mtime_ns, p.stat().st_size) for p in paths})
    return files


def tiny_notebook(folder: Path, name: str, *cells: str) -> Path:
    """A report-style notebook: a `parameters` cell, `start`, then `cells`."""
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                           "language": "python"}})
    params = nbformat.v4.new_code_cell('profile = "default"\nseed = 0', metadata={"tags": ["parameters"]})
    nb.cells = [params, nbformat.v4.new_code_cell("from helpers import config\n\nconfig.start(profile, seed)"),
                *(nbformat.v4.new_code_cell(c) for c in cells)]
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, folder / name)
    return folder / name


def run_kernel(nb: nbformat.NotebookNode, cwd: Path) -> nbformat.NotebookNode:
    """Execute as Jupyter does (no papermill): kernel `python3` started in `cwd`."""
    NotebookClient(nb, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}).execute()
    return nb


def stdout(cell) -> str:
    return "".join(o.get("text", "") for o in cell.outputs if o.get("name") == "stdout")


def parameters_line(cell) -> str:
    """The first line `config.start` prints (the engine's decision and the `helpers` package follow)."""
    return stdout(cell).splitlines()[0]


# --- profiles, staging and the notebook pattern -------------------------------------------


@pytest.fixture(scope="module")
def smoke_run():
    """`python -m helpers.regenerate --profile smoke --only 00` with no output folders set,
    as a user would run it; what the committed outputs looked like before and after."""
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv(config.FIGURES_DIR_ENV)
        mp.delenv(config.RESULTS_DIR_ENV)
        before = snapshot()
        assert regenerate.main(["--profile", "smoke", "--only", "00"]) == 0
    return before, snapshot(), config.output_root("smoke")


def test_non_default_profile_never_touches_committed_outputs(smoke_run):
    before, after, out = smoke_run
    assert after == before
    assert (out / "figures" / "00_class_counts.png").exists() and (out / "notebooks" / "00_datasets.ipynb").exists()
    timings = pd.read_csv(out / "results" / "timings_smoke.csv")
    assert set(REQUIRED_COLUMNS["timings_default"]) <= set(timings.columns)
    assert timings.notebook.tolist() == ["00_datasets"] and set(timings.profile) == {"smoke"}


def test_editing_the_parameters_cell_changes_what_runs(smoke_run):
    nb = nbformat.read(smoke_run[2] / "notebooks" / "00_datasets.ipynb", as_version=4)
    assert not [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    params = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    assert parameters_line(nb.cells[params + 1]) == "Parameters: profile='smoke', seed=0"
    nb.cells[params].source = 'profile = "smoke"\nseed = 3'  # what a reader does before re-running
    nb.cells = nb.cells[: params + 2]
    rerun = run_kernel(nb, config.NOTEBOOKS_DIR)
    assert parameters_line(rerun.cells[params + 1]) == "Parameters: profile='smoke', seed=3"


def test_failed_notebook_publishes_nothing_and_earlier_timings_are_kept(tmp_path, monkeypatch):
    results, figures = tmp_path / "results", tmp_path / "figures"
    monkeypatch.setenv(config.RESULTS_DIR_ENV, str(results))
    monkeypatch.setenv(config.FIGURES_DIR_ENV, str(figures))
    results.mkdir()
    (results / "table.csv").write_text("committed\n")
    table = "import pandas as pd\nfrom helpers.plotting import save_table\nsave_table(pd.DataFrame({{'a': [1]}}), {!r})"
    nbs = tmp_path / "notebooks"
    tiny_notebook(nbs, "00_ok.ipynb", table.format("ok"))
    failing = tiny_notebook(nbs, "01_fails.ipynb", table.format("table"), "raise RuntimeError('at cell 4')")
    source = failing.read_bytes()

    assert regenerate.main(["--notebooks", str(nbs)]) == 1
    assert (results / "table.csv").read_text() == "committed\n"
    assert pd.read_csv(results / "ok.csv").profile.tolist() == ["default"]
    assert pd.read_csv(results / "timings_default.csv").notebook.tolist() == ["00_ok"]
    assert failing.read_bytes() == source and (nbs / "01_fails.failed.ipynb").exists()
    assert not list(tmp_path.rglob(".staging-*")) and not list(tmp_path.rglob("*.running.ipynb"))
    # the failed copy is not a report notebook: a later run, pytest and the HTML report skip it
    assert [p.name for p in regenerate.notebooks(folder=nbs)] == ["00_ok.ipynb", "01_fails.ipynb"]


def test_only_report_notebooks_match(tmp_path):
    for name in ["00_a.ipynb", "01_b.failed.ipynb", ".01_b.x1y2.running.ipynb", "notes.ipynb", "2_c.ipynb",
                 "03_d-copy.ipynb"]:
        (tmp_path / name).write_text("{}")
    assert [p.name for p in regenerate.notebooks(folder=tmp_path)] == ["00_a.ipynb"]


def test_concurrent_runs_of_one_notebook_do_not_collide(tmp_path):
    nbs = tmp_path / "notebooks"
    tiny_notebook(nbs, "00_same.ipynb", "import time\ntime.sleep(1)")
    cmd = [sys.executable, "-m", "helpers.regenerate", "--notebooks", str(nbs), "--profile", "smoke"]
    procs = [subprocess.Popen(cmd, cwd=config.REPO_ROOT, stdout=subprocess.DEVNULL) for _ in range(2)]
    assert [p.wait(timeout=300) for p in procs] == [0, 0]


def test_runs_finishing_together_keep_every_timing(tmp_path, monkeypatch):
    monkeypatch.setenv(config.RESULTS_DIR_ENV, str(tmp_path))
    monkeypatch.setenv(config.PROFILE_ENV, "smoke")
    together, errors = threading.Barrier(2), []

    def run(name: str) -> None:
        together.wait()
        try:
            for i in range(30):
                regenerate._record({"notebook": f"{i:02d}_{name}", "profile": "smoke", "seconds": 1.0}, "smoke")
        except Exception as err:  # e.g. EmptyDataError: a table read while another run rewrote it
            errors.append(err)

    runs = [threading.Thread(target=run, args=(name,)) for name in ("a", "b")]
    for r in runs:
        r.start()
    for r in runs:
        r.join()
    assert errors == []
    assert len(pd.read_csv(tmp_path / "timings_smoke.csv")) == 60
    assert sorted(p.name for p in tmp_path.iterdir()) == [".timings_smoke.csv.lock", "timings_smoke.csv"]


def test_arguments_that_would_run_everything_or_nothing_are_refused(tmp_path, monkeypatch, capsys):
    def ran(*args, **kwargs):
        raise AssertionError("a notebook ran")

    monkeypatch.setattr(regenerate, "execute", ran)  # what this test guards against must not happen here
    with pytest.raises(SystemExit) as exit_:
        regenerate.main(["--only"])  # once meant every notebook: hours, rewriting the committed outputs
    assert exit_.value.code == 2 and "--only: expected at least one argument" in capsys.readouterr().err
    missing = tmp_path / "typo"
    with pytest.raises(SystemExit):
        regenerate.main(["--notebooks", str(missing)])
    assert f"--notebooks {missing}: no such folder" in capsys.readouterr().err and not missing.exists()
    with pytest.raises(SystemExit):
        regenerate.main(["--notebooks", str(tmp_path)])
    assert f"no report notebooks (NN_name.ipynb) in {tmp_path}" in capsys.readouterr().err


# Stands in for the kernel's SIGINT handling between requests (it ignores them): the file says
# whether the kernel was interrupted after its last cell.
INTERRUPT_RECORDER = "get_ipython().kernel.saved_sigint_handler = lambda *_: open({!r}, 'w').close()"


@pytest.fixture(scope="module")
def rerun_after_kills(tmp_path_factory):
    """`python -m helpers.regenerate` run as a user runs it, on a notebook whose killed runs
    left files behind (and with files of live runs and of another notebook beside them)."""
    root = tmp_path_factory.mktemp("rerun")
    nbs, results, figures = root / "notebooks", root / "results", root / "figures"
    tiny_notebook(nbs, "00_ok.ipynb", INTERRUPT_RECORDER.format(str(root / "interrupted")))
    host, dead = socket.gethostname(), "999999999"  # above any pid_max
    ended = [nbs / ".00_ok.k1ll3d_1.source.ipynb", nbs / ".00_ok.k1ll3d_2.running.ipynb",  # unmarked: older runs
             nbs / f".00_ok.{dead}@{host}-k1ll3d_3.running.ipynb", results / ".staging-00_ok-k1ll3d_4",
             figures / f".staging-00_ok-{dead}@{host}-k1ll3d_5", nbs / "00_ok.failed.ipynb"]
    kept = [nbs / f".00_ok.{os.getpid()}@{host}-l1v3_run.running.ipynb",  # this process: a live run
            nbs / ".00_ok.1@elsewhere-l1v3_run.running.ipynb",  # another machine's: cannot be checked
            nbs / ".01_other.k1ll3d_1.running.ipynb", results / ".staging-01_other-k1ll3d_4"]  # another notebook's
    for path in ended + kept:
        path.parent.mkdir(parents=True, exist_ok=True)
        if "staging" in path.name:
            path.mkdir()
            (path / "table.csv").write_text("a\n1\n")
        else:
            path.write_text("{}")
    env = {**os.environ, config.RESULTS_DIR_ENV: str(results), config.FIGURES_DIR_ENV: str(figures)}
    run = subprocess.run([sys.executable, "-m", "helpers.regenerate", "--notebooks", str(nbs)], cwd=config.REPO_ROOT,
                         env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    return run, root, ended, kept


def test_the_next_run_removes_what_killed_runs_left(rerun_after_kills):
    run, root, ended, kept = rerun_after_kills
    assert [p for p in ended if p.exists()] == [] and [p for p in kept if not p.exists()] == []
    assert (root / "notebooks" / "00_ok.ipynb").exists() and "removed leftovers of ended runs" in run.stdout


def test_a_clean_run_prints_no_kernel_noise(rerun_after_kills):
    run, root, _, _ = rerun_after_kills
    assert "without encryption" not in run.stderr and "ERROR" not in run.stderr, run.stderr
    assert not (root / "interrupted").exists()  # the kernel was shut down, not interrupted


def test_start_validates_and_routes_outputs_by_profile(monkeypatch, capsys):
    monkeypatch.setenv(config.PROFILE_ENV, "default")  # restored after `start` changes it
    monkeypatch.delenv(config.FIGURES_DIR_ENV)
    for seed in (-1, 1.5, True, "0"):
        with pytest.raises(ValueError, match=rf"seed={seed!r}.*valid: an integer >= 0"):
            config.start("smoke", seed)
    with pytest.raises(ValueError, match="profile='fast'.*valid: default, paper, smoke"):
        config.start("fast", 0)
    config.start("smoke", 0, ipc=10)
    assert capsys.readouterr().out.startswith("Parameters: profile='smoke', seed=0, ipc=10 (figures and tables go")
    assert config.figures_dir() == config.output_root("smoke") / "figures" != config.REPO_ROOT / "figures"
    assert config.figures_dir("default") == config.REPO_ROOT / "figures"
    with pytest.raises(ValueError, match="profile"):  # a table that says another profile
        save_table(pd.DataFrame({"a": [1], "profile": ["default"]}), "mixed")


def test_start_names_the_helpers_package_it_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(config.PROFILE_ENV, "default")  # restored after `start` changes it
    monkeypatch.chdir(config.NOTEBOOKS_DIR)
    config.start("default", 0)
    assert capsys.readouterr().out.splitlines()[2] == "helpers from ../helpers (this clone)"  # no machine path
    other = tmp_path / "other clone"
    shutil.copytree(config.REPO_ROOT / "helpers", other / "helpers", ignore=shutil.ignore_patterns("__pycache__"))
    run = subprocess.run([sys.executable, "-c", "from helpers import config; config.start('smoke', 0)"], cwd=tmp_path,
                         env={**os.environ, "PYTHONPATH": str(other)}, capture_output=True, text=True, check=True)
    assert run.stdout.splitlines()[2] == f"helpers from {other / 'helpers'}"


def test_relative_paths_count_from_where_the_command_ran(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(config.DATA_ROOT_ENV, "datasets")
    assert runtime.data_root() == config.REPO_ROOT / "datasets"  # a kernel started by hand: the clone's root
    config.anchor_paths()
    assert os.environ[config.DATA_ROOT_ENV] == str(tmp_path / "datasets")


def test_kernel_in_notebooks_imports_this_clone_not_another_clones_install(tmp_path, monkeypatch):
    other = tmp_path / "other_clone"
    (other / "helpers").mkdir(parents=True)
    (other / "helpers" / "__init__.py").write_text("")
    # Stands in for the shared venv's editable install of another clone: a finder right after
    # the path-based one, as setuptools' editable finder acts.
    (tmp_path / "sitecustomize.py").write_text(textwrap.dedent(f"""
        import importlib.util, sys
        from importlib.machinery import PathFinder
        class OtherClone:
            @staticmethod
            def find_spec(name, path=None, target=None):
                if name == "helpers":
                    return importlib.util.spec_from_file_location(
                        "helpers", {str(other / "helpers" / "__init__.py")!r},
                        submodule_search_locations=[{str(other / "helpers")!r}])
        sys.meta_path.insert(sys.meta_path.index(PathFinder) + 1, OtherClone)
        """))
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "import helpers, pathlib\nprint(pathlib.Path(helpers.__file__).resolve())")])
    assert stdout(run_kernel(nb, tmp_path).cells[0]).strip() == str(other / "helpers" / "__init__.py")  # the stand-in
    assert stdout(run_kernel(nb, config.NOTEBOOKS_DIR).cells[0]).strip() == str(
        config.REPO_ROOT / "helpers" / "__init__.py")


# --- the Makefile (dry runs) ---------------------------------------------------------------

SHOW_DATA_ROOT = 'show-data-root: ; +@printf "%s\\n" "$$DC_DATA_ROOT"'  # `+`: runs under -n too


def make_dry_run(typed_in: Path, *args: str, unset: tuple[str, ...] = (), **env: str) -> str:
    """What `make -n -C <clone> ARGS` prints when typed in `typed_in` (whose shell sets PWD)."""
    if shutil.which("make") is None:
        pytest.skip("no make")
    unset = {"DC_DATA_ROOT", "VENV", *unset}
    env = {**{k: v for k, v in os.environ.items() if k not in unset}, "PWD": str(typed_in), **env}
    return subprocess.run(["make", "-s", "-n", "-C", str(config.REPO_ROOT), *args], cwd=typed_in, env=env,
                          capture_output=True, text=True, check=True).stdout


@pytest.mark.parametrize("given", ["command line", "environment"])
def test_make_resolves_the_data_root_from_where_it_was_typed(tmp_path, given):
    typed_in = tmp_path / "a folder"
    typed_in.mkdir()
    for root, expected in [("my data/sets", typed_in / "my data" / "sets"), ("/abs/it's here", Path("/abs/it's here"))]:
        args, env = ([f"DC_DATA_ROOT={root}"], {}) if given == "command line" else ([], {"DC_DATA_ROOT": root})
        out = make_dry_run(typed_in, "--eval", SHOW_DATA_ROOT, "show-data-root", *args, **env)
        assert out.splitlines()[-1] == str(expected)
    # typed in the clone itself
    out = make_dry_run(config.REPO_ROOT, "--eval", SHOW_DATA_ROOT, "show-data-root", "DC_DATA_ROOT=../data")
    assert out.splitlines()[-1] == str(config.REPO_ROOT / ".." / "data")


def test_make_without_home_keeps_the_venv_in_the_clone(tmp_path):
    out = make_dry_run(tmp_path, "setup", unset=("HOME",))
    assert "HOME is not set" in out and f"-m venv {config.REPO_ROOT / '.venv'}" in out and " /.venvs" not in out


def test_progress_in_batch_runs_prints_one_line_and_no_bar(monkeypatch, capsys):
    monkeypatch.setenv(BATCH_ENV, "1")
    assert list(progress(range(3), desc="train")) == [0, 1, 2]
    out = capsys.readouterr()
    assert out.err == "" and re.fullmatch(r"train: 3 steps in \d+\.\d min\n", out.out)


# --- the report refuses what is not the default profile's ---------------------------------


def test_report_refuses_other_profile_or_malformed_results(tmp_path, monkeypatch):
    for name, columns in REQUIRED_COLUMNS.items():
        pd.DataFrame({c: [1] for c in columns}).assign(profile="default").to_csv(tmp_path / f"{name}.csv", index=False)
    pd.DataFrame({"model": ["a"], "eps": [0.3], "accuracy": [1.0], "profile": ["smoke"]}).to_csv(
        tmp_path / "cw_fgsm.csv", index=False)
    pd.DataFrame({"model": ["a"], "profile": ["default"]}).to_csv(tmp_path / "distillation.csv", index=False)
    with pytest.raises(report.ResultsIncomplete, match=r"(?s)distillation\.csv lacks column.*cw_fgsm\.csv holds "
                                                       r"rows of profile\(s\) \['smoke'\]"):
        report.results_tables(tmp_path)
    readme = tmp_path / "README.md"
    readme.write_text("<!-- BEGIN timings -->\nkept\n<!-- END timings -->\n")
    monkeypatch.setattr(report, "README", readme)
    monkeypatch.setenv(config.RESULTS_DIR_ENV, str(tmp_path))
    assert report.main([]) == 1 and "kept" in readme.read_text()


def test_blocks_of_missing_tables_are_pending_never_rendered(tmp_path):
    for name, columns in REQUIRED_COLUMNS.items():
        if name not in ("cw", "timings_default"):
            pd.DataFrame({c: [1] for c in columns}).assign(profile="default").to_csv(tmp_path / f"{name}.csv",
                                                                                     index=False)
    tables = report.results_tables(tmp_path)
    assert report.pending("cw", tables) and report.pending("abstract", tables) and report.pending("timings", tables)
    assert not report.pending("distillation", tables)
    text = report.fill_readme("<!-- BEGIN cw -->\nold\n<!-- END cw -->\n", tables)
    assert "Pending" in text and "results/cw.csv" in text and "old" not in text


# --- data files -----------------------------------------------------------------------------


@pytest.fixture
def data_root(tmp_path, monkeypatch):
    monkeypatch.setenv(config.DATA_ROOT_ENV, str(tmp_path))
    data.load.cache_clear()
    yield tmp_path
    data.load.cache_clear()


def fake_raw(root: Path, files: dict[str, int]) -> Path:
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name, size in files.items():
        with open(raw / name, "wb") as f:
            f.truncate(size)
    return raw


def test_truncated_file_is_named_with_its_expected_size(data_root):
    fake_raw(data_root, {"t10k-images-idx3-ubyte": 7840016 - 100, "t10k-labels-idx1-ubyte": 10008})
    with pytest.raises(data.DatasetInvalid, match="t10k-images-idx3-ubyte has 7839916 bytes, expected 7840016") as err:
        data.load("mnist", False)
    assert "internet" not in str(err.value)


def test_missing_label_file_is_named_and_nothing_is_downloaded(data_root):
    fake_raw(data_root, {"t10k-images-idx3-ubyte": 7840016})
    with pytest.raises(data.DatasetMissing, match=r"(?s)t10k-labels-idx1-ubyte not found.*t10k-labels-idx1-ubyte "
                                                  r"\(10008 bytes\)") as err:
        data.load("mnist", False)
    assert "could not download" not in str(err.value)


def test_checksum_mismatch_is_reported(data_root):
    fake_raw(data_root, {"t10k-images-idx3-ubyte": 7840016, "t10k-labels-idx1-ubyte": 10008})
    (data_root / "SHA256SUMS").write_text("0" * 64 + "  MNIST/raw/t10k-images-idx3-ubyte\n")
    with pytest.raises(data.DatasetInvalid, match="t10k-images-idx3-ubyte does not match its checksum.*" + "0" * 64):
        data.load("mnist", False)


def test_no_folders_appear_under_a_data_root_without_the_data(data_root):
    with pytest.raises(data.DatasetMissing, match="Fix:"):
        data.load("fashion", True)
    assert list(data_root.iterdir()) == []


def test_failed_download_into_data_leaves_no_empty_folders(tmp_path, monkeypatch):
    monkeypatch.delenv(config.DATA_ROOT_ENV, raising=False)
    monkeypatch.setattr(config, "REPO_ROOT", tmp_path)  # the default root, data/, of a fresh clone

    def offline(self):
        os.makedirs(self.raw_folder, exist_ok=True)
        raise OSError("offline")

    monkeypatch.setattr(data.DATASETS["mnist"][0], "download", offline)
    data.load.cache_clear()
    try:
        with pytest.raises(data.DatasetMissing, match="(?s)could not download them.*OSError: offline"):
            data.load("mnist", True)
    finally:
        data.load.cache_clear()
    assert not (tmp_path / "data" / "MNIST").exists()


# --- cache problems ------------------------------------------------------------------------












# --- what the notebooks show ---------------------------------------------------------------


def test_notebooks_leave_wall_times_to_the_readme():
    """A notebook's own timer disagrees with the README's timings on every warm-cache re-run;
    the harness measures each notebook (`timings_<profile>.csv`)."""
    printed = [f"{path.name}: {line.strip()}" for path in regenerate.notebooks()
               for cell in nbformat.read(path, as_version=4).cells if cell.cell_type == "code"
               for line in cell.source.splitlines() if re.search(r"(?i)notebook wall time", line)]
    assert printed == []


COLOR_LITERAL = re.compile(r"""["']#[0-9a-fA-F]{3}(?:[0-9a-fA-F]{3})?["']"""
                           r"""|\b(?:color|colors|c|facecolor|edgecolor|mfc|mec|palette)\s*=\s*[\[(]?\s*["']""")


def test_colours_come_only_from_the_colour_map():
    sources = {p.name: p.read_text() for p in (config.REPO_ROOT / "helpers").glob("*.py") if p.name != "plotting.py"}
    for path in regenerate.notebooks():
        for i, cell in enumerate(nbformat.read(path, as_version=4).cells):
            if cell.cell_type == "code":
                sources[f"{path.name} cell {i}"] = cell.source
    found = [f"{where}: {line.strip()}" for where, text in sources.items() for line in text.splitlines()
             if COLOR_LITERAL.search(line)]
    assert found == [], "colours belong in helpers.plotting.CONDITION_COLORS"

