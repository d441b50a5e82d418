#!/usr/bin/env python3
"""Train the heart-disease Pipeline the way the Python project did, and save it with joblib.

    python3 sklearn/train_example.py --data processed.cleveland.data --out model.joblib

Median imputation and standard scaling for the numeric fields, most-frequent imputation and
one-hot encoding for the categorical ones, then a logistic regression (or a forest or a tree,
with --classifier). Target: `num` > 0. It stands in for a team's own training script; the
tests train with it and compare the scorer's probabilities with this pipeline's predict_proba.
"""

import argparse
import sys

NUMERIC = ["age", "trestbps", "chol", "thalach", "oldpeak"]
CATEGORICAL = ["sex", "cp", "fbs", "restecg", "exang", "slope", "ca", "thal"]
FIELDS = ["age", "sex", "cp", "trestbps", "chol", "fbs", "restecg",
          "thalach", "exang", "oldpeak", "slope", "ca", "thal"]


def load(path):
    import pandas as pd

    frame = pd.read_csv(path, header=None, names=FIELDS + ["num"], na_values="?")
    return frame[FIELDS], (frame["num"] > 0).astype(int)


def pipeline(classifier, seed=42):
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler
    from sklearn.tree import DecisionTreeClassifier

    numeric = Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())])
    categorical = Pipeline([("impute", SimpleImputer(strategy="most_frequent")),
                            ("onehot", OneHotEncoder(handle_unknown="ignore"))])
    pre = ColumnTransformer([("num", numeric, NUMERIC), ("cat", categorical, CATEGORICAL)])
    model = {
        "logistic_regression": lambda: LogisticRegression(C=1.0, max_iter=1000),
        "random_forest": lambda: RandomForestClassifier(n_estimators=100, max_depth=6, random_state=seed),
        "decision_tree": lambda: DecisionTreeClassifier(max_depth=5, random_state=seed),
    }[classifier]()
    return Pipeline([("preprocess", pre), ("model", model)])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="the UCI processed.cleveland.data file")
    parser.add_argument("--out", required=True, help="where to joblib.dump the fitted pipeline")
    parser.add_argument("--classifier", default="logistic_regression",
                        choices=["logistic_regression", "random_forest", "decision_tree"])
    args = parser.parse_args(argv)
    import joblib

    x, y = load(args.data)
    fitted = pipeline(args.classifier).fit(x, y)
    joblib.dump(fitted, args.out)
    print(f"train_example: {args.classifier} fitted on {len(x)} rows, saved to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
