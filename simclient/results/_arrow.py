"""Arrow / pandas conversion of the row tables. Imported only when a caller asks for Arrow, pandas or Parquet, so
``import simclient`` (and ``import simclient.results``) never loads pyarrow or pandas."""
from __future__ import annotations

from typing import Any, List, Sequence

from ._rows import Column, Row


def require_pyarrow(what: str) -> Any:
    try:
        import pyarrow
    except ImportError:
        raise ImportError(f"{what} needs pyarrow: pip install 'simclient[data]'") from None
    return pyarrow


def arrow_type(kind: str) -> Any:
    import pyarrow as pa

    return {"int": pa.int64(), "str": pa.string(), "bool": pa.bool_(), "json": pa.string(),
            "strs": pa.list_(pa.string())}[kind]


def schema(cols: Sequence[Column]) -> Any:
    import pyarrow as pa

    return pa.schema([pa.field(name, arrow_type(kind)) for name, kind in cols])


def record_batch(rows: Sequence[Row], sch: Any) -> Any:
    import pyarrow as pa

    n = len(sch)
    if rows:
        cols: List[Any] = [list(c) for c in zip(*rows)]
    else:
        cols = [[] for _ in range(n)]
    return pa.RecordBatch.from_arrays([pa.array(c, type=sch.field(i).type) for i, c in enumerate(cols)],
                                      schema=sch)


def arrow_to_pandas(table: Any) -> Any:
    """pandas with nullable integer and boolean columns (a null fee stays <NA>, not a float NaN)."""
    try:
        import pandas as pd
    except ImportError:
        raise ImportError("to_pandas() needs pandas: pip install 'simclient[data]'") from None
    import pyarrow as pa

    mapping = {pa.int64(): pd.Int64Dtype(), pa.bool_(): pd.BooleanDtype()}
    return table.to_pandas(types_mapper=mapping.get)


def rows_to_pandas(rows: Sequence[Row], cols: Sequence[Column]) -> Any:
    """pandas without pyarrow: the same column dtypes from Python rows."""
    try:
        import pandas as pd
    except ImportError:
        raise ImportError("to_pandas() needs pandas: pip install 'simclient[data]'") from None
    df = pd.DataFrame.from_records(list(rows), columns=[c for c, _ in cols])
    for name, kind in cols:
        if kind == "int":
            df[name] = df[name].astype("Int64")
        elif kind == "bool":
            df[name] = df[name].astype("boolean")
    return df
