"""RefitXGBoost: the best tuning trial's parameters and round count, boosted once on train + validation rows."""

from __future__ import annotations

from sagemaker.mlops.workflow.steps import TrainingStep

from steps.context import StepContext
from steps.training import model_channel, script_mode_trainer, training_channels


def xgboost_refit_step(
    ctx: StepContext, *, train, validation, features, selection, instance_type, instance_count,
) -> TrainingStep:
    """``selection``: the best trial's model.tar.gz (what it chose, not a model)."""
    trainer = script_mode_trainer(
        ctx, name="xgboost-refit", framework="xgboost", script="refit_xgboost.py",
        instance_type=instance_type, instance_count=instance_count, hyperparameters={}, resumable=True,
    )
    channels = [*training_channels(train=train, validation=validation, features=features, sharded=True),
                model_channel("selection", selection)]
    return TrainingStep(
        name="RefitXGBoost",
        step_args=trainer.train(input_data_config=channels),
        description="The best trial's parameters and round count (scaled to the rows), boosted once on the train "
        "and validation rows: the tuned candidate.",
        cache_config=ctx.cache_config,
        retry_policies=ctx.job_retry_policies,
    )
