"""What a non-editable install needs from the packaging: every imported distribution declared, the
migrations inside the wheel, and provenance that says how embedded weights were obtained. (The full
install-and-use check is ``tests/wheel_install.sh``, run by ``make test``.)"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

from audits.provenance import run_provenance, weights_provenance

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("nla", "audits", "workbench")
# Imported only where an optional feature is asked for; each must be declared in an extra.
OPTIONAL = {"ray", "anthropic", "openai", "psycopg"}


def _imported_top_levels() -> set[str]:
    names: set[str] = set()
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    names.update(alias.name.split(".")[0] for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - set(PACKAGES) - {"__future__"}


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared() -> tuple[set[str], set[str]]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    names = lambda reqs: {_canonical(re.split(r"[\s\[<>=~!;]", r, maxsplit=1)[0]) for r in reqs}  # noqa: E731
    extras = set().union(*(names(reqs) for reqs in project["optional-dependencies"].values()))
    return names(project["dependencies"]), extras


def test_every_directly_imported_distribution_is_declared() -> None:
    required, extras = _declared()
    owners = importlib.metadata.packages_distributions()
    missing = {}
    for module in sorted(_imported_top_levels()):
        dists = {_canonical(d) for d in owners.get(module, [])} or ({module} if module in OPTIONAL else set())
        assert dists, f"cannot tell which distribution provides {module!r}"
        pool = extras | required if module in OPTIONAL else required
        if not dists & pool:
            missing[module] = sorted(dists)
    assert not missing, f"imported but not declared in pyproject.toml: {missing}"


def test_the_wheel_ships_every_migration(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-qq", "--no-deps", "--no-build-isolation", "-w", str(tmp_path),
         str(REPO)], check=True, capture_output=True,
    )  # fmt: skip
    (wheel,) = tmp_path.glob("nla_workbench-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {"audits/store/migrations/env.py", "audits/store/migrations/script.py.mako"} | {
        f"audits/store/migrations/versions/{p.name}" for p in (REPO / "migrations" / "versions").glob("*.py")
    }
    assert expected <= names, sorted(expected - names)
    assert not any(n.startswith("migrations/") for n in names)  # never a top-level `migrations` package


def test_an_installed_layout_finds_its_packaged_migrations(tmp_path: Path) -> None:
    """audits/store/migrate.py beside audits/store/migrations (as in site-packages) uses that copy."""
    site = tmp_path / "site"
    (site / "audits" / "store").mkdir(parents=True)
    for name in ("__init__.py", "migrate.py", "engine.py", "errors.py"):
        (site / "audits" / "store" / name).write_bytes((REPO / "audits" / "store" / name).read_bytes())
    (site / "audits" / "__init__.py").write_text("")
    import shutil

    shutil.copytree(REPO / "migrations", site / "audits" / "store" / "migrations")
    (site / "audits" / "store" / "__init__.py").write_text("")  # no ORM import chain needed here
    code = "from audits.store.migrate import MIGRATIONS_DIR, head_revision; print(MIGRATIONS_DIR, head_revision())"
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                          env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"})  # fmt: skip
    assert done.returncode == 0, done.stderr
    where, head = done.stdout.split()
    assert Path(where) == site / "audits" / "store" / "migrations"
    assert head == sorted(p.name[:4] for p in (REPO / "migrations" / "versions").glob("0*.py"))[-1]


def test_provenance_records_that_embedded_weights_are_dequantised() -> None:
    note = weights_provenance("embedded:smollm2-135m-instruct")
    assert note["quantization"].startswith("GGUF Q4_1") and "float32" in note["loaded_as"]
    assert note["source"].endswith("SmolLM2-135M-Instruct.Q4_1.gguf") and len(note["sha256"]) == 64
    assert weights_provenance("/some/local/model") is None
    recorded = run_provenance(target="embedded:smollm2-135m-instruct", arms={"": {"base": "/x"}})
    assert recorded["weights"] == {"embedded:smollm2-135m-instruct": note}
