"""Processing job (scikit-learn image): which model version of the group is approved for production?

Asks SageMaker's Model Registry for the newest Approved version of the model package group
(ListModelPackages, then DescribeModelPackage) and writes champion.json: whether there is
one, its ARN and version, and the S3 URI of its model data for Evaluate to score. Without a
champion, the URI is the no-champion marker this job writes, so Evaluate's input always
exists. The job only reads the registry; it crunches no data. Uses boto3 (which the image's
training toolkit ships), never the SageMaker SDK; a local engine points boto3 at its own
registry.
"""

import argparse
from pathlib import Path

import boto3

from container import ContractArgumentParser, failure_reporting, opt_ml_root, write_bytes_atomic, write_json_atomic

CHAMPION_FILE = "champion.json"
NO_CHAMPION_FILE = "no-champion.txt"


def newest_approved(sagemaker, group: str) -> dict | None:
    """DescribeModelPackage of the group's newest Approved version, or None."""
    listed = sagemaker.list_model_packages(
        ModelPackageGroupName=group, ModelApprovalStatus="Approved",
        SortBy="CreationTime", SortOrder="Descending", MaxResults=1,
    )["ModelPackageSummaryList"]
    if not listed:
        return None
    return sagemaker.describe_model_package(ModelPackageName=listed[0]["ModelPackageArn"])


def champion_record(package: dict | None, marker_uri: str) -> dict:
    if package is None:
        return {"found": "no", "name": "none", "arn": "", "model_data_url": marker_uri}
    containers = (package.get("InferenceSpecification") or {}).get("Containers") or [{}]
    model_data_url = containers[0].get("ModelDataUrl")
    if not model_data_url:
        return {"found": "no", "name": "none", "arn": package["ModelPackageArn"], "model_data_url": marker_uri}
    return {"found": "yes", "name": f"v{package.get('ModelPackageVersion', '')}", "arn": package["ModelPackageArn"],
            "model_data_url": model_data_url}


def parse_arguments(argv=None) -> argparse.Namespace:
    parser = ContractArgumentParser("processing", description=__doc__.splitlines()[0])
    parser.add_argument("--model-package-group", required=True)
    parser.add_argument("--marker-uri", required=True, help="S3 URI of the marker output (used without a champion)")
    parser.add_argument("--output-dir", type=Path, default=opt_ml_root() / "processing" / "champion")
    parser.add_argument("--marker-dir", type=Path, default=opt_ml_root() / "processing" / "marker")
    return parser.parse_args(argv)


def main(argv=None) -> None:
    arguments = parse_arguments(argv)
    with failure_reporting("processing"):
        record = champion_record(newest_approved(boto3.client("sagemaker"), arguments.model_package_group),
                                 arguments.marker_uri)
        write_bytes_atomic(arguments.marker_dir / NO_CHAMPION_FILE, b"no approved model version\n")
        write_json_atomic(arguments.output_dir / CHAMPION_FILE, record)
        print(f"champion: {record['name']} {record['arn']}".rstrip())


if __name__ == "__main__":
    main()
