"""Call a registered model version on this machine: serve it as an endpoint would, or score a file with it.

A version comes from the local registry (`run`'s) or, by ARN, from the cloud Model Registry; either
way its model data and its serving code (`SAGEMAKER_SUBMIT_DIRECTORY`) are fetched and laid out as
the container lays them out, and the container's own handlers answer (localengine.serving).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from localengine import LocalS3
from localengine.serving import Model, ServingFiles, materialize

from pipelines import hosting
from pipelines.deploy import DeployError
from pipelines.local import local_registry


@dataclass(frozen=True)
class ChosenVersion:
    package: dict
    fetch: Callable[[str, Path], None]

    @property
    def label(self) -> str:
        return f"{hosting.label(self.package)} ({self.package['ModelApprovalStatus']})"

    def files(self, directory: Path) -> ServingFiles:
        return materialize(self.package["InferenceSpecification"]["Containers"][0], directory, self.fetch)

    def load(self, directory: Path) -> Model:
        """The handlers and model, loaded now (for scoring files; the server loads in the background)."""
        model = Model(self.files(directory)).load()
        if model.load_error:
            raise DeployError(f"{self.label}: {model.load_error}")
        return model


def local_version(local_dir: Path, group: str, version: int | None) -> ChosenVersion:
    """A version of the local registry: the one asked for, else the newest."""
    packages = local_registry(local_dir).list_packages(group)
    if not packages:
        raise DeployError(f"no model versions in group {group} under {local_dir}; register one with `pipeline.py run`")
    if version is None:
        package = packages[-1]
    else:
        package = next((p for p in packages if p["ModelPackageVersion"] == version), None)
        if package is None:
            raise DeployError(f"group {group} has no version {version} under {local_dir}; it has versions "
                              f"{', '.join(str(p['ModelPackageVersion']) for p in packages)} (`pipeline.py models`)")
    s3 = LocalS3(local_dir / "s3")

    def fetch(uri: str, file: Path) -> None:
        if not s3.exists(uri):
            raise DeployError(f"{uri} is gone from local S3 under {local_dir}; run the pipeline again to re-create it")
        shutil.copyfile(s3.path_for(uri), file)

    return ChosenVersion(package, fetch)


def cloud_version(sagemaker, s3, model_package_arn: str) -> ChosenVersion:
    """A version of the cloud Model Registry, its files read from S3 with boto3's managed transfer."""
    package = sagemaker.describe_model_package(ModelPackageName=model_package_arn)

    def fetch(uri: str, file: Path) -> None:
        bucket, _, key = uri.removeprefix("s3://").partition("/")
        s3.download_file(bucket, key, str(file))

    return ChosenVersion(package, fetch)
