"""Root conftest: only what the repository's own test runs need."""

import io

import pandas as pd

# pytester's in-process runs restore sys.modules afterwards, dropping modules first imported
# inside them. pandas imports its pyarrow extension types lazily, on the first parquet
# round trip; if that happened inside an inner run, the next one in the outer process
# re-registers them and pyarrow refuses ("type extension ... already defined"). One round
# trip here imports them once, for the whole session.
_buffer = io.BytesIO()
pd.DataFrame({"warm": pd.period_range("2020-01", periods=1, freq="M")}).to_parquet(_buffer)
pd.read_parquet(io.BytesIO(_buffer.getvalue()))
