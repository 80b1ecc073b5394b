"""Parquet tables with activation vectors as ``FixedSizeList<float32, d>`` and a YAML sidecar
(``{file}.nla_meta.yaml``) recording what produced them."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from nla.errors import NLAError
from nla.training.provenance import provenance

VECTOR = "activation_vector"
DATASET_SCHEMA = 1


def sidecar_path(path: Path) -> Path:
    """Where the sidecar of a Parquet file lives."""
    return path.with_name(path.name + ".nla_meta.yaml")


def write_table(
    path: Path, frame: pd.DataFrame, vectors: np.ndarray | None, *, stage: str, inputs: dict[str, Any]
) -> Path:
    """Write ``frame`` (plus ``vectors`` as the activation column) and its sidecar, atomically."""
    table = pa.Table.from_pandas(frame.reset_index(drop=True), preserve_index=False)
    if vectors is not None:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        column = pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), vectors.shape[1])
        table = table.append_column(VECTOR, column)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, staging)
    meta = {
        "kind": "nla_dataset",
        "schema_version": DATASET_SCHEMA,
        "stage": stage,
        "row_count": len(frame),
        "d_model": None if vectors is None else int(vectors.shape[1]),
        "inputs": inputs,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        **provenance(),
    }
    sidecar = sidecar_path(path)
    sidecar.write_text(yaml.safe_dump(meta, sort_keys=False, allow_unicode=True), encoding="utf-8")
    os.replace(staging, path)
    return path


def read_table(path: Path) -> tuple[pd.DataFrame, np.ndarray | None]:
    """The non-vector columns as a frame and the vectors as a float32 ``[n, d]`` array (or None)."""
    if not path.is_file():
        raise NLAError(f"{path} is missing: run the stage that writes it first")
    table = pq.read_table(path)
    vectors = None
    if VECTOR in table.column_names:
        column = table.column(VECTOR).combine_chunks()
        width = column.type.list_size
        vectors = column.flatten().to_numpy(zero_copy_only=False).reshape(-1, width).astype(np.float32)
        table = table.drop_columns([VECTOR])
    return table.to_pandas(), vectors


def read_sidecar(path: Path) -> dict[str, Any]:
    """The sidecar of a table written by ``write_table``."""
    return yaml.safe_load(sidecar_path(path).read_text(encoding="utf-8"))
