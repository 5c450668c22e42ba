"""RegisterModel: add the tuned model to the Model Registry with its evaluation metrics."""

from __future__ import annotations

from sagemaker.core.model_metrics import MetricsSource, ModelMetrics
from sagemaker.mlops.workflow.model_step import ModelStep
from sagemaker.serve import ModelBuilder

from steps.context import StepContext

INFERENCE_SCRIPT = "inference.py"


def register_model_step(ctx: StepContext, *, model_data, evaluation_uri, approval_status) -> ModelStep:
    settings = ctx.settings
    inference_code = ctx.code(INFERENCE_SCRIPT)
    builder = ModelBuilder(
        image_uri=ctx.image("xgboost"),
        s3_model_data_url=model_data,
        role_arn=settings.role_arn,
        sagemaker_session=ctx.session,
        env_vars={
            "SAGEMAKER_PROGRAM": INFERENCE_SCRIPT,
            "SAGEMAKER_SUBMIT_DIRECTORY": inference_code.sourcedir_uri(settings.bucket, ctx.key_prefix),
        },
    )
    step_args = builder.register(
        model_package_group_name=settings.model_package_group,
        approval_status=approval_status,
        content_types=["text/csv", "application/json"],
        response_types=["application/json", "text/csv"],
        inference_instances=["ml.m5.large", "ml.m5.xlarge"],
        transform_instances=["ml.m5.xlarge"],
        model_metrics=ModelMetrics(
            model_statistics=MetricsSource(content_type="application/json", s3_uri=evaluation_uri)
        ),
        description="XGBoost house-price regressor; takes raw feature columns, returns prices.",
    )
    return ModelStep(name="RegisterModel", step_args=step_args)
