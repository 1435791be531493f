"""Model lifecycle: alias history and compare-and-swap, the model of the day, rollback,
fallback to the previous champion, model cards and the `batchscore models` CLI."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from batchscore.cli import main as cli_main
from batchscore.models import registry as registry_module
from batchscore.models.registry import AliasConflict, ModelRegistry, RegistryError
from batchscore.settings import REPO_ROOT, load_settings
from batchscore.storage.lake import Lake
from batchscore.storage.warehouse import open_warehouse
from jobs import resolve_model
from tests.conftest import settings_env

MODEL = "churn_xgb"


def fake_version(registry: ModelRegistry, tmp: Path, marker: str) -> int:
    """A version whose artifacts are small files: enough for aliases, checksums and cards."""
    src = tmp / f"art-{marker}"
    src.mkdir()
    for name in ("model.ubj", "model.onnx", "reference.parquet"):
        (src / name).write_text(f"{name} {marker}")
    meta = {
        "pipeline": "churn",
        "predicts": "Probability that a customer cancels within 30 days.",
        "label": "churned",
        "feature_set": {"name": "churn_features", "version": 1, "hash": "abc123", "features": ["age"]},
        "training_window": {"start": "2026-10-01", "end": "2026-10-10", "labels_landed_by": "2026-10-13"},
        "metrics": {"holdout_auc": 0.81, "holdout_logloss": 0.4, "holdout_rows": 100, "train_rows": 400},
        "metrics_by_segment": {"contract_monthly=1": {"rows": 60, "auc": 0.78, "logloss": 0.45}},
    }
    return registry.register(src, meta).version


class Clock:
    """A settable UTC clock for the registry (simulated days)."""

    def __init__(self, start: datetime):
        self.at = start

    def __call__(self) -> datetime:
        return self.at


@pytest.fixture
def clock(monkeypatch) -> Clock:
    clock = Clock(datetime(2026, 10, 1, 12, tzinfo=UTC))
    monkeypatch.setattr(registry_module, "now", clock)
    return clock


@pytest.fixture
def three_versions(churn_settings, tmp_path, clock):
    registry = ModelRegistry(Lake(churn_settings.platform.lake_url), MODEL)
    versions = [fake_version(registry, tmp_path, str(i)) for i in range(3)]
    registry.move_alias("champion", 1, reason="first", expected_current=None)  # 2026-10-01 12:00
    clock.at = datetime(2026, 10, 5, 23, 59, tzinfo=UTC)
    registry.move_alias("champion", 2, reason="better", expected_current=1)
    clock.at = datetime(2026, 10, 9, 0, 0, tzinfo=UTC)
    registry.move_alias("champion", 3, reason="better still", expected_current=2)
    return registry, versions


def test_register_writes_a_model_card_from_the_metadata(churn_settings, tmp_path):
    registry = ModelRegistry(Lake(churn_settings.platform.lake_url), MODEL)
    version = registry.get(fake_version(registry, tmp_path, "x"))
    card = (version.path / "model_card.md").read_text()
    assert card.startswith("# Model card: churn_xgb v1")
    assert "Probability that a customer cancels within 30 days." in card
    assert "| all | 100 | 0.81 | 0.4 |" in card
    assert "| contract_monthly=1 | 60 | 0.78 | 0.45 |" in card
    assert "## Limitations" in card and "2026-10-01 .. 2026-10-10" in card


def test_alias_as_of_a_day_is_the_last_move_before_that_day_ends(three_versions):
    registry, _ = three_versions
    as_of = {d: registry.version_as_of("champion", date(2026, 10, d)) for d in (1, 4, 5, 6, 8, 9, 20)}
    assert as_of == {
        1: (1, "alias:champion@2026-10-01"),
        4: (1, "alias:champion@2026-10-04"),
        5: (2, "alias:champion@2026-10-05"),  # moved at 23:59 on the 5th
        6: (2, "alias:champion@2026-10-06"),
        8: (2, "alias:champion@2026-10-08"),  # the move at 00:00 on the 9th counts from the 9th
        9: (3, "alias:champion@2026-10-09"),
        20: (3, "alias:champion@2026-10-20"),
    }
    assert registry.version_as_of("champion", date(2026, 9, 1)) == (1, "alias:champion@first")
    with pytest.raises(RegistryError, match="no 'challenger' alias"):
        registry.version_as_of("challenger", date(2026, 10, 1))


def test_rollback_returns_to_the_previous_version_and_both_moves_are_kept(three_versions, clock):
    registry, _ = three_versions
    clock.at = datetime(2026, 10, 10, 8, tzinfo=UTC)
    move = registry.rollback("champion", reason="bad calibration")
    assert (move["from_version"], move["to_version"]) == (3, 2)
    assert registry.aliases()["champion"] == 2
    assert registry.version_as_of("champion", date(2026, 10, 10)) == (2, "alias:champion@2026-10-10")
    assert registry.version_as_of("champion", date(2026, 10, 9)) == (3, "alias:champion@2026-10-09")
    history = registry.history("champion")
    assert [(m["from_version"], m["to_version"]) for m in history] == [(None, 1), (1, 2), (2, 3), (3, 2)]
    assert history[-1]["reason"] == "rollback: bad calibration"
    assert history[-1]["evidence"] == {"rolled_back_from": 3}


def test_stale_compare_and_swap_is_refused(three_versions):
    registry, _ = three_versions
    with pytest.raises(AliasConflict, match="moved concurrently: expected 2, found 3"):
        registry.move_alias("champion", 1, reason="stale", expected_current=2)
    assert registry.aliases()["champion"] == 3


RACER = """
import sys, time
from batchscore.storage.lake import Lake
from batchscore.models.registry import AliasConflict, ModelRegistry
lake, target, start = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
registry = ModelRegistry(Lake(lake), "churn_xgb")
expected = registry.aliases()["champion"]  # both racers read the same champion first
time.sleep(max(0.0, start - time.time()))
try:
    registry.move_alias("champion", target, reason=f"racer {target}", expected_current=expected)
except AliasConflict as exc:
    print("LOST", exc)
    sys.exit(3)
print("WON")
"""


def test_two_processes_moving_the_alias_at_once_cannot_both_win(churn_settings, tmp_path):
    lake = churn_settings.platform.lake_url
    registry = ModelRegistry(Lake(lake), MODEL)
    for i in range(3):
        fake_version(registry, tmp_path, str(i))
    registry.move_alias("champion", 1, reason="first", expected_current=None)
    start = time.time() + 1.5
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, lake, str(target), str(start)],
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for target in (2, 3)
    ]
    outcomes = [(r.wait(timeout=60), r.communicate()[0]) for r in racers]
    assert sorted(code for code, _ in outcomes) == [0, 3], outcomes
    winner = 2 if outcomes[0][0] == 0 else 3
    loser_output = outcomes[1 if winner == 2 else 0][1]
    assert f"moved concurrently: expected 1, found {winner}" in loser_output
    history = registry.history("champion")
    assert registry.aliases()["champion"] == winner
    assert [(m["from_version"], m["to_version"]) for m in history] == [(None, 1), (1, winner)]


def test_run_pins_the_model_of_the_day_or_the_param(churn_settings, three_versions):
    day5 = resolve_model.run(churn_settings, date(2026, 10, 5))
    assert (day5.model_version, day5.source) == (2, "alias:champion@2026-10-05")
    pinned = resolve_model.run(churn_settings, date(2026, 10, 5), requested=1)
    assert (pinned.model_version, pinned.source) == (1, "param")


def test_score_job_run_alone_scores_with_the_champion_of_its_day(churn_settings, three_versions, monkeypatch):
    from batchscore.models.scored import ScoreResult
    from jobs import score

    scored = []

    def run(settings, day, version, **_):
        scored.append((day, version))
        return ScoreResult(model_version=version, rows=0, path="", reused=False)

    monkeypatch.setattr(score, "load_settings", lambda name: churn_settings)
    monkeypatch.setattr(score, "run", run)
    score.main(["--pipeline", "churn", "--date", "2026-10-05"])
    score.main(["--pipeline", "churn", "--date", "2026-10-05", "--model-version", "1"])
    score.main(["--pipeline", "churn", "--date", "2026-10-20"])
    # the alias points at v3 now; on the 5th it pointed at v2, as resolve_model pins it
    assert scored == [(date(2026, 10, 5), 2), (date(2026, 10, 5), 1), (date(2026, 10, 20), 3)]
    assert resolve_model.run(churn_settings, date(2026, 10, 5)).model_version == 2


def test_a_corrupt_champion_fails_the_run_by_default(churn_settings, three_versions):
    registry, _ = three_versions
    (registry.get(3).path / "model.ubj").write_text("tampered")
    with pytest.raises(RegistryError, match="fails its checksum"):
        resolve_model.run(churn_settings, date(2026, 10, 9))


def test_fallback_policy_scores_with_the_previous_champion_alerts_and_records(
    churn_settings, three_versions, caplog
):
    registry, _ = three_versions
    (registry.get(3).path / "model.ubj").write_text("tampered")
    pipeline = churn_settings.pipeline.model_copy(
        update={"model": churn_settings.pipeline.model.model_copy(update={"fallback": "previous_champion"})}
    )
    settings = churn_settings.model_copy(update={"pipeline": pipeline})
    result = resolve_model.run(settings, date(2026, 10, 9), run_id="run-9")
    assert (result.model_version, result.source) == (2, "fallback:previous_champion(v3 failed)")
    assert "champion failed verification, scoring with previous champion v2" in caplog.text
    events = open_warehouse(settings.platform.warehouse_url).query(
        "SELECT run_date, model_version, event, decision, evidence FROM model_events"
    )
    assert [e[:4] for e in events] == [(date(2026, 10, 9), 2, "champion_fallback", "previous_champion")]
    assert "fails its checksum" in json.loads(events[0][4])["error"]


def test_models_cli_lists_promotes_rolls_back_and_shows_history(tmp_path, monkeypatch, capsys):
    env = settings_env(tmp_path)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = load_settings("churn")
    registry = ModelRegistry(Lake(settings.platform.lake_url), MODEL)
    for i in range(2):
        fake_version(registry, tmp_path, str(i))
    registry.move_alias("champion", 1, reason="first model version", expected_current=None)

    assert cli_main(["models", "list", "--pipeline", "churn"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:3] == ["VERSION", "ALIASES", "CREATED_AT"]
    assert table[1].split()[:2] == ["1", "champion"] and table[2].split()[0] == "2"

    assert (
        cli_main(["models", "promote", "--pipeline", "churn", "--version", "2", "--reason", "beats v1"]) == 0
    )
    assert "champion v1 -> v2 (beats v1)" in capsys.readouterr().out
    assert cli_main(["models", "rollback", "--pipeline", "churn", "--json"]) == 0
    rollback = json.loads(capsys.readouterr().out)
    assert (rollback["from_version"], rollback["to_version"]) == (2, 1)
    assert registry.aliases()["champion"] == 1

    assert cli_main(["models", "history", "--pipeline", "churn", "--json"]) == 0
    moves = json.loads(capsys.readouterr().out)
    assert [(m["from_version"], m["to_version"], m["reason"]) for m in moves] == [
        (None, 1, "first model version"),
        (1, 2, "beats v1"),
        (2, 1, "rollback: manual rollback"),
    ]
    events = open_warehouse(settings.platform.warehouse_url).query(
        "SELECT event, decision FROM model_events ORDER BY recorded_at"
    )
    assert events == [("promote", "champion:v1->v2"), ("rollback", "champion:v2->v1")]

    assert cli_main(["models", "show", "--pipeline", "churn", "--version", "2"]) == 0
    assert capsys.readouterr().out.startswith("# Model card: churn_xgb v2")
    assert cli_main(["models", "promote", "--pipeline", "churn", "--version", "9"]) == 1
    assert "has no version 9" in capsys.readouterr().err


def test_fallback_for_a_past_day_never_jumps_to_a_later_champion(churn_settings, three_versions):
    registry, _ = three_versions
    (registry.get(2).path / "reference.parquet").write_text("tampered")
    pipeline = churn_settings.pipeline.model_copy(
        update={"model": churn_settings.pipeline.model.model_copy(update={"fallback": "previous_champion"})}
    )
    settings = churn_settings.model_copy(update={"pipeline": pipeline})
    result = resolve_model.run(settings, date(2026, 10, 6))
    assert (result.model_version, result.source) == (1, "fallback:previous_champion(v2 failed)")
