"""TuneXGBoost: hyperparameter search for XGBoost, minimising validation RMSE."""

from __future__ import annotations

import copy

from sagemaker.core.parameter import CategoricalParameter, ContinuousParameter, IntegerParameter
from sagemaker.mlops.workflow.steps import TuningStep
from sagemaker.train.tuner import HyperparameterTuner

from steps.context import StepContext
from steps.training import VALIDATION_RMSE, script_mode_trainer, training_channels

SEARCH_SPACE = {
    "eta": ContinuousParameter(0.01, 0.1, scaling_type="Logarithmic"),
    "max_depth": IntegerParameter(3, 6),
    "min_child_weight": ContinuousParameter(1, 10, scaling_type="Logarithmic"),
    "subsample": ContinuousParameter(0.6, 1.0),
    "colsample_bytree": ContinuousParameter(0.3, 1.0),
    "reg_lambda": ContinuousParameter(0.5, 20, scaling_type="Logarithmic"),
    # Fitting the logarithm weighs relative errors; the gate scores RMSE in the target's units.
    "target_transform": CategoricalParameter(["log1p", "identity"]),
}


class TuningStepWithJobSettings(TuningStep):
    """A TuningStep whose trials keep the job settings every other job has: the SDK's tuner (3.27) drops
    the trainer's network isolation, inter-container encryption, volume key and warm-pool period from the
    TrainingJobDefinition (`validate --policy` caught the first three)."""

    def __init__(self, *, isolation: dict, volume_kms_key_id: str | None, keep_alive_seconds: int, **kwargs):
        super().__init__(**kwargs)
        self._isolation, self._volume_kms_key_id = isolation, volume_kms_key_id
        self._keep_alive_seconds = keep_alive_seconds

    @property
    def arguments(self):
        request = copy.deepcopy(super().arguments)
        definition = request["TrainingJobDefinition"]
        definition.update(self._isolation)
        if self._volume_kms_key_id:
            definition["ResourceConfig"]["VolumeKmsKeyId"] = self._volume_kms_key_id
        if self._keep_alive_seconds:
            definition["ResourceConfig"]["KeepAlivePeriodInSeconds"] = self._keep_alive_seconds
        return request


def xgboost_tuning_step(
    ctx: StepContext, *, train, validation, features, instance_type, instance_count, max_jobs: int,
    max_parallel_jobs: int,
) -> TuningStep:
    # A trainer of its own: tune() mutates the trainer it is given.
    trainer = script_mode_trainer(
        ctx, name="xgboost", framework="xgboost", script="train_xgboost.py",
        instance_type=instance_type, instance_count=instance_count,
        hyperparameters={"num_round": 1000, "early_stopping_rounds": 50}, resumable=True,
    )
    tuner = HyperparameterTuner(
        model_trainer=trainer,
        objective_metric_name=VALIDATION_RMSE.name,
        objective_type="Minimize",
        metric_definitions=[{"Name": VALIDATION_RMSE.name, "Regex": VALIDATION_RMSE.regex}],
        hyperparameter_ranges=SEARCH_SPACE,
        strategy="Bayesian",
        max_jobs=max_jobs,
        max_parallel_jobs=max_parallel_jobs,
        base_tuning_job_name=f"{ctx.settings.pipeline_name[:20]}-xgb",
        random_seed=42,
    )
    network = ctx.network
    return TuningStepWithJobSettings(
        isolation={"EnableNetworkIsolation": network["enable_network_isolation"],
                   "EnableInterContainerTrafficEncryption": True} if network else {},
        volume_kms_key_id=ctx.settings.kms_key_id or None,
        keep_alive_seconds=ctx.settings.warm_pool_seconds,
        name="TuneXGBoost",
        step_args=tuner.tune(inputs=training_channels(train=train, validation=validation, features=features,
                                                     sharded=True)),
        description="Bayesian search over XGBoost hyperparameters with early stopping on the validation split.",
        cache_config=ctx.cache_config,
        retry_policies=ctx.job_retry_policies,
    )
