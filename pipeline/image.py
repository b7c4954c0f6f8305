"""The training image the components run in (``pipeline/Dockerfile``) and the component decorator.

KFP fixes a component's image when the component is defined, so it is read from the
environment at import time: ``leadscore pipeline compile --training-image`` and
``leadscore run --engine vertex`` set ``LEADSCORE_TRAINING_IMAGE`` before importing the pipeline.
Locally (``kfp-local``) the subprocess runner ignores it.
"""

import functools
import os

from kfp import dsl

TRAINING_IMAGE_ENV = "LEADSCORE_TRAINING_IMAGE"
DEFAULT_TRAINING_IMAGE = "leadscore-training:latest"
TRAINING_IMAGE = os.environ.get(TRAINING_IMAGE_ENV) or DEFAULT_TRAINING_IMAGE

# Every component runs in the training image, which already has leadscore and kfp installed at
# pinned versions: nothing is installed when a task starts.
component = functools.partial(dsl.component, base_image=TRAINING_IMAGE, install_kfp_package=False)
