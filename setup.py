"""Installs the repo's top-level folders under one `fusionrec.` namespace: agent/ is `fusionrec.agent`, etc.

Nothing else lands at the top of site-packages, so no other distribution's `agent` or `ui` can collide
with ours. Metadata and dependencies live in pyproject.toml.
"""

from setuptools import find_namespace_packages, setup

TOPS = ("agent", "retrieval", "encoders", "finetune", "evaluation", "ui")  # folders at the repo root
SKIP = ["*__pycache__*", "*.egg-info*"]

package_dir = {"fusionrec": "fusionrec", **{f"fusionrec.{top}": top for top in TOPS}}
packages = ["fusionrec", *(f"fusionrec.{p}" for p in find_namespace_packages("fusionrec", exclude=SKIP))]
for top in TOPS:
    packages += [f"fusionrec.{top}", *(f"fusionrec.{top}.{p}" for p in find_namespace_packages(top, exclude=SKIP))]

setup(package_dir=package_dir, packages=packages)
