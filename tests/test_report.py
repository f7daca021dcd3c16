"""``python -m lth.report`` on a sweep directory written with known numbers."""

from __future__ import annotations

import csv
import json
import math
import statistics
import struct
from pathlib import Path

import pytest

from lth.report import DPI, PANEL_SIZE, main

WT_ACC = (0.90, 0.92, 0.88)  # winning_ticket test_acc per level, before the seed offset
SEED_OFFSET = (-0.02, 0.0, 0.02)


def record(level: int, test_acc: float, early_stop_step: int, status: str = "ok") -> dict:
    return {
        "level": level,
        "weights_remaining": 0.8**level,
        "layers": {"fc1.weight": 0.8**level},
        "test_acc": test_acc,
        "test_acc_at_early_stop": test_acc - 0.01,
        "early_stop_step": early_stop_step,
        "test_loss": 1.0 - test_acc,
        "status": status,
    }


def write_job(sweep: Path, num: int, overrides: list[str], records: list[dict], done: str | None) -> Path:
    job = sweep / f"{num}_{','.join(overrides)}"
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    (job / "config.yaml").write_text("seed: 0\n")
    (job / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    if done is not None:
        (job / "DONE").write_text(json.dumps({"status": done, "levels": len(records)}) + "\n")
    return job


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    """winning_ticket: 3 complete seeds. reinit: seeds 0, 1 complete, seed 2 killed after level 1 (no DONE),
    seed 3 diverged at level 1; reinit's test_acc is 0.5 + 0.01 * seed at every level."""
    sweep = tmp_path / "sweep"
    num = 0
    for seed in range(3):
        records = [record(lv, WT_ACC[lv] + SEED_OFFSET[seed], 100 * (seed + 1)) for lv in range(3)]
        write_job(sweep, num, ["init=winning_ticket", f"seed={seed}", "prune.levels=2"], records, "complete")
        num += 1
    for seed, levels, done in ((0, 3, "complete"), (1, 3, "complete"), (2, 2, None), (3, 2, "diverged")):
        records = [record(lv, 0.5 + 0.01 * seed, 50) for lv in range(levels)]
        if done == "diverged":
            records[-1] |= {"status": "diverged", "test_acc": math.nan}
        write_job(sweep, num, ["init=reinit", f"seed={seed}", "prune.levels=2"], records, done)
        num += 1
    return sweep


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_report_aggregates_seeds_per_group_and_lists_problem_jobs(sweep: Path, capsys) -> None:
    main([str(sweep)])
    out = sweep / "report"
    with (out / "summary.csv").open() as f:
        rows = {(r["init"], int(r["level"])): r for r in csv.DictReader(f)}
    assert set(rows) == {(init, lv) for init in ("winning_ticket", "reinit") for lv in range(3)}
    assert "seed" not in next(iter(rows.values())) and "prune.levels" not in next(iter(rows.values()))
    for lv in range(3):
        wt = rows["winning_ticket", lv]
        assert int(wt["n"]) == 3
        assert float(wt["weights_remaining"]) == pytest.approx(0.8**lv)
        assert float(wt["test_acc_mean"]) == pytest.approx(WT_ACC[lv])
        assert float(wt["test_acc_std"]) == pytest.approx(0.02)
        assert float(wt["test_acc_at_early_stop_mean"]) == pytest.approx(WT_ACC[lv] - 0.01)
        assert float(wt["early_stop_step_mean"]) == pytest.approx(200)
        assert float(wt["early_stop_step_std"]) == pytest.approx(100)
    # reinit: only ok levels count; n shrinks where seeds died or diverged
    for lv, seeds in ((0, [0, 1, 2, 3]), (1, [0, 1, 2]), (2, [0, 1])):
        ri, acc = rows["reinit", lv], [0.5 + 0.01 * s for s in seeds]
        assert int(ri["n"]) == len(seeds)
        assert float(ri["test_acc_mean"]) == pytest.approx(statistics.mean(acc))
        assert float(ri["test_acc_std"]) == pytest.approx(statistics.stdev(acc), abs=5e-5)  # 4 decimals
    # the problem jobs are listed, in the Markdown, the jobs table and on stdout
    markdown = (out / "summary.md").read_text()
    assert "| init=winning_ticket | 1 | 80.00 | 3 | 92.00 ± 2.00 | 91.00 ± 2.00 | 200 ± 100 |" in markdown
    problems = markdown.split("## Problems")[1]
    assert "`5_init=reinit,seed=2,prune.levels=2`: unfinished: 2 level(s) recorded" in problems
    assert (
        "`6_init=reinit,seed=3,prune.levels=2`: diverged: 2 level(s) recorded; level 1 diverged" in problems
    )
    assert problems.count("`") == 4
    with (out / "jobs.csv").open() as f:
        jobs = {r["job"]: r for r in csv.DictReader(f)}
    assert len(jobs) == 7
    assert [j["status"] for j in jobs.values()].count("complete") == 5
    assert jobs["5_init=reinit,seed=2,prune.levels=2"]["status"] == "unfinished"
    assert capsys.readouterr().out.startswith("# lth report")
    # plots: panels of the set size, widened by the legend, with content
    for name, panels in (("accuracy.png", 2), ("early_stop.png", 1)):
        width, height = png_size(out / name)
        assert height == round(PANEL_SIZE[1] * DPI) and width > panels * PANEL_SIZE[0] * DPI
        assert (out / name).stat().st_size > 10_000


def test_report_of_a_single_run_directory(sweep: Path, tmp_path: Path) -> None:
    job = next(sweep.glob("0_*"))
    main([str(job), "--out", str(tmp_path / "one")])
    with (tmp_path / "one" / "summary.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [float(r["test_acc_mean"]) for r in rows] == pytest.approx([a - 0.02 for a in WT_ACC])
    assert all(r["n"] == "1" and r["test_acc_std"] == "nan" for r in rows)
    assert "| all jobs | 0 | 100.00 | 1 | 88.00 |" in (tmp_path / "one" / "summary.md").read_text()


def test_mask_overlap_between_seeds_and_between_inits(tmp_path: Path, sweep: Path) -> None:
    """Level 1's masks (fc1 | fc2, fc2 all kept): winning_ticket's seeds identical, reinit's seeds share 2 of
    fc1's 6 kept weights, seed 0's inits are disjoint on fc1; level 0 keeps everything."""
    import torch

    fc1 = {
        ("winning_ticket", 0): [1, 1, 1, 1, 0, 0, 0, 0],
        ("winning_ticket", 1): [1, 1, 1, 1, 0, 0, 0, 0],
        ("reinit", 0): [0, 0, 0, 0, 1, 1, 1, 1],
        ("reinit", 1): [1, 1, 0, 0, 1, 1, 0, 0],
    }
    root = tmp_path / "masks"
    for num, ((init, seed), kept) in enumerate(fc1.items()):
        records = [record(lv, 0.9, 100) for lv in range(2)]
        job = write_job(root, num, [f"init={init}", f"seed={seed}"], records, "complete")
        for level, mask in ((0, [1] * 8), (1, kept)):
            (job / "levels" / f"level_{level:02d}").mkdir(parents=True)
            masks = {
                "fc1.weight": torch.tensor(mask, dtype=torch.bool),
                "fc2.weight": torch.ones(4, dtype=torch.bool),
            }
            torch.save(masks, job / "levels" / f"level_{level:02d}" / "masks.pt")
    main([str(root)])
    with (root / "report" / "mask_overlap.csv").open() as f:
        rows = {(r["between"], r["group"], r["level"]): r for r in csv.DictReader(f)}
    expected = {
        ("seeds", "init=reinit", "0"): (1.0, 1),
        ("seeds", "init=reinit", "1"): ((2 + 4) / (6 + 4), 1),
        ("seeds", "init=winning_ticket", "1"): (1.0, 1),
        ("init=reinit vs init=winning_ticket", "all jobs", "0"): (1.0, 2),
        ("init=reinit vs init=winning_ticket", "all jobs", "1"): ((4 / 12 + 6 / 10) / 2, 2),  # seed 0, seed 1
    }
    for key, (jaccard, pairs) in expected.items():
        assert float(rows[key]["jaccard_mean"]) == pytest.approx(jaccard, abs=1e-4)
        assert int(rows[key]["n_pairs"]) == pairs and float(rows[key]["weights_remaining"]) == pytest.approx(
            0.8 ** int(key[2])
        )
    assert len(rows) == 6  # winning_ticket's level 0 too
    assert png_size(root / "report" / "analysis" / "mask_overlap.seeds.png")[0] > 0
    main([str(sweep)])  # no job saved masks: no overlap
    assert not (sweep / "report" / "mask_overlap.csv").exists()
