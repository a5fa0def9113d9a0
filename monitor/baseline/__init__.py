"""Reference profiles: fit bins and categories once, store them as a versioned document.

Modules: `profiles` (in-memory types and the value rules), `build` (fit a document),
`document` (write, load, validate). This package re-exports the public names.

Pipeline position: beside the stream. `driftmon baseline build` fits a `Baseline` from a
batch file (`monitor.tables`); the decoder, the window store, the evaluator and
`driftmon compare` only *read* it, so counts from every replica and time bucket use the
same bins and add up (SPEC §2).

- Numeric feature: K bins (default 10) from the reference quantiles i/K, i = 1..K-1,
  duplicate edges collapsed; outer bins open to ±inf; bin i holds e_{i-1} < x <= e_i
  (``numpy.searchsorted(edges, x, side="left")``); min/max; missing count.
- Categorical feature: the top-k categories by count (ties by name) plus a last
  ``__other__`` bin for the rest and for categories never seen; the other reference
  categories are kept (up to 10 000) so "unseen" means "not in the reference at all".
- Prediction: the feature ``__prediction__``. Latency: reference p50/p95/p99.

Value rules (SPEC §1), shared with the decoder through `category_key` / `to_numeric`:
numbers, strings, booleans or null; a numeric feature takes finite numbers (booleans as 1/0);
a categorical feature takes strings, and numbers/booleans in their string form
(``true``/``false``, ``str(int)``, ``repr(float)``); lists and objects are invalid.

The document (JSON Schema: ``monitor/schemas/baseline.schema.json``) carries
``schema_version`` 1 and an ``id`` = ``sha256:`` of its canonical JSON without ``id`` and
``created_at``, so one reference always gets one id. Loading checks the document's
structure in code (same rules as the schema, with messages naming the field) rather than
with `jsonschema`, which stays a test-only dependency; tests check that both agree.
"""

from monitor.baseline.build import baseline_id, build_baseline
from monitor.baseline.document import (
    SCHEMA_PATH,
    baseline_from_document,
    load_baseline,
    write_baseline,
)
from monitor.baseline.profiles import (
    OTHER,
    OTHER_SEEN_CAP,
    SCHEMA_VERSION,
    Baseline,
    CategoricalProfile,
    NumericProfile,
    Profile,
    category_key,
    to_categories,
    to_numeric,
)
from monitor.tables import PREDICTION

__all__ = [
    "OTHER",
    "OTHER_SEEN_CAP",
    "PREDICTION",
    "SCHEMA_PATH",
    "SCHEMA_VERSION",
    "Baseline",
    "CategoricalProfile",
    "NumericProfile",
    "Profile",
    "baseline_from_document",
    "baseline_id",
    "build_baseline",
    "category_key",
    "load_baseline",
    "to_categories",
    "to_numeric",
    "write_baseline",
]
