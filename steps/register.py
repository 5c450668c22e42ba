"""RegisterModel: add the chosen candidate to the Model Registry with its evaluation and data report."""

from __future__ import annotations

from sagemaker.core.model_metrics import MetricsSource, ModelMetrics
from sagemaker.core.workflow.functions import JsonGet
from sagemaker.mlops.workflow.model_step import ModelStep
from sagemaker.serve import ModelBuilder

from steps.context import StepContext

INFERENCE_SCRIPT = "inference.py"


def register_model_step(
    ctx: StepContext, *, model_data, evaluation_uri, evaluation_page_uri, data_report_uri, evaluation, report,
    approval_status,
) -> ModelStep:
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

    def evaluated(path: str) -> JsonGet:
        return JsonGet(step_name=evaluation.name, property_file=report, json_path=path)

    step_args = builder.register(
        model_package_group_name=settings.model_package_group,
        approval_status=approval_status,
        content_types=["text/csv", "application/json"],
        response_types=["application/json", "text/csv"],
        inference_instances=["ml.m5.large", "ml.m5.xlarge"],
        transform_instances=["ml.m5.xlarge"],
        model_metrics=ModelMetrics(
            model_statistics=MetricsSource(content_type="application/json", s3_uri=evaluation_uri),
            model_data_statistics=MetricsSource(content_type="application/json", s3_uri=data_report_uri),
        ),
        # What a reviewer must see before approving, on the version itself.
        customer_metadata_properties={
            "Candidate": evaluated("chosen.candidate"),
            "DataWarnings": evaluated("data.warning_count"),
            "SuspectedLeakage": evaluated("data.suspected_leakage"),
            "EvaluationReport": evaluation_page_uri,
        },
        description="Regression model (the better of tuned XGBoost and a Ridge baseline on validation rows); "
        "takes raw feature columns, returns predictions in the target's units.",
    )
    return ModelStep(name="RegisterModel", step_args=step_args)
