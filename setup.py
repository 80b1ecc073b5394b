"""Packaging glue that pyproject.toml cannot express: the Alembic migrations live in the top-level
``migrations/`` (where ``alembic.ini`` and developers expect them) and ship inside the wheel as the
package ``audits.store.migrations``, where ``audits.store.migrate`` finds them in an installed copy.
Everything else is in pyproject.toml."""

from setuptools import find_packages, setup

MIGRATIONS = {
    "audits.store.migrations": "migrations",
    "audits.store.migrations.versions": "migrations/versions",
}

setup(
    packages=[*find_packages(include=["nla*", "audits*", "workbench*"]), *MIGRATIONS],
    package_dir=MIGRATIONS,
)
