"""What every test of the harness needs; kept out of the root so `pytest evals` does not pay for it."""

import io

import pandas as pd
import scipy.signal  # noqa: F401
import sklearn.metrics  # noqa: F401

# The plugin imports scipy.signal and sklearn on first use. Inside a pytester in-process
# run that first use would be undone afterwards (sys.modules is restored), and numpy's C
# extensions refuse a second load: import them once, here, for the whole session.
#
# pytester's in-process runs restore sys.modules afterwards, dropping modules first imported
# inside them. pandas imports its pyarrow extension types lazily, on the first parquet
# round trip; if that happened inside an inner run, the next one in the outer process
# re-registers them and pyarrow refuses ("type extension ... already defined"). One round
# trip here imports them once, for the whole session.
_buffer = io.BytesIO()
pd.DataFrame({"warm": pd.period_range("2020-01", periods=1, freq="M")}).to_parquet(_buffer)
pd.read_parquet(io.BytesIO(_buffer.getvalue()))
