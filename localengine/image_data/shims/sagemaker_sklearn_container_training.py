"""What the scikit-learn image's SAGEMAKER_TRAINING_MODULE (sagemaker_sklearn_container.training:main)
does for a script-mode job, as in aws/sagemaker-scikit-learn-container, src/sagemaker_sklearn_container/
training.py (train and main). That package is not published, so its three lines live here."""

from sagemaker_training import entry_point, environment, runner


def train(training_environment):
    entry_point.run(uri=training_environment.module_dir,
                    user_entry_point=training_environment.user_entry_point,
                    args=training_environment.to_cmd_args(),
                    env_vars=training_environment.to_env_vars(),
                    runner_type=runner.ProcessRunnerType)


def main():
    train(environment.Environment())
