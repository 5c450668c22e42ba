"""Training job (XGBoost image, script mode): one tuning trial, choosing a number of rounds by early stopping.

Trains on the rows Preprocess encoded once for every trial (encoded_rows.py: the train and validation channels)
and the target in the chosen transform (a tuned hyperparameter: log or none), and stops early on held-out rows:
the validation channel, or on small tables each of the shared cross-validation folds over train + validation
(resampling.py). It saves its choice (selection.json: the booster parameters, the target transform and the best
number of rounds scaled by the row ratio), not a model: refit_xgboost.py boosts the best trial's choice once, on
train + validation rows, so no trial spends as long again refitting a model the tuner may not choose.
The last line printed is `validation-rmse: <target units>`, the held-out RMSE (validation split,
or out-of-fold), of the model's predictions on the encoded rows: the bits serving predicts from raw columns.

Tables too large to cross-validate are read a batch of rows at a time and quantised batch by batch
(XGBoost's own form, a bin index per present cell), so a job never holds its training rows whole, nor their
float matrix; only the early-stopping rows are held, as their present cells. The trees are given the levels a
row does not have as missing (features.ABSENT_LEVELS), which their histograms skip, and XGBoost is given the
present cells only (a CSR matrix). With more than one instance, each reads its own parts and XGBoost trains across
them (cluster.py).
"""

import argparse
import dataclasses
import itertools
import json
import tarfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import numpy as np

from checkpoints import Progress
from cluster import ONE_HOST, Cluster
from container import (
    MODEL_ARCHIVE, ContractArgumentParser, add_training_arguments, available_cpus, failure_reporting,
    positive_whole_number, read_feature_spec, whole_number, write_json_atomic,
)
from encoded_rows import Encoded, EncodedFiles
from features import (
    TARGET_TRANSFORMS, decode_target, encode_target, usable_target_transforms, with_absent_levels,
    with_target_transform,
)
from inference import import_xgboost
from metrics import validation_metric_line
from resampling import FOLDS, fold_indices, uses_cross_validation


xgboost = import_xgboost()

# Rows: encoded rows in memory, or files read a batch at a time (a list of EncodedFiles), which are never held whole.
Rows = Union[Encoded, Sequence[EncodedFiles]]


def quantised(rows: Rows, spec: dict) -> xgboost.QuantileDMatrix:
    """The training rows for XGBoost, with their targets in the spec's transform: quantised (the form its hist method
    trains on, a bin index per present cell), read batch by batch when they come in batches, so the rows are never
    held whole."""
    if isinstance(rows, Encoded):
        return xgboost.QuantileDMatrix(rows.features, label=encode_target(rows.targets, spec))
    return xgboost.QuantileDMatrix(_BatchesForXGBoost(rows, spec))


def _whole(rows: Rows) -> Encoded:
    return rows if isinstance(rows, Encoded) else Encoded.joined(list(_batches(rows)), rows[0].width)


@dataclass(frozen=True)
class HeldOut:
    """Rows early stopping scores after every round: a plain DMatrix of their present cells (a value and an index
    each), made at once from all of them, and their targets in the target's units. XGBoost predicts a quantised
    matrix with missing cells one row at a time, and a DMatrix taken in batches (a DataIter) about ten times slower
    than one made whole; either made the 1M-row scale benchmark's rounds several times slower than training them.
    The encoded rows are let go once XGBoost has its copy: kept, they were 0.95 GB more of a 10M-row trial."""

    matrix: xgboost.DMatrix
    targets: np.ndarray

    @classmethod
    def of(cls, rows: Rows, spec: dict) -> "HeldOut":
        whole = _whole(rows)
        return cls(xgboost.DMatrix(whole.features, label=encode_target(whole.targets, spec)), whole.targets)

    def predictions(self, booster: xgboost.Booster, spec: dict) -> np.ndarray:
        """In the target's units, as serving predicts them from the raw columns (the same encoded bits)."""
        return decode_target(booster.predict(self.matrix), spec)


def _batches(rows: Rows) -> Iterator[Encoded]:
    return iter([rows]) if isinstance(rows, Encoded) else itertools.chain.from_iterable(rows)


class _BatchesForXGBoost(xgboost.DataIter):
    """The present cells and targets of one batch of rows at a time, for XGBoost to quantise (it reads them twice:
    once to find the bins, once to fill them)."""

    def __init__(self, rows: Rows, spec: dict):
        super().__init__(release_data=True)
        self._rows, self._spec = rows, spec
        self.reset()

    def reset(self) -> None:
        self._batches = _batches(self._rows)

    def next(self, input_data) -> bool:
        batch = next(self._batches, None)
        if batch is None:
            return False
        input_data(data=batch.features, label=encode_target(batch.targets, self._spec))
        return True


def booster_parameters(arguments: argparse.Namespace) -> dict:
    return {
        "objective": "reg:squarederror",
        "eval_metric": "rmse",
        "tree_method": "hist",
        "eta": arguments.eta,
        "max_depth": arguments.max_depth,
        "min_child_weight": arguments.min_child_weight,
        "subsample": arguments.subsample,
        "colsample_bytree": arguments.colsample_bytree,
        "lambda": arguments.reg_lambda,
        "alpha": arguments.reg_alpha,
        "seed": arguments.seed,
        "nthread": arguments.nthread,
    }


# A job that keeps checkpoints boosts in segments of at most this many rounds, each a training call of its own
# seeded by the round it starts at, and a checkpoint after each. XGBoost keeps no random state across calls (a
# continued call samples rows and columns afresh), so an uninterrupted job is built the same way: a job
# restarted from its last checkpoint (a spot interruption) then trains exactly the trees it would have.
# A job without checkpoints boosts in one call: each segment starts by predicting every tree so far on its
# training rows, which made the 1M-row scale benchmark's job a third slower (81.5 s against 60.1 s).
SEGMENT_ROUNDS = 100
NOT_KEPT = Progress(None)


def boost(parameters: dict, train: xgboost.DMatrix, num_round: int, progress: Progress, name: str, *,
          validation: xgboost.DMatrix | None = None, early_stopping_rounds: int | None = None) -> xgboost.Booster:
    """``num_round`` rounds on ``train``, or with ``validation`` until its RMSE (encoded units) has not improved
    for ``early_stopping_rounds`` rounds, keeping only the best rounds. Each segment is saved to ``progress``
    under ``name``, and a restarted job resumes after the last one saved."""
    saved = progress.load(name)
    booster = xgboost.Booster(model_file=bytearray(saved["booster"].encode())) if saved else None
    history: list[float] = saved["history"] if saved else []
    done = booster.num_boosted_rounds() if booster is not None else 0
    if saved:
        print(f"{name}: resuming after round {done} from the job's checkpoint")
    stop = _EarlyStop(history, early_stopping_rounds)
    segment_rounds = SEGMENT_ROUNDS if progress.kept else num_round
    while not stop.reached() and (rounds := min(segment_rounds, num_round - done)) > 0:
        booster = xgboost.train(
            {**parameters, "seed": parameters["seed"] + done}, train, rounds,
            evals=[(validation, "validation")] if validation is not None else (),
            callbacks=[stop] if validation is not None else None, xgb_model=booster, verbose_eval=False,
        )
        done = booster.num_boosted_rounds()
        if progress.kept:
            progress.save(name, {"booster": bytes(booster.save_raw(raw_format="json")).decode(), "history": history})
    if validation is None:
        return booster
    # Trimming makes the model exactly the one scored, whatever a loader does with best_iteration.
    return booster[: int(np.argmin(history)) + 1]


class _EarlyStop(xgboost.callback.TrainingCallback):
    """Keeps the validation RMSE of every round across segments, and ends a segment at the round where XGBoost's
    early stopping would end the fit: once the best round is ``early_stopping_rounds`` behind the last."""

    def __init__(self, history: list[float], early_stopping_rounds: int | None):
        super().__init__()
        self.history, self.early_stopping_rounds = history, early_stopping_rounds

    def reached(self) -> bool:
        return bool(self.early_stopping_rounds and self.history
                    and int(np.argmin(self.history)) + self.early_stopping_rounds < len(self.history))

    def after_iteration(self, model, epoch: int, evals_log) -> bool:
        self.history.append(evals_log["validation"]["rmse"][-1])
        return self.reached()


def fit_booster(train: Rows, validation: HeldOut, spec: dict, parameters: dict,
                num_round: int, early_stopping_rounds: int, *, progress: Progress = NOT_KEPT,
                name: str = "selection") -> xgboost.Booster:
    """Boost until the validation RMSE (in encoded units) stops improving; keep only the best rounds."""
    return boost(parameters, quantised(train, spec), num_round, progress, name,
                 validation=validation.matrix, early_stopping_rounds=early_stopping_rounds)


def holdout_fit(train: Rows, validation: Rows, spec: dict, parameters: dict,
                arguments: argparse.Namespace, cluster: Cluster = ONE_HOST, *,
                progress: Progress = NOT_KEPT) -> tuple[float, int]:
    """Validation RMSE (target units, over every host's rows) of the early-stopped model, and its round count.
    Early stopping holds the validation rows whole, so they are read once, for it and for the score."""
    validation = HeldOut.of(validation, spec)
    booster = fit_booster(train, validation, spec, parameters, arguments.num_round, arguments.early_stopping_rounds,
                          progress=progress)
    squared_error = float(np.sum((validation.targets - validation.predictions(booster, spec)) ** 2))
    return rmse_over_hosts(cluster, squared_error, len(validation.targets)), booster.num_boosted_rounds()


def cross_validated_fit(rows: Encoded, spec: dict, parameters: dict, arguments: argparse.Namespace,
                        cluster: Cluster = ONE_HOST, *, progress: Progress = NOT_KEPT) -> tuple[float, int]:
    """Out-of-fold RMSE over the shared folds, and the mean early-stopped round count. With several hosts each
    folds its own rows, and each fold trains across all hosts."""
    out_of_fold, rounds = np.empty(len(rows)), []
    for fold, (fit_rows, held_out) in enumerate(fold_indices(len(rows))):
        fold_held_out = HeldOut.of(rows.take(held_out), spec)
        booster = fit_booster(rows.take(fit_rows), fold_held_out, spec, parameters, arguments.num_round,
                              arguments.early_stopping_rounds, progress=progress, name=f"fold-{fold}")
        out_of_fold[held_out] = fold_held_out.predictions(booster, spec)
        rounds.append(booster.num_boosted_rounds())
    squared_error = float(np.sum((rows.targets - out_of_fold) ** 2))
    return rmse_over_hosts(cluster, squared_error, len(rows)), round(float(np.mean(rounds)))


def rmse_over_hosts(cluster: Cluster, squared_error: float, count: int) -> float:
    squared_error, count = cluster.total([squared_error, count])
    return float(np.sqrt(squared_error / count))


def model_spec(spec: dict, targets: np.ndarray, requested: str, cluster: Cluster = ONE_HOST) -> dict:
    """The spec in the requested target transform, or without one when the train targets (of any host) cannot be
    logged."""
    unusable = requested not in usable_target_transforms(targets)
    return spec_in(spec, spec["target_transform"] if cluster.total([unusable])[0] else requested)


def spec_in(spec: dict, transform: str) -> dict:
    """The spec a model of this target transform uses: absent levels are given as missing, which the trees skip (as
    the encoded rows give them)."""
    return with_absent_levels(with_target_transform(spec, transform), "missing")


SELECTION_FILE = "selection.json"


@dataclass(frozen=True)
class Selection:
    """A trial's choice, which refit_xgboost.py boosts on train + validation rows: the booster parameters (but the
    thread count, the refit job's own), the target transform, the rounds to boost (the early-stopped count scaled to
    the refit's rows), and the held-out RMSE they scored."""

    parameters: dict
    target_transform: str
    refit_rounds: int
    validation_rmse: float

    def save(self, model_dir: Path) -> None:
        write_json_atomic(model_dir / SELECTION_FILE, dataclasses.asdict(self))

    @classmethod
    def read(cls, channel: Path) -> "Selection":
        """From the trial's model.tar.gz under ``channel``, as SageMaker packed its model directory."""
        archives = sorted(channel.rglob(MODEL_ARCHIVE)) if channel.is_dir() else []
        if len(archives) != 1:
            raise ValueError(f"the selection channel {channel} holds {len(archives)} {MODEL_ARCHIVE} files; give it "
                             "the best tuning trial's model artefact (TuneXGBoost's top model), one file")
        with tarfile.open(archives[0]) as archive:
            member = next((m for m in archive.getmembers() if m.name.lstrip("./") == SELECTION_FILE), None)
            if member is None:
                raise ValueError(f"{archives[0]} holds no {SELECTION_FILE}: it is not a train_xgboost.py trial's "
                                 "artefact; give the selection channel the best tuning trial's model artefact")
            return cls(**json.load(archive.extractfile(member)))


def parse_arguments(argv=None) -> argparse.Namespace:
    parser = ContractArgumentParser("training", description=__doc__.splitlines()[0])
    parser.add_argument("--num_round", type=positive_whole_number, default=1000)
    parser.add_argument("--early_stopping_rounds", type=positive_whole_number, default=50)
    # Shallower, slower, subsampled trees: over twelve Ames split seeds their test RMSE was
    # about 10% lower than with eta 0.1, depth 6 and no subsampling.
    parser.add_argument("--eta", type=float, default=0.05)
    parser.add_argument("--max_depth", type=whole_number, default=4)
    parser.add_argument("--min_child_weight", type=float, default=1.0)
    parser.add_argument("--subsample", type=float, default=0.8)
    parser.add_argument("--colsample_bytree", type=float, default=0.5)
    parser.add_argument("--reg_lambda", type=float, default=1.0)
    parser.add_argument("--reg_alpha", type=float, default=0.0)
    parser.add_argument("--seed", type=whole_number, default=0)
    parser.add_argument("--target_transform", choices=TARGET_TRANSFORMS, default="log1p",
                        help="fit the target's logarithm (when no target is negative) or the target itself")
    parser.add_argument("--nthread", type=positive_whole_number, default=available_cpus(),
                        help="threads (default SM_NUM_CPUS, else all CPUs); tuning runs trials in parallel")
    add_training_arguments(parser)
    return parser.parse_args(argv)


def main(argv=None) -> None:
    arguments = parse_arguments(argv)
    with failure_reporting("training"), Cluster.of_this_job().connected() as cluster:
        spec = read_feature_spec(arguments.features)
        train, validation = (EncodedFiles(getattr(arguments, channel), f"{channel} channel", spec)
                             for channel in ("train", "validation"))
        spec = model_spec(spec, train.targets(), arguments.target_transform, cluster)
        parameters = booster_parameters(arguments)
        train_rows = len(train)
        train_count, row_count = (int(count) for count in cluster.total([train_rows, train_rows + len(validation)]))
        progress = Progress.of_this_job()
        if uses_cross_validation(row_count):
            rows = Encoded.joined([train.whole(), validation.whole()], train.width)
            score, rounds = cross_validated_fit(rows, spec, parameters, arguments, cluster, progress=progress)
            print(f"{FOLDS}-fold cross-validation: {rounds} rounds on average")
            # Each fold fits (k-1)/k of the rows; the refit sees them all.
            refit_rounds = max(1, round(rounds * FOLDS / (FOLDS - 1)))
        else:
            # Tables too large to cross-validate are read a batch at a time, never whole.
            score, rounds = holdout_fit([train], [validation], spec, parameters, arguments, cluster,
                                        progress=progress)
            print(f"validation split: best-iteration {rounds - 1}")
            refit_rounds = max(1, round(rounds * row_count / train_count))
        # Every host chose the same; the leader's model directory is the job's artefact.
        if cluster.is_leader:
            thread_free = {name: value for name, value in parameters.items() if name != "nthread"}
            Selection(thread_free, spec["target_transform"], refit_rounds, score).save(arguments.model_dir)
        print(f"chosen: {refit_rounds} rounds for a refit on {row_count:,} train + validation rows; "
              f"target transform {spec['target_transform']}")
        print(validation_metric_line(score))


if __name__ == "__main__":
    main()
