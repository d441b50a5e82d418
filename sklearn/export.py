#!/usr/bin/env python3
"""Export a fitted scikit-learn heart-disease Pipeline for `trainer import-sklearn`.

Run it with the scikit-learn that fitted the pipeline (your own venv); it needs numpy, pandas,
joblib and scikit-learn, nothing from this project:

    python3 sklearn/export.py model.joblib --data processed.cleveland.data --out model.sklearn.json

or, for a pipeline logged with mlflow.sklearn and registered (MLFLOW_TRACKING_URI set, mlflow
installed beside scikit-learn):

    python3 sklearn/export.py models:/heart-disease@champion --data ... --out model.sklearn.json

What it reads is the shape the Python heart-disease project trained (and most tabular pipelines
have): a Pipeline of a ColumnTransformer and a classifier.

  ColumnTransformer, each transformer a step or a Pipeline of steps, columns named by the 13
  UCI attribute names, every attribute used exactly once, remainder="drop":
    numeric:      SimpleImputer (mean, median, most_frequent or constant), then StandardScaler
                  (either may be left out; without an imputer a missing value is refused)
    categorical:  SimpleImputer, then OneHotEncoder (drop=None, no infrequent categories)
  classifier:     LogisticRegression (binary), DecisionTreeClassifier, RandomForestClassifier

Anything else is refused, naming the step and what is supported: never a silently different
model. What it writes is the fitted numbers (imputer statistics, scaler means and scales,
category lists, coefficients, tree arrays) and golden vectors: scikit-learn's own predict_proba
on rows of --data and on those rows with fields missing, which the scorer must reproduce to
1e-9 before it serves the model.
"""

import argparse
import hashlib
import json
import math
import platform
import sys

FIELDS = [
    "age", "sex", "cp", "trestbps", "chol", "fbs", "restecg",
    "thalach", "exang", "oldpeak", "slope", "ca", "thal",
]
FORMAT = "heart-sklearn-export/v1"
# Golden vectors: this many rows of --data, and each of them again with one field missing.
GOLDEN_ROWS = 40


class Unsupported(Exception):
    """The pipeline has something the importer does not reproduce."""


def name(obj):
    return type(obj).__name__


def read_rows(path):
    """Rows of 13 values (None for missing) from the UCI file ('?' for missing, a 14th column
    ignored) or a CSV with a header naming the 13 fields."""
    with open(path, "rb") as f:
        raw = f.read()
    text = raw.decode("utf-8")
    lines = [l.strip() for l in text.splitlines() if l.strip()]
    header = [h.strip().strip('"') for h in lines[0].split(",")]
    if set(FIELDS) <= set(header):
        index = [header.index(f) for f in FIELDS]
        lines = lines[1:]
    else:
        index = list(range(13))
    rows = []
    for line in lines:
        cells = line.split(",")
        row = []
        for j in index:
            cell = cells[j].strip() if j < len(cells) else ""
            row.append(None if cell in ("", "?", "NA", "nan") else float(cell))
        rows.append(row)
    if not rows:
        raise SystemExit(f"export: {path} has no rows")
    return rows, hashlib.sha256(raw).hexdigest()


def columns_of(columns):
    if isinstance(columns, str):
        columns = [columns]
    out = []
    for c in columns:
        if not isinstance(c, str) or c not in FIELDS:
            raise Unsupported(
                f"ColumnTransformer column {c!r}: columns must be named by the 13 UCI attributes "
                f"({', '.join(FIELDS)}), as in a DataFrame with those column names")
        out.append(c)
    return out


def steps_of(transformer, where):
    from sklearn.pipeline import Pipeline
    if isinstance(transformer, Pipeline):
        return [(f"{where}/{n}", s) for n, s in transformer.steps if s not in (None, "passthrough")]
    return [(where, transformer)]


def export_columns(pre):
    """Per field, its imputer fill, scaler mean/scale or categories; and the output columns in
    the ColumnTransformer's order."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    if not isinstance(pre, ColumnTransformer):
        raise Unsupported(
            f"the first step is a {name(pre)}; supported: a ColumnTransformer of numeric "
            "(SimpleImputer, StandardScaler) and categorical (SimpleImputer, OneHotEncoder) columns")
    if not (isinstance(pre.remainder, str) and pre.remainder == "drop"):
        raise Unsupported("ColumnTransformer(remainder=...) must be 'drop': name every field in a transformer")
    fields = {}
    output = []
    for tname, transformer, columns in pre.transformers_:
        if isinstance(transformer, str) and transformer == "drop":
            continue
        cols = columns_of(columns)
        passthrough = isinstance(transformer, str) and transformer == "passthrough"
        steps = [] if passthrough else steps_of(transformer, tname)
        fill = [None] * len(cols)
        mean = [0.0] * len(cols)
        scale = [1.0] * len(cols)
        categories = None
        for where, step in steps:
            if categories is not None:
                raise Unsupported(f"step {where} ({name(step)}) after a OneHotEncoder; the encoder must come last")
            if isinstance(step, SimpleImputer):
                if step.add_indicator:
                    raise Unsupported(f"step {where}: SimpleImputer(add_indicator=True) is not supported")
                if not (isinstance(step.missing_values, float) and math.isnan(step.missing_values)):
                    raise Unsupported(f"step {where}: SimpleImputer must impute NaN (missing_values=np.nan)")
                stats = [float(s) for s in step.statistics_]
                if any(math.isnan(s) for s in stats):
                    raise Unsupported(f"step {where}: a column had no value to impute with")
                # An imputer after a scaler would fill scaled values; only before is supported.
                if mean != [0.0] * len(cols) or scale != [1.0] * len(cols):
                    raise Unsupported(f"step {where}: SimpleImputer after a StandardScaler; put it first")
                fill = stats
            elif isinstance(step, StandardScaler):
                mean = [float(m) for m in step.mean_] if step.with_mean else [0.0] * len(cols)
                scale = [float(s) for s in step.scale_] if step.with_std else [1.0] * len(cols)
            elif isinstance(step, OneHotEncoder):
                if step.drop is not None:
                    raise Unsupported(f"step {where}: OneHotEncoder(drop={step.drop!r}) is not supported; use drop=None")
                if getattr(step, "min_frequency", None) is not None or getattr(step, "max_categories", None) is not None:
                    raise Unsupported(f"step {where}: OneHotEncoder with infrequent categories (min_frequency, max_categories) is not supported")
                if mean != [0.0] * len(cols) or scale != [1.0] * len(cols):
                    raise Unsupported(f"step {where}: OneHotEncoder after a StandardScaler is not supported")
                categories = []
                for col, cats in zip(cols, step.categories_):
                    codes = [float(c) for c in cats if not (isinstance(c, float) and math.isnan(c))]
                    if len(codes) != len(cats) or any(c != round(c) for c in codes):
                        raise Unsupported(f"step {where}: {col} has categories {list(cats)}; only integer codes are supported")
                    categories.append([int(c) for c in codes])
            else:
                raise Unsupported(
                    f"step {where} is a {name(step)}; supported: SimpleImputer, StandardScaler, OneHotEncoder")
        for k, col in enumerate(cols):
            if col in fields:
                raise Unsupported(f"field {col} is used by two transformers; use each field once")
            if fill[k] is None:
                raise Unsupported(
                    f"transformer {tname}: {col} has no SimpleImputer, so a missing value would be "
                    "refused by scikit-learn; add SimpleImputer before the other steps")
            if categories is None:
                fields[col] = {"kind": "scaled", "fill": fill[k], "mean": mean[k], "scale": scale[k]}
                output.append({"field": col, "category": None})
            else:
                fields[col] = {"kind": "one_hot", "fill": fill[k], "categories": categories[k]}
                if fill[k] != round(fill[k]):
                    raise Unsupported(f"transformer {tname}: {col} is imputed with {fill[k]}, not a category code")
                output.extend({"field": col, "category": c} for c in categories[k])
    missing = [f for f in FIELDS if f not in fields]
    if missing:
        raise Unsupported(
            f"fields {', '.join(missing)} are not used by the ColumnTransformer; the scorer reads all 13, so every one must be")
    return [dict(field=f, **fields[f]) for f in FIELDS], output


def tree_arrays(tree, positive):
    t = tree.tree_
    if t.n_outputs != 1:
        raise Unsupported("multi-output trees are not supported")
    nodes = []
    for i in range(t.node_count):
        left, right = int(t.children_left[i]), int(t.children_right[i])
        if left == -1:
            value = t.value[i][0]
            nodes.append({"leaf": float(value[positive] / value.sum())})
        else:
            nodes.append({"feature": int(t.feature[i]), "threshold": float(t.threshold[i]),
                          "left": left, "right": right})
    return nodes


def export_classifier(clf):
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.tree import DecisionTreeClassifier

    classes = list(clf.classes_) if hasattr(clf, "classes_") else []
    if len(classes) != 2:
        raise Unsupported(f"{name(clf)} has classes {classes}; only a binary classifier (disease yes/no) is supported")
    params = {k: repr(v) for k, v in sorted(clf.get_params(deep=False).items())}
    if isinstance(clf, LogisticRegression):
        return {"kind": "logistic_regression", "weights": [float(w) for w in clf.coef_[0]],
                "intercept": float(clf.intercept_[0]), "params": params}
    if isinstance(clf, DecisionTreeClassifier):
        return {"kind": "decision_tree", "trees": [tree_arrays(clf, 1)], "params": params}
    if isinstance(clf, RandomForestClassifier):
        return {"kind": "random_forest", "trees": [tree_arrays(t, 1) for t in clf.estimators_],
                "params": params}
    raise Unsupported(
        f"the classifier is a {name(clf)}; supported: LogisticRegression, DecisionTreeClassifier, RandomForestClassifier")


def golden(pipeline, rows):
    import numpy as np
    import pandas as pd

    step = max(1, len(rows) // GOLDEN_ROWS)
    picked = rows[::step][:GOLDEN_ROWS]
    inputs = [list(r) for r in picked]
    for k, r in enumerate(picked):
        holed = list(r)
        holed[k % len(FIELDS)] = None
        inputs.append(holed)
    inputs.append([None] * len(FIELDS))
    frame = pd.DataFrame([[np.nan if v is None else v for v in r] for r in inputs], columns=FIELDS)
    p = pipeline.predict_proba(frame)[:, 1]
    return [{"input": r, "probability": float(q)} for r, q in zip(inputs, p)]


def export(pipeline, rows, data_sha256, source):
    import numpy
    import sklearn
    from sklearn.pipeline import Pipeline

    if not isinstance(pipeline, Pipeline) or len(pipeline.steps) != 2:
        raise Unsupported(
            f"expected a Pipeline of two steps (a ColumnTransformer, then a classifier); got {name(pipeline)}"
            + (f" of {len(pipeline.steps)} steps: {', '.join(n for n, _ in pipeline.steps)}" if isinstance(pipeline, Pipeline) else ""))
    (_, pre), (cname, clf) = pipeline.steps
    fields, output = export_columns(pre)
    classifier = export_classifier(clf)
    return {
        "format": FORMAT,
        "origin": {
            "library": "scikit-learn",
            "sklearn_version": sklearn.__version__,
            "numpy_version": numpy.__version__,
            "python_version": platform.python_version(),
            "classifier": f"{cname}: {name(clf)}",
            "source": source,
        },
        "training_data_sha256": data_sha256,
        "fields": fields,
        "columns": output,
        "classifier": classifier,
        "golden": golden(pipeline, rows),
        "training_rows": rows,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("pipeline", help="the fitted Pipeline: a file saved with joblib.dump, or an "
                                         "MLflow model URI (models:/NAME@ALIAS, models:/NAME/VERSION, runs:/ID/PATH)")
    parser.add_argument("--data", required=True,
                        help="the training data (UCI processed file or a CSV naming the 13 fields): "
                             "golden vectors and the training profile (drift, explanations) come from it")
    parser.add_argument("--out", required=True, help="the JSON file to write, for `trainer import-sklearn`")
    args = parser.parse_args(argv)
    if args.pipeline.startswith(("models:/", "runs:/")):
        import mlflow.sklearn

        pipeline = mlflow.sklearn.load_model(args.pipeline)
        source = args.pipeline
    else:
        import os

        import joblib

        pipeline = joblib.load(args.pipeline)
        source = os.path.basename(args.pipeline)
    rows, sha = read_rows(args.data)
    try:
        exported = export(pipeline, rows, sha, source)
    except Unsupported as e:
        print(f"export: {args.pipeline}: not supported: {e}", file=sys.stderr)
        return 2
    with open(args.out, "w") as f:
        json.dump(exported, f)
    print(f"export: wrote {args.out} ({exported['classifier']['kind']}, "
          f"scikit-learn {exported['origin']['sklearn_version']}, {len(exported['golden'])} golden vectors)",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
