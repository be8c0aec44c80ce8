"""Seed summaries: Wilson intervals and the multirun report table."""

from __future__ import annotations

import json

import pytest
import yaml

from nalu_suite.report import report
from nalu_suite.stats import mean_std, median_or_none, student_t_quantile, wilson_interval


@pytest.mark.parametrize(
    ("k", "n", "lo", "hi"),
    [(0, 100, 0.0, 0.0370), (98, 100, 0.9300, 0.9945), (14, 100, 0.0853, 0.2215), (5, 10, 0.2366, 0.7634)],
)
def test_wilson_interval_matches_published_values(k, n, lo, hi):
    got_lo, got_hi = wilson_interval(k, n)
    assert got_lo == pytest.approx(lo, abs=5e-4)
    assert got_hi == pytest.approx(hi, abs=5e-4)


def test_mean_std_and_median_skip_missing_values():
    assert mean_std([1.0, 3.0]) == pytest.approx((2.0, 2**0.5))
    assert mean_std([4.0, float("nan")]) == (4.0, 0.0)
    assert median_or_none([None, 3, 1, 2]) == 2
    assert median_or_none([None]) is None


def write_job(root, num, overrides, results):
    job = root / str(num)
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    (job / "results.json").write_text(json.dumps(results))


def test_report_pools_seeds_and_reports_success_rate(tmp_path):
    for i, (unit, seed, mse, ok, solved) in enumerate(
        [
            ("nau", 0, 1.0, 1, 100),
            ("nau", 1, 3.0, 1, 300),
            ("nau", 2, 5.0, 0, float("nan")),
            ("nalu", 0, 9.0, 0, float("nan")),
        ]
    ):
        write_job(
            tmp_path,
            i,
            [f"unit={unit}", f"seed={seed}", "task.op=add"],
            {"test/extrap/mse": mse, "test/extrap/success": ok, "solved_at": solved},
        )
    table = report(tmp_path, ["test/extrap/mse", "test/extrap/success", "solved_at"])
    rows = {line.split("|")[1].strip(): line for line in table.splitlines()[2:]}
    assert set(rows) == {"task.op=add, unit=nau", "task.op=add, unit=nalu"}
    nau = [c.strip() for c in rows["task.op=add, unit=nau"].split("|")[1:-1]]
    assert nau[1] == "3"  # three seeds pooled
    assert nau[2] == "3 ± 2"  # mean ± sample std of 1, 3, 5
    lo, hi = wilson_interval(2, 3)
    assert nau[3] == f"67% [{100 * lo:.0f}, {100 * hi:.0f}] (2/3)"
    assert nau[4] == "200"  # median solved_at over the successful seeds


def test_report_rejects_a_directory_without_results(tmp_path):
    with pytest.raises(SystemExit, match="no results.json"):
        report(tmp_path)


def test_group_by_reads_a_key_a_job_did_not_override_from_its_resolved_config(tmp_path):
    write_job(tmp_path, 0, ["seed=0"], {"test/mae": 1.0})  # the default unit, nau
    write_job(tmp_path, 1, ["unit=nau", "seed=1"], {"test/mae": 3.0})
    write_job(tmp_path, 2, ["unit=lstm", "seed=0"], {"test/mae": 7.0})
    for i, unit in enumerate(["nau", "nau", "lstm"]):
        config = {"unit": {"name": unit, "first": unit}, "task": {"kind": "programs"}}
        (tmp_path / str(i) / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    table = report(tmp_path, ["test/mae"], group_by=["unit", "task.kind", "task.missing"])
    rows = {line.split("|")[1].strip(): line.split("|")[2:4] for line in table.splitlines()[2:]}
    assert set(rows) == {
        "unit=nau, task.kind=programs, task.missing=-",
        "unit=lstm, task.kind=programs, task.missing=-",
    }
    runs, mae = (c.strip() for c in rows["unit=nau, task.kind=programs, task.missing=-"])
    assert (runs, mae) == ("2", "2 ± 1.414")


@pytest.mark.parametrize(
    "p, df, expected",  # scipy.stats.t.ppf's values
    [(0.99, 1, 31.820516), (0.99, 2, 6.964557), (0.99, 8, 2.896459), (0.975, 10, 2.228139), (0.5, 3, 0.0)],
)
def test_student_t_quantile_matches_the_tables(p, df, expected):
    assert student_t_quantile(p, df) == pytest.approx(expected, abs=2e-6)


def test_student_t_quantile_refuses_what_it_cannot_give():
    with pytest.raises(ValueError, match="0.5 <= p < 1 and df >= 1"):
        student_t_quantile(0.1, 3)
