"""Training job (XGBoost image, script mode): the tuned model, the best trial's choice refit on train + validation.

Every tuning trial (train_xgboost.py) chooses a number of rounds by early stopping and saves that choice; this job
reads the best trial's (the `selection` channel: its model.tar.gz holding selection.json) and boosts that many rounds
with the same parameters and target transform on the train and validation rows together, read a batch of rows at a
time and quantised batch by batch as a trial reads them. Refitting once here, not in every trial, halves what a
trial costs: the refit boosts about as many rounds again on more rows.

Saves the booster in XGBoost's JSON format (portable across versions) with the feature spec it uses and the serving
code, so model.tar.gz serves on its own. The last line printed is the trial's `validation-rmse: <target units>`,
the score the tuner chose it by (nothing is held out from the refit to score it again). With a CheckpointConfig,
a restarted job resumes its boosting; with more than one instance, each reads its own parts and XGBoost trains
across them (cluster.py).
"""

import argparse
from pathlib import Path

from checkpoints import Progress
from cluster import Cluster
from container import (
    ContractArgumentParser, add_training_arguments, available_cpus, channel_dir, failure_reporting,
    positive_whole_number, read_feature_spec, save_serving_code, write_bytes_atomic, write_json_atomic,
)
from encoded_rows import EncodedFiles
from features import FEATURE_SPEC_FILE
from inference import BOOSTER_FILE
from metrics import validation_metric_line
from train_xgboost import NOT_KEPT, Rows, Selection, boost, quantised, spec_in, xgboost


def refit_booster(rows: Rows, spec: dict, parameters: dict, num_round: int, *,
                  progress: Progress = NOT_KEPT) -> xgboost.Booster:
    """The chosen settings on more rows, for a fixed number of rounds (nothing is left to stop early on)."""
    return boost(parameters, quantised(rows, spec), num_round, progress, "refit")


def save_model(model_dir: Path, booster: xgboost.Booster, spec: dict) -> None:
    write_bytes_atomic(model_dir / BOOSTER_FILE, bytes(booster.save_raw(raw_format="json")))
    write_json_atomic(model_dir / FEATURE_SPEC_FILE, spec)
    save_serving_code(model_dir)


def parse_arguments(argv=None) -> argparse.Namespace:
    parser = ContractArgumentParser("training", description=__doc__.splitlines()[0])
    parser.add_argument("--selection", type=Path, default=channel_dir("selection"),
                        help="directory of the selection channel: the best tuning trial's model.tar.gz")
    parser.add_argument("--nthread", type=positive_whole_number, default=available_cpus(),
                        help="threads (default SM_NUM_CPUS, else all CPUs)")
    add_training_arguments(parser)
    return parser.parse_args(argv)


def main(argv=None) -> None:
    arguments = parse_arguments(argv)
    with failure_reporting("training"), Cluster.of_this_job().connected() as cluster:
        selection = Selection.read(arguments.selection)
        spec = read_feature_spec(arguments.features)
        rows = [EncodedFiles(getattr(arguments, channel), f"{channel} channel", spec)
                for channel in ("train", "validation")]
        spec = spec_in(spec, selection.target_transform)
        row_count = int(cluster.total([sum(len(part) for part in rows)])[0])
        booster = refit_booster(rows, spec, {**selection.parameters, "nthread": arguments.nthread},
                                selection.refit_rounds, progress=Progress.of_this_job())
        # Every host holds the same booster; the leader's model directory is the job's model.
        if cluster.is_leader:
            save_model(arguments.model_dir, booster, spec)
        hosts = f" on {len(cluster.hosts)} hosts" if cluster.distributed else ""
        print(f"refit on {row_count:,} train + validation rows{hosts} for {selection.refit_rounds} rounds; "
              f"target transform {spec['target_transform']}")
        print(validation_metric_line(selection.validation_rmse))


if __name__ == "__main__":
    main()
