"""Step factories: one small function per pipeline step, each returning a configured SDK step."""

import os

# `import sagemaker.mlops` creates a boto3 client at import time and fails without a region; the
# region of the definition itself comes from Settings, so any value works here.
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
# ModelTrainer validates its role through IAM when constructed; a build must stay offline.
os.environ.setdefault("SAGEMAKER_VALIDATE_ROLE", "false")
