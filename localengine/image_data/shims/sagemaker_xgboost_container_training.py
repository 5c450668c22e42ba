"""What the XGBoost image's SAGEMAKER_TRAINING_MODULE (sagemaker_xgboost_container.training:main) does
for a script-mode job, as in aws/sagemaker-xgboost-container, src/sagemaker_xgboost_container/
training.py (train and main; algorithm mode, which needs no entry point, is not reproduced). That
package is not published, so its script-mode path lives here."""

import sys

import sagemaker_containers.beta.framework as framework


def train(training_environment):
    if training_environment.user_entry_point is None:
        raise RuntimeError("XGBoost algorithm mode (no sagemaker_program) does not run locally")
    framework.modules.run_module(
        training_environment.module_dir,
        training_environment.to_cmd_args(),
        training_environment.to_env_vars(),
        training_environment.module_name,
        capture_error=False,
    )


def main():
    train(framework.training_env())
    sys.exit(0)
