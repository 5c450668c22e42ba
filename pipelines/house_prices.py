"""The house-price pipeline: parameters, then the named steps wired together.

    LocateInput ─> Preprocess ──┬─> TrainBaseline ─────────────────┐
                                └─> TuneXGBoost ─> RefitXGBoost ───┤
    FindChampion ──────────────────────────────────────────────────┴─> Evaluate ─> QualityGate ─┬─> RegisterModel
                                                                 (choose on validation,          └─> QualityGateFailed
                                                                  score on test beside the champion)
"""

from __future__ import annotations

from sagemaker.mlops.workflow.pipeline import Pipeline

from pipelines.parameters import PipelineParameters
from steps.context import StepContext
from steps.find_champion import champion_report, champion_value, find_champion_step
from steps.locate_input import input_location_report, input_uri, locate_input_step
from steps.evaluate import (
    chosen_model_uri, data_report_uri, evaluation_file_uri, evaluation_page_uri, evaluation_report, evaluation_step,
)
from steps.preprocess import OUTPUTS, preprocess_step
from steps.quality_gate import quality_gate_step
from steps.refit_xgboost import xgboost_refit_step
from steps.register import register_model_step
from steps.train_baseline import baseline_training_step
from steps.tune_xgboost import xgboost_tuning_step



def build_pipeline(ctx: StepContext) -> Pipeline:
    settings = ctx.settings
    params = PipelineParameters.declare(settings)

    location = input_location_report()
    locate_input = locate_input_step(
        ctx, input_bucket=params.input_bucket, input_key=params.input_key,
        key_encoding=params.input_key_encoding, instance_type=params.processing_instance_type, report=location,
    )
    preprocess = preprocess_step(
        ctx, input_uri=input_uri(locate_input, location), input_bucket=params.input_bucket,
        input_key=params.input_key,
        target_column=params.target_column, id_columns=params.id_columns,
        exclude_columns=params.exclude_columns, instance_type=params.processing_instance_type,
        instance_count=params.processing_instance_count, training_instance_count=params.training_instance_count,
    )
    splits = {name: preprocess.properties.ProcessingOutputConfig.Outputs[name].S3Output.S3Uri for name in OUTPUTS}
    train_baseline = baseline_training_step(
        ctx, train=splits["train"], validation=splits["validation"], features=splits["features"],
        instance_type=params.training_instance_type,
    )
    tune_xgboost = xgboost_tuning_step(
        ctx, train=splits["encoded-train"], validation=splits["encoded-validation"], features=splits["features"],
        instance_type=params.training_instance_type, instance_count=params.training_instance_count,
        max_jobs=settings.tuning_max_jobs,
        max_parallel_jobs=min(settings.tuning_max_parallel_jobs, settings.tuning_max_jobs),
    )
    refit_xgboost = xgboost_refit_step(
        ctx, train=splits["encoded-train"], validation=splits["encoded-validation"], features=splits["features"],
        selection=tune_xgboost.get_top_model_s3_uri(
            top_k=0, s3_bucket=settings.bucket, prefix=f"{ctx.key_prefix}/models/xgboost"),
        instance_type=params.training_instance_type, instance_count=params.training_instance_count,
    )
    champion = champion_report()
    find_champion = find_champion_step(ctx, instance_type=params.processing_instance_type, report=champion)
    report = evaluation_report()
    evaluate = evaluation_step(
        ctx, baseline_model=train_baseline.properties.ModelArtifacts.S3ModelArtifacts,
        baseline_job_name=train_baseline.properties.TrainingJobName,
        baseline_validation_rmse=train_baseline.properties.FinalMetricDataList["validation-rmse"].Value,
        xgboost_model=refit_xgboost.properties.ModelArtifacts.S3ModelArtifacts,
        xgboost_job_name=refit_xgboost.properties.TrainingJobName,
        xgboost_validation_rmse=refit_xgboost.properties.FinalMetricDataList["validation-rmse"].Value,
        splits=splits, champion_model=champion_value(find_champion, champion, "model_data_url"),
        champion_name=champion_value(find_champion, champion, "name"),
        instance_type=params.processing_instance_type, report=report,
        min_r2=params.min_r2, max_rmse=params.max_rmse, champion_tolerance=params.champion_tolerance,
    )
    register = register_model_step(
        ctx, model_data=chosen_model_uri(evaluate), evaluation_uri=evaluation_file_uri(evaluate),
        evaluation_page_uri=evaluation_page_uri(evaluate),
        data_report_uri=data_report_uri(preprocess), evaluation=evaluate, report=report,
        approval_status=params.approval_status,
    )
    gate = quality_gate_step(
        evaluate, report, min_r2=params.min_r2, max_rmse=params.max_rmse,
        champion_tolerance=params.champion_tolerance, if_passed=[register],
    )

    return Pipeline(
        name=settings.pipeline_name,
        parameters=params.all(),
        steps=[locate_input, preprocess, train_baseline, tune_xgboost, refit_xgboost, find_champion, evaluate, gate],
        sagemaker_session=ctx.session,
    )
