"""THE registry of every experiment id of the study: runs, their ids, the README table, id lookup.

`configs/README.md` and `python sweep.py --list` are both rendered from `RUNS` below, and
tests/configs_test.py checks that every config really differs from base in what its id says.

Two naming schemes map onto one set of runs (docs/experiments.md#naming-schemes): the E-scheme ids
(E1.1 … E4.4), the 67-config ids (baseline, exp01a … exp10e, contrib01_*, contrib02_*), plus the
paper's other tasks and the new contributions. Ids that the study defined as the same run (exp01c,
exp02a_03, … all equal the baseline) resolve to ONE run, so the batch runner trains it once.
"""

from __future__ import annotations

import dataclasses
import re

# ----------------------------------------------------------------------------------------------------
# The registry: one entry per distinct run; `ids` are every name the study (or we) gave it.

SUDOKU = "sudoku_extreme/sub1000_aug1000"
PILOT_SUDOKU = "sudoku_extreme/generated_extreme_mix"


@dataclasses.dataclass(frozen=True)
class Run:
    """One distinct training run of the catalogue.

    Attributes:
      run_id: the config's `experiment_id`; also the run's workdir name under a sweep root.
      config: experiment file, relative to the repository root.
      variant: argument selecting the run in a family file ("" for single-run files).
      dataset: TFDS "name/config" the run trains on.
      ids: the study's ids (both schemes) that name this run; `run_id` is always accepted too.
      expected: paper number or the study author's prior, with its source.
      note: how the run relates to the study's definition (fixes, aliases).
    """

    run_id: str
    config: str
    variant: str = ""
    dataset: str = SUDOKU
    ids: tuple[str, ...] = ()
    expected: str = ""
    note: str = ""

    @property
    def config_arg(self) -> str:
        """`configs/x.py` or `configs/x.py:variant`, as passed to launch.py --config."""
        return f"{self.config}:{self.variant}" if self.variant else self.config


def _e(stem, ids, expected="", dataset=SUDOKU, note=""):
    return Run(stem, f"configs/{stem}.py", "", dataset, tuple(ids), expected, note)


def _sudoku(stem, ids, expected, sub: int, aug: int):
    """A run of its own file on the Sudoku-Extreme config `sub<sub>_aug<aug>`."""
    return _e(stem, ids, expected, dataset=f"sudoku_extreme/sub{sub}_aug{aug}")


def _v(family, variant, ids=(), expected="", dataset=SUDOKU, note=""):
    return Run(variant, f"configs/{family}.py", variant, dataset, (variant, *ids), expected, note)


_PRIOR = "author's prior"
RUNS: tuple[Run, ...] = (
    # --- The paper recipe, and every id the study defined as equal to it.
    _e(
        "e1_1_baseline",
        [
            "E1.1",
            "E1.2",
            "E2.1a",
            "E2.2d",
            "E2.3a",
            "E2.4c",
            "E3.1a",
            "E3.2a",
            "E3.3c",
            "E3.4b",
            "E4.3b",
            "baseline",
            "exp01c",
            "exp02a_03",
            "exp02b_03",
            "exp03b",
            "exp04a_1000",
            "exp04b_1000",
            "exp05_d",
            "exp07b",
            "exp08d",
            "exp09a",
            "exp10b",
            "contrib01_baseline",
            "contrib02_baseline",
        ],
        "87.4% (paper, TRM-MLP)",
        note="paper recipe (batch 768); the study's 'baseline' used batch 6144 at the same lr",
    ),
    # --- E-scheme.
    _e("e1_3a_batch1536_linear_lr", ["E1.3a"], "~87% (" + _PRIOR + ")"),
    _e("e1_3b_batch3072_linear_lr", ["E1.3b"], "~87% (" + _PRIOR + ")"),
    _e("e1_3c_batch6144_linear_lr", ["E1.3c", "e4_5_larger_batch"], "'check stability'"),
    _e("e2_1_ema_off", ["E2.1b", "exp08a"], "79.9% (paper ablation)"),
    _e("e2_2a_t2_n2", ["E2.2a"], "73.7% (paper ablation)"),
    _e("e2_2b_t2_n6", ["E2.2b", "exp02b_02"], "~83-86% (" + _PRIOR + ")"),
    _e("e2_2c_t3_n4", ["E2.2c", "exp02a_02"], "~85% (" + _PRIOR + ")"),
    _e("e2_2e_t4_n6", ["E2.2e", "exp02b_04"], "~87-88% (" + _PRIOR + ")"),
    _e("e2_3_attention", ["E2.3b"], "74.7% (paper, TRM-Att)", note="the attention arm the 67 lost"),
    _e("e2_4a_nsup4", ["E2.4a", "exp05_a"], "~80%, 3.5 steps (" + _PRIOR + ")"),
    _e("e2_4b_nsup8", ["E2.4b", "exp05_b"], "~84-85% (" + _PRIOR + ")"),
    _e("e2_4d_nsup32", ["E2.4d", "exp05_f"], "~87% (" + _PRIOR + ")"),
    _e("e3_1b_h768_l3", ["E3.1b"], "14.6M params; 'diminishing returns' (" + _PRIOR + ")"),
    _e("e3_1c_h1024_l4", ["E3.1c"], "35.2M params; watch overfitting (" + _PRIOR + ")"),
    _sudoku("e3_2b_data5k", ["E3.2b", "exp04a_5000"], "~87% (" + _PRIOR + ")", 5000, 1000),
    _sudoku("e3_2c_data10k", ["E3.2c"], "~87%, 'plateaus around 5K' (" + _PRIOR + ")", 10000, 1000),
    _sudoku("e3_3a_aug100", ["E3.3a", "exp04b_0100"], "~83% (" + _PRIOR + ")", 1000, 100),
    _sudoku("e3_3b_aug500", ["E3.3b", "exp04b_0500"], "~86% (" + _PRIOR + ")", 1000, 500),
    _sudoku("e3_3d_aug2000", ["E3.3d", "exp04b_2000"], "~87% (" + _PRIOR + ")", 1000, 2000),
    _e("e3_4a_lr_0p5x", ["E3.4a"], "LR-law point"),
    _e("e3_4c_lr_2x", ["E3.4c"], "LR-law point"),
    _e("e3_4d_lr_5x", ["E3.4d", "e4_1_lr_search"], "LR-law point"),
    _e("e3_4e_lr_10x", ["E3.4e"], "LR-law point"),
    _e("e4_1_curriculum_t2_to_t4", ["E4.1"], "'easier training?' (" + _PRIOR + ")"),
    _e("e4_2a_halt_penalty_0p01", ["E4.2a"], "accuracy-vs-steps Pareto point"),
    _e("e4_2b_halt_penalty_0p1", ["E4.2b"], "accuracy-vs-steps Pareto point"),
    _e("e4_2c_halt_penalty_1", ["E4.2c"], "accuracy-vs-steps Pareto point"),
    _e("e4_3a_fp32", ["E4.3a", "exp07a"], "~87%, 1.0x speed (" + _PRIOR + ")"),
    _e("e4_3c_fp16", ["E4.3c", "exp07c"], "~85% 'unstable' (" + _PRIOR + ")"),
    _e("e4_4_checkpoint_averaging", ["E4.4"], "'slight improvement?' (" + _PRIOR + ")"),
    _e("e4adv_2_longer_training", ["e4_2_longer_training"], "none stated"),
    _e("e4adv_3_deeper_model", ["e4_3_deeper_model"], "none stated"),
    _e("e4adv_4_no_warmup", ["e4_4_no_warmup"], "none stated"),
    # --- The paper's other tasks.
    _e(
        "paper_maze_hard",
        ["phase3_maze"],
        "85.3% (paper, TRM-Att)",
        dataset="maze_hard/hard",
    ),
    _e("paper_arc1", ["phase3_arc1"], "44.6% pass@2 (paper)", dataset="arc_agi/arc1_aug1000"),
    _e("paper_arc2", [], "7.8% pass@2 (paper)", dataset="arc_agi/arc2_aug1000"),
    # --- 67-config scheme: the arms that are not an E-scheme run.
    *(
        _v("exp01_model_scaling", v, expected=f"{e} (" + _PRIOR + ")")
        for v, e in [
            ("exp01a", "~83%, 1.48M params"),
            ("exp01b", "~85%, 2.67M params"),
            ("exp01d", "~88%, 9.76M params"),
            ("exp01e", "~88%, 17.6M params"),
            ("exp01f", "~88%, 38.1M params"),
        ]
    ),
    *(
        _v("exp02a_l_cycles", v, expected=f"{e} (" + _PRIOR + ")")
        for v, e in [
            ("exp02a_01", "~82%"),
            ("exp02a_04", "~87%"),
            ("exp02a_05", "~86%"),
            ("exp02a_06", "~85%"),
        ]
    ),
    *(
        _v("exp02b_h_cycles", v, expected=f"{e} (" + _PRIOR + ")")
        for v, e in [("exp02b_01", "~83%"), ("exp02b_05", "~87%")]
    ),
    *(
        _v("exp03_depth_vs_recursion", v, expected=e)
        for v, e in [
            ("exp03a", "~87%, 2.5M params (" + _PRIOR + ")"),
            ("exp03c", "~87%, 7.5M params (" + _PRIOR + ")"),
            ("exp03d", "79.5% (paper ablation: 4 layers, n=3)"),
            ("exp03e", "~85%, 15.1M params (" + _PRIOR + ")"),
        ]
    ),
    *(
        _v(
            "exp04a_data_scaling",
            f"exp04a_{n}",
            expected=f"{e} (" + _PRIOR + ")",
            dataset=f"sudoku_extreme/sub{n}_aug1000",
        )
        for n, e in [(100, "~75%"), (250, "~80%"), (500, "~85%"), (2000, "~87%")]
    ),
    _v(
        "exp04b_augmentation",
        "exp04b_0010",
        expected="~78% (" + _PRIOR + ")",
        dataset="sudoku_extreme/sub1000_aug10",
    ),
    _v("exp05_supervision_steps", "exp05_c", expected="~86%, 8.1 steps (" + _PRIOR + ")"),
    _v("exp05_supervision_steps", "exp05_e", expected="~87%, 9.7 steps (" + _PRIOR + ")"),
    *(
        _v("exp06_batch_size", v, expected=e)
        for v, e in [
            ("exp06_a", "~87% (" + _PRIOR + ")"),
            ("exp06_b", "~87% (" + _PRIOR + ")"),
            ("exp06_c", "~87% (" + _PRIOR + ")"),
            ("exp06_d", "~87% (" + _PRIOR + ")"),
            ("exp06_e", "~87% (" + _PRIOR + ", stale README)"),
            ("exp06_f", "~86% (" + _PRIOR + ", stale README)"),
        ]
    ),
    *(
        _v("exp08_ema", v, expected=f"{e} (" + _PRIOR + ")")
        for v, e in [("exp08b", "~86%"), ("exp08c", "~87%"), ("exp08e", "~87%")]
    ),
    *(
        _v("exp09_optimizer", v, expected=f"{e} (" + _PRIOR + ")")
        for v, e in [("exp09b", "~86%"), ("exp09c", "~87%"), ("exp09d", "~86%"), ("exp09e", "~85%")]
    ),
    *(
        _v("exp10_lr_schedule", v, expected=f"{e} (" + _PRIOR + ")")
        for v, e in [("exp10a", "~85%"), ("exp10c", "~86%"), ("exp10d", "~87%"), ("exp10e", "~86%")]
    ),
    # --- Novel contributions.
    _e(
        "contrib01_curriculum",
        ["contrib01_curriculum"],
        "~87% reached ~30% sooner (" + _PRIOR + ")",
    ),
    _e(
        "contrib02_adaptive_halting",
        ["contrib02_adaptive"],
        "same accuracy, ~25% fewer steps (" + _PRIOR + ")",
    ),
    *(
        _v("contrib03_remat", v, expected=e)
        for v, e in [
            ("contrib03_l6", "same accuracy as baseline; memory/speed cost"),
            ("contrib03_l12", "deeper recursion (" + _PRIOR + ": better accuracy)"),
            ("contrib03_l24", "3-4x deeper, ~1.5x slower (" + _PRIOR + ")"),
        ]
    ),
    _v(
        "contrib04_regularized_recursion",
        "contrib04_l0p01",
        expected="slight gain (" + _PRIOR + ")",
    ),
    _v(
        "contrib04_regularized_recursion",
        "contrib04_l0p1",
        ["contrib04_regularized_recursion"],
        expected="slight gain, more stable trajectories (" + _PRIOR + ")",
        note="the study id names the λ family; λ=0 is e1_1_baseline; --pattern='contrib04_*' runs all",
    ),
    _v("contrib04_regularized_recursion", "contrib04_l1", expected="slight gain (" + _PRIOR + ")"),
    _e(
        "contrib05_sparse_attention",
        ["contrib05_sparse_attention"],
        ">= 90% of paper_maze_hard (" + _PRIOR + ")",
        dataset="maze_hard/hard",
        note="the 30x30 arm; the 50x50 maze is not built",
    ),
    _e("contrib07_test_time_recursion", [], "new: accuracy vs test-time N_sup"),
    # --- The CPU pilot (issue #25): the four questions downscaled, on a Sudoku that needs search.
    *(
        Run(
            f"pilot_cpu_{arm}",
            "configs/pilot_cpu.py",
            arm,
            PILOT_SUDOKU,
            (f"pilot_{arm}",),
            expected,
        )
        for arm, expected in [
            ("baseline", "20-80% exact (calibrated)"),
            ("ema_off", "Q2: below the baseline (paper: 79.9 vs 87.4%)"),
            ("attention", "Q3: below MLP-T (paper: 74.7 vs 87.4%)"),
            ("tn_2_1", "Q1: below T=3, n=2 (paper: shallower is worse)"),
            ("tn_3_4", "Q1: at or above T=3, n=2"),
            ("tn_4_2", "Q1: at or above T=3, n=2"),
            ("batch_128", "Q1: near the baseline (linear LR)"),
            ("batch_256", "Q1: near the baseline (linear LR)"),
            ("nsup_2", "Q4: fewer steps, lower accuracy"),
            ("nsup_8", "Q4: more steps, higher accuracy"),
            ("halt_0p01", "Q4: Pareto point (fewer eval steps)"),
            ("halt_0p1", "Q4: Pareto point (fewer eval steps)"),
            ("halt_1", "Q4: Pareto point (fewer eval steps)"),
            ("curriculum", "E4.1: as the baseline, reached sooner?"),
        ]
    ),
)

# The study's ids that have no run, and why (listed in configs/README.md).
NOT_COVERED = {
    "contrib05_sparse_attention (50x50 arm)": "needs a 50x50 maze builder (the 30x30 arm has a run)",
    "contrib06_multitask": "needs joint Sudoku+Maze data and task embeddings (no field/data)",
}


@dataclasses.dataclass(frozen=True)
class Question:
    """One question of the study and the ids of its arms (each resolves to a run of RUNS)."""

    key: str
    title: str
    ids: tuple[str, ...]

    def runs(self) -> list[Run]:
        """The distinct runs of its arms, in the order of `ids` (aliases of one run count once)."""
        out = []
        for i in self.ids:
            run = lookup(i)
            if run not in out:
                out.append(run)
        return out


# The four questions the study asks (docs/experiments.md#families). The comparison arm of each family is
# the study's own alias of the baseline (E2.1a, E2.2d, E2.3a, E2.4c all resolve to e1_1_baseline), and the
# baseline is also the batch-768 arm of E1.3 and the penalty-0 arm of E4.2.
QUESTIONS: tuple[Question, ...] = (
    Question(
        "Q1",
        "recursion at larger batch and compute: batch scaling with linear LR (E1.3), T/n (E2.2)",
        ("E1.1", "E1.3a", "E1.3b", "E1.3c", "E2.2a", "E2.2b", "E2.2c", "E2.2d", "E2.2e"),
    ),
    Question("Q2", "is EMA still critical (E2.1)", ("E2.1a", "E2.1b")),
    Question("Q3", "MLP-T vs attention (E2.3)", ("E2.3a", "E2.3b")),
    Question(
        "Q4",
        "compute-accuracy frontier: N_sup (E2.4), halting penalty (E4.2)",
        ("E2.4a", "E2.4b", "E2.4c", "E2.4d", "E4.2a", "E4.2b", "E4.2c"),
    ),
)


def _natural_key(s: str):
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", s)]


def _scheme_rank(study_id: str) -> int:
    if re.fullmatch(r"E\d\.\d[a-e]?", study_id) or study_id.startswith("e4_"):
        return 0
    if study_id == "baseline" or study_id.startswith(("exp", "contrib0")):
        return 1
    return 2


def all_ids() -> list[tuple[str, Run]]:
    """Every id (study ids of both schemes, then run ids) with its run, in catalogue order."""
    seen, out = set(), []
    for run in RUNS:
        for i in (*run.ids, run.run_id):
            if i in seen:
                continue
            seen.add(i)
            out.append((i, run))
    out.sort(key=lambda p: (_scheme_rank(p[0]), _natural_key(p[0])))
    return out


def lookup(study_id: str) -> Run:
    """The run an id names (exact match, case-insensitive). Raises KeyError for unknown ids."""
    for i, run in all_ids():
        if i.lower() == study_id.lower():
            return run
    raise KeyError(study_id)


def build_command(dataset: str) -> str:
    """The `tfds build` command that creates `dataset` ("name/config") in gs://BUCKET/tfds."""
    name, cfg = dataset.split("/")
    extra = " --manual_dir=DIR_WITH_KAGGLE_JSON" if name == "arc_agi" else ""
    return f"tfds build tfds_builders/{name} --config={cfg}{extra} --data_dir=gs://BUCKET/tfds"


def markdown_table() -> str:
    """The id -> config -> dataset table of configs/README.md (generated; tests check they agree)."""
    lines = [
        "| id | run (workdir) | config | dataset | expected |",
        "|---|---|---|---|---|",
    ]
    for i, run in all_ids():
        lines.append(
            f"| {i} | {run.run_id} | `{run.config_arg}` | `{run.dataset}` | {run.expected} |"
        )
    for i, why in NOT_COVERED.items():
        lines.append(f"| {i} | — | not covered | — | {why} |")
    return "\n".join(lines)
