"""TrainBaseline: a regularised linear model, the yardstick the quality gate compares against."""

from __future__ import annotations

from sagemaker.mlops.workflow.steps import TrainingStep

from steps.context import StepContext
from steps.training import script_mode_trainer, training_channels


def baseline_training_step(ctx: StepContext, *, train, validation, features, instance_type) -> TrainingStep:
    trainer = script_mode_trainer(
        ctx, name="baseline", framework="sklearn", script="train_baseline.py",
        instance_type=instance_type, hyperparameters={},
    )
    step_args = trainer.train(input_data_config=training_channels(train=train, validation=validation, features=features))
    return TrainingStep(
        name="TrainBaseline",
        step_args=step_args,
        description="Ridge regression on the same features: the baseline the tuned model must beat.",
        cache_config=ctx.cache_config,
        retry_policies=ctx.job_retry_policies,
    )
