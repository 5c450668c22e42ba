"""Faithful mode: each framework image's jobs run in a virtual environment pinned like that image,
and script-mode training goes through the image's own training toolkit.

The fast default runs every job with the caller's Python and packages. A faithful run instead gives
each image a virtual environment built from `image_data/<repository>-<version>.txt` (the image's
library versions and its toolkit: `sagemaker-training` in the scikit-learn image, the legacy
`sagemaker-containers` in the XGBoost image, patched as that image's Dockerfile patches it) on the
image's Python version when this machine has it. Environments are built once, under a file lock, and
reused by every later run. Host names `algo-N` resolve to this machine inside them (`sitecustomize.py`).
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock

from .errors import EngineError, UnsupportedConstruct

IMAGE_DATA = Path(__file__).resolve().parent / "image_data"
SHIMS = IMAGE_DATA / "shims"


@dataclass(frozen=True)
class FrameworkImage:
    repository: str
    version: str
    python: str
    toolkit: str  # the package whose `cli.train:main` is the image's `train` entry point
    training_module: str  # SAGEMAKER_TRAINING_MODULE, as `module:function` (a shim in image_data/shims)

    @property
    def name(self) -> str:
        return f"{self.repository}:{self.version}"

    @property
    def requirements(self) -> Path:
        return IMAGE_DATA / f"{self.repository}-{self.version}.txt"

    def train_command(self, python: Path) -> list[str]:
        return [str(python), "-c", f"from {self.toolkit}.cli.train import main; main()"]


FRAMEWORK_IMAGES = (
    FrameworkImage("sagemaker-scikit-learn", "1.9-0", "3.12", "sagemaker_training",
                   "sagemaker_sklearn_container_training:main"),
    FrameworkImage("sagemaker-xgboost", "3.2-0", "3.12", "sagemaker_containers",
                   "sagemaker_xgboost_container_training:main"),
)


def framework_image(image_uri: str) -> FrameworkImage:
    """The framework image an ECR URI names (`.../sagemaker-xgboost:3.2-0-cpu-py3`)."""
    repository, _, tag = str(image_uri).rsplit("/", 1)[-1].partition(":")
    for image in FRAMEWORK_IMAGES:
        if repository == image.repository and (tag == image.version or tag.startswith(image.version + "-")):
            return image
    known = ", ".join(image.name for image in FRAMEWORK_IMAGES)
    raise UnsupportedConstruct(f"faithful mode has no environment for image {image_uri} (it has: {known}); "
                               f"add image_data/<repository>-<version>.txt with that image's pins")


def find_interpreter(version: str) -> Path | None:
    """A Python of this minor version on this machine (on PATH or under pyenv), or None."""
    candidates = [shutil.which(f"python{version}"), *sorted(glob.glob(os.path.expanduser(
        f"~/.pyenv/versions/{version}*/bin/python{version}")), reverse=True),
        f"/usr/bin/python{version}", f"/usr/local/bin/python{version}"]
    for candidate in filter(None, candidates):
        try:
            found = subprocess.run([candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                                   capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if found.returncode == 0 and found.stdout.strip() == version:
            return Path(candidate)
    return None


class ImageEnvironments:
    """Virtual environments per framework image under `root`, built on first use."""

    def __init__(self, root: Path, on_build: Callable[[str], None] | None = None):
        self.root = Path(root).resolve()
        self._on_build = on_build or (lambda message: None)
        self._ready: dict[FrameworkImage, Path] = {}  # each image's environment, once found or built
        self._lock = threading.Lock()

    def python(self, image: FrameworkImage) -> Path:
        """The interpreter of the image's environment, building the environment if needed."""
        return self._environment(image) / "bin" / "python"

    def describe(self, image: FrameworkImage) -> dict:
        """How the image's environment was built (Python, seconds)."""
        return json.loads((self._environment(image) / "ready.json").read_text())

    def _environment(self, image: FrameworkImage) -> Path:
        """Jobs start from many threads; the interpreter search and the build happen once per image."""
        with self._lock:
            if image not in self._ready:
                interpreter = find_interpreter(image.python)
                base = interpreter or Path(sys.executable)
                venv = self.root / f"{image.repository}-{image.version}-{self._fingerprint(image, base)}"
                self.root.mkdir(parents=True, exist_ok=True)
                with FileLock(str(venv) + ".lock"):  # other processes may be building it too
                    if not (venv / "ready.json").is_file():
                        self._build(image, base, venv, exact_python=interpreter is not None)
                self._ready[image] = venv
            return self._ready[image]

    @staticmethod
    def _fingerprint(image: FrameworkImage, base: Path) -> str:
        digest = hashlib.sha256(image.requirements.read_bytes())
        digest.update((IMAGE_DATA / "hostnames" / "sitecustomize.py").read_bytes())
        digest.update(os.path.realpath(base).encode())
        return digest.hexdigest()[:12]

    def _build(self, image: FrameworkImage, base: Path, venv: Path, *, exact_python: bool) -> None:
        started = time.monotonic()
        note = "" if exact_python else f" (no Python {image.python} here: using {sys.version.split()[0]})"
        self._on_build(f"building the environment of {image.name}{note}, once: {venv}")
        shutil.rmtree(venv, ignore_errors=True)
        _run([str(base), "-m", "venv", str(venv)], f"creating the environment of {image.name}")
        python = venv / "bin" / "python"
        with_dependencies, without_dependencies = _requirement_sections(image.requirements)
        for requirements, extra in ((with_dependencies, []), (without_dependencies, ["--no-deps"])):
            if requirements:
                _run([str(python), "-m", "pip", "install", "--disable-pip-version-check", "--progress-bar", "off",
                      *extra, *requirements], f"installing {image.requirements.name}")
        site_packages = Path(subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True, text=True, check=True).stdout.strip())
        _patch_sagemaker_containers(site_packages)
        shutil.copyfile(IMAGE_DATA / "hostnames" / "sitecustomize.py", site_packages / "sitecustomize.py")
        version = subprocess.run([str(python), "-c", "import platform; print(platform.python_version())"],
                                 capture_output=True, text=True, check=True).stdout.strip()
        seconds = round(time.monotonic() - started, 1)
        (venv / "ready.json").write_text(json.dumps({"image": image.name, "python": version,
                                                     "build_seconds": seconds}))
        self._on_build(f"built the environment of {image.name} (Python {version}) in {seconds:.0f} s")


NO_DEPENDENCIES_MARKER = "# install without dependencies:"


def _requirement_sections(path: Path) -> tuple[list[str], list[str]]:
    """The requirements, and those after the marker line, which install without their dependencies
    (an image that overrides a toolkit's pins installs them so)."""
    sections: tuple[list[str], list[str]] = ([], [])
    current = sections[0]
    for line in path.read_text().splitlines():
        if line.strip() == NO_DEPENDENCIES_MARKER:
            current = sections[1]
        elif line.strip() and not line.lstrip().startswith("#"):
            current.append(line.strip())
    return sections


def _patch_sagemaker_containers(site_packages: Path) -> None:
    """What the XGBoost image's Dockerfile does: `collections.Mapping` is `collections.abc.Mapping`
    since Python 3.10, and sagemaker-containers 2.8.6.post2 does not import without the change."""
    mapping = site_packages / "sagemaker_containers" / "_mapping.py"
    if mapping.is_file():
        mapping.write_text(mapping.read_text().replace("collections.Mapping", "collections.abc.Mapping"))


def _run(argv: list[str], what: str) -> None:
    completed = subprocess.run(argv, capture_output=True, text=True)
    if completed.returncode != 0:
        tail = "\n".join((completed.stdout + completed.stderr).strip().splitlines()[-15:])
        raise EngineError(f"faithful mode: {what} failed (exit code {completed.returncode}):\n{tail}")
