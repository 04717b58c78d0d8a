"""The Pareto search (issue #26) without Ray: Optuna's real sampler behind Tune's ``OptunaSearch``, the real
setting trainable (``run_setting``) with its Train runs faked, the real search script and table script; and
the trainable's restart from its Tune checkpoint. The search through real Ray: the slow test at the end."""
from __future__ import annotations

import contextlib
import json
import shutil
import zlib
from pathlib import Path

import pytest

from tests.conftest import run_main, run_script
from tests.sweeps.test_sweeps import FakeResult, fake_run_experiment, tiny_camvid

SEARCHED = ("hfd", "bsd_region", "bsd_pixel", "alpha", "beta", "gamma")


def fake_replicate(config: dict, seed: int, **_: object) -> dict:
    """A seed's final mIoUs made from the setting's values: distinct per setting and seed."""
    key = json.dumps({k: config.get(k) for k in SEARCHED}, sort_keys=True).encode()
    return {"seed": seed, "miou_cnn": 20 + zlib.crc32(key) % 1000 / 100 + seed,
            "miou_vit": 20 + zlib.adler32(key) % 997 / 100 - seed / 2, "time_s": 10.0 + seed}


class TuneSession:
    """``ray.tune.report`` and ``ray.tune.get_checkpoint`` for a trainable run in this process."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.reports, self.checkpoint = folder, [], None

    def report(self, metrics: dict, checkpoint=None) -> None:
        import ray.tune
        self.reports.append(metrics)
        if checkpoint is not None:  # Tune copies it into the trial folder before report returns
            kept = self.folder / f"checkpoint_{len(list(self.folder.glob('*'))):06d}"
            shutil.copytree(checkpoint.path, kept)
            self.checkpoint = ray.tune.Checkpoint.from_directory(str(kept))

    def get_checkpoint(self):
        return self.checkpoint


@pytest.fixture
def tune_session(monkeypatch, tmp_path: Path) -> TuneSession:
    import ray.tune
    session = TuneSession(tmp_path / "tune")
    monkeypatch.setattr(ray.tune, "report", session.report)
    monkeypatch.setattr(ray.tune, "get_checkpoint", session.get_checkpoint)
    return session


class FakeSearch:
    """Stands in for Tune's search loop: ask the searcher, run the trainable, tell it the last report, and
    write the trial's files as Tune would (``error.txt`` for a failed one). Setting ``fail`` (0-based)
    fails on seed 1."""

    def __init__(self, tune_session: TuneSession, fail: int | None = None) -> None:
        self.session, self.fail, self.searcher, self.current = tune_session, fail, None, -1

    def replicate(self, config: dict, seed: int, **_: object) -> dict:
        from cotrain.errors import ReplicateError
        from cotrain.search import cause
        if self.current == self.fail and seed == 1:
            error = RuntimeError("Training failed due to worker errors\nFloatingPointError: loss bsd_p_cnn is NaN")
            raise ReplicateError(f"seed 1 of this setting failed: {cause(error)}")
        return fake_replicate(config, seed)

    def run_experiment(self, space: dict, *, name: str, storage: str, search_alg=None, num_samples: int = 1,
                       trainable=None, resources=None, **rest: object) -> list[FakeResult]:
        if search_alg is None:
            return fake_run_experiment(space, name=name, storage=storage, **rest)
        self.searcher, results = search_alg, []
        for index in range(num_samples):
            self.current, trial_id = index, f"fake1_{index:05d}"
            config = {**space, **search_alg.suggest(trial_id)}
            self.session.reports, self.session.checkpoint, error = [], None, None
            try:
                trainable(config, storage=storage, experiment=name, resources=resources)
            except Exception as exc:  # Tune records it; the search goes on
                error = exc
            last = self.session.reports[-1] if self.session.reports else {}
            search_alg.on_trial_complete(trial_id, result=None if error else last, error=error is not None)
            self._write(Path(storage, name, f"run_setting_{trial_id}_{index}"), config, trial_id, error)
            results.append(FakeResult(config, last, error))
        return results

    def _write(self, trial: Path, config: dict, trial_id: str, error: Exception | None) -> None:
        trial.mkdir(parents=True)
        (trial / "params.json").write_text(json.dumps(config))
        lines = [json.dumps({**r, "trial_id": trial_id, "config": config}) for r in self.session.reports]
        (trial / "result.json").write_text("".join(line + "\n" for line in lines))
        if error is not None:
            (trial / "error.txt").write_text(f"Failure # 1\nTraceback ...\ncotrain.search.{type(error).__name__}: "
                                             f"{error}\n")


@pytest.fixture
def fake_search(monkeypatch, tune_session: TuneSession) -> FakeSearch:
    """The search's Ray session and experiments replaced by ``FakeSearch``; its setting 2 (0-based) fails."""
    from cotrain import launch, search
    fake = FakeSearch(tune_session, fail=2)
    monkeypatch.setattr(launch, "ray_session", lambda **_: contextlib.nullcontext())
    monkeypatch.setattr(launch, "run_experiment", fake.run_experiment)
    monkeypatch.setattr(search, "train_replicate", fake.replicate)
    return fake


def table_rows(markdown: str, heading: str) -> list[str]:
    """The body rows of the first markdown table under ``heading``."""
    lines = markdown.split(heading, 1)[1].splitlines()[1:]
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    end = next((i for i, line in enumerate(lines[start:], start) if not line.startswith("|")), len(lines))
    return lines[start + 2:end]  # after the header and separator


def non_dominated(points: dict[int, tuple[float, float]]) -> set[int]:
    """Brute force: the points no other point beats on one coordinate while matching it on the other."""
    def dominates(a, b):
        return all(x >= y for x, y in zip(a, b)) and any(x > y for x, y in zip(a, b))
    return {i for i, p in points.items() if not any(dominates(q, p) for j, q in points.items() if j != i)}


def test_pareto_search_front_is_the_non_dominated_set_of_the_mean_gains(fake_search: FakeSearch, tmp_path: Path,
                                                                          monkeypatch, capsys) -> None:
    from analysis.make_tables import main as make_tables

    code = run_main(["sweeps/search.py", "--objective", "pareto", "--seeds", "2", "--trials", "6", "--preset",
                     "smoke", "--storage", str(tmp_path), "--name", "p", "--quiet"], monkeypatch)
    shown = capsys.readouterr()
    assert code == 0, shown.err  # one setting failed: the search still ends with a front
    assert "FAILED" in shown.out and "seed 1 of this setting failed: FloatingPointError: loss bsd_p_cnn" in shown.out
    vanilla = {json.loads(p.read_text())["seed"]: json.loads((p.parent / "result.json").read_text().splitlines()[-1])
               for p in (tmp_path / "p-vanilla").glob("*/params.json")}
    finals = {}
    for index, trial in enumerate(sorted((tmp_path / "p").glob("run_setting_*"))):
        last = json.loads((trial / "result.json").read_text().splitlines()[-1])
        if "epoch" in last:  # finished: its last report holds the means
            finals[index + 1] = last
    assert sorted(finals) == [1, 2, 4, 5, 6]  # setting 3 failed on seed 1
    for last in finals.values():  # a seed's gain is measured against the Vanilla run of the same seed
        assert [r["gain_cnn"] for r in last["replicates"]] == \
            pytest.approx([r["miou_cnn"] - vanilla[r["seed"]]["miou_cnn"] for r in last["replicates"]])
    told = [t.values for t in fake_search.searcher._ot_study.trials if t.values]  # what Optuna's sampler got
    assert told == [[f["gain_cnn"], f["gain_vit"]] for f in finals.values()]

    assert make_tables(["--results", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    front = {int(row.split("|")[1]) for row in table_rows(out, "### Pareto front of search p")}
    assert front == non_dominated({i: (f["gain_cnn"], f["gain_vit"]) for i, f in finals.items()})
    settings = table_rows(out, "### Every setting of search p")
    assert "paper default" in settings[0] and "| 3 " in settings[2] and "failed" in settings[2]
    assert "Setting 3 failed: seed 1 of this setting failed: FloatingPointError" in out
    tables = tmp_path / "tables"
    assert (tables / "search_p.md").is_file() and (tables / "search_p_settings.md").is_file()
    assert all((tables / f"search_p_{plot}.{ext}").is_file() for plot in ("pareto", "importance")
               for ext in ("png", "pdf"))


def test_a_failed_seed_fails_its_setting_and_a_restart_keeps_the_finished_seeds(tune_session: TuneSession,
                                                                               monkeypatch) -> None:
    from cotrain import search
    from cotrain.config import TrainConfig
    from cotrain.errors import ReplicateError
    calls: list[int] = []

    def replicate(config: dict, seed: int, **_: object) -> dict:
        calls.append(seed)
        if calls == [0, 1]:
            raise ReplicateError("seed 1 of this setting failed: FloatingPointError: loss is NaN")
        return fake_replicate(config, seed)

    monkeypatch.setattr(search, "train_replicate", replicate)
    plan = search.SearchPlan("pareto", 2, {0: (30.0, 31.0), 1: (32.0, 29.0)})
    config = {**TrainConfig(preset="smoke").to_dict(), **search.PAPER_DEFAULT, search.SEARCH_KEY: plan.to_json()}
    with pytest.raises(ReplicateError, match="seed 1 of this setting failed"):
        search.run_setting(dict(config), storage="unused", experiment="s", resources=None)
    first = tune_session.reports[-1]
    assert first["replicate"] == 0 and "epoch" not in first  # seed 0 kept in a checkpoint; the setting unfinished

    search.run_setting(dict(config), storage="unused", experiment="s", resources=None)  # Tune's retry / --resume
    assert calls == [0, 1, 1]  # seed 0 was not trained again
    last = tune_session.reports[-1]
    assert last["epoch"] == config["epochs"] and last["seeds_done"] == 2
    assert last["replicates"][0] == first["replicates"][0]
    gains = [fake_replicate(config, s)["miou_cnn"] - plan.vanilla[s][0] for s in (0, 1)]
    assert last["gain_cnn"] == pytest.approx(sum(gains) / 2)


def test_bad_objective_exits_2_in_one_line(monkeypatch, capsys, tmp_path: Path) -> None:
    code = run_main(["sweeps/search.py", "--objective", "paretoo", "--storage", str(tmp_path)], monkeypatch)
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert err.startswith("error: --objective 'paretoo' is invalid: allowed: delta, miou_cnn, miou_vit, pareto, ")


def test_dry_run_counts_settings_times_seeds_on_camvid(monkeypatch, capsys, tmp_path: Path) -> None:
    data = tiny_camvid(tmp_path / "camvid")
    code = run_main(["sweeps/search.py", "--objective", "pareto", "--dataset", "camvid", "--data-root", str(data),
                     "--preset", "cpu", "--epochs", "5", "--seeds", "2", "--trials", "8", "--dry-run",
                     "--storage", str(tmp_path / "runs")], monkeypatch)
    out = capsys.readouterr().out
    assert code == 0
    assert out.startswith("8 settings x 2 seeds = 16 runs, + 2 Vanilla runs (seeds 0-1); preset cpu, 5 epochs, "
                          "mobilenet_v2+mit_b1 on camvid")
    assert not (tmp_path / "runs").exists()
    # 8 settings never leave TPE's random start-up: the user is told (the CamVid search of issue #26 was one).
    assert out.rstrip().splitlines()[-1].startswith("note: 8 settings are all within TPE's 10 random start-up trials")


def test_only_searches_past_tpes_random_start_up_go_unwarned() -> None:
    from optuna.samplers import TPESampler

    from cotrain.search import TPE_STARTUP_TRIALS, random_start_note
    assert TPESampler()._n_startup_trials == TPE_STARTUP_TRIALS  # what Ray's OptunaSearch builds
    assert random_start_note(TPE_STARTUP_TRIALS) and random_start_note(1)
    assert random_start_note(TPE_STARTUP_TRIALS + 1) is None


@pytest.mark.slow
def test_pareto_search_through_ray_then_its_tables(repo: Path, tmp_path: Path) -> None:
    done = run_script([str(repo / "sweeps" / "search.py"), "--objective", "pareto", "--seeds", "2", "--trials", "1",
                       "--preset", "smoke", "--epochs", "1", "--storage", str(tmp_path), "--name", "s", "--quiet"],
                      cwd=tmp_path, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert len(list((tmp_path / "s-vanilla").glob("*/result.json"))) == 2
    assert len(list((tmp_path / "s" / "_replicates").glob("seed*/_train/train-*"))) == 2  # 1 setting x 2 seeds
    tables = run_script([str(repo / "analysis" / "make_tables.py"), "--results", str(tmp_path)], cwd=tmp_path)
    assert tables.returncode == 0, tables.stderr
    assert "### Pareto front of search s" in tables.stdout and (tmp_path / "tables" / "search_s_pareto.png").is_file()
