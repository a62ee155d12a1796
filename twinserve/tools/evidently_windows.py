"""Evidently's DataDriftPreset on windows of a drift evaluation: run in Evidently's own venv, not the project's.

`make drift-eval` (twinserve/tools/drift_eval.py) writes an npz file: `ref/<feature>`
the reference sample, `win/<i>/<feature>` each window the consumer judged, `stream` each window's stream
and `post` whether it ends after that stream's change. This
script, run as a file by the interpreter of var/evidently-venv (evidently is no
dependency of the project, so nothing here imports twinserve), judges every
window against the reference with the preset at its defaults (drift_share 0.5,
each column's test chosen by Evidently) and prints one JSON object:
{"version": ..., "windows": [{"drifted": bool, "share": float, "tests": {feature: test}}, ...]};
a window is null when an earlier one after its stream's change was drifted (no delay needs it).

Every feature is declared numerical (Evidently would otherwise guess from the values).
"""

import json
import sys
import warnings


def main(path: str) -> None:
    import numpy as np
    import pandas as pd
    from evidently import DataDefinition, Dataset, Report
    from evidently import __version__ as version
    from evidently.presets import DataDriftPreset

    warnings.simplefilter("ignore")
    with np.load(path) as data:
        features = sorted(k.removeprefix("ref/") for k in data.files if k.startswith("ref/"))
        stream, post = data["stream"], data["post"]
        definition = DataDefinition(numerical_columns=features)
        ref = Dataset.from_pandas(pd.DataFrame({f: data[f"ref/{f}"] for f in features}), data_definition=definition)
        out, done = [], set()
        for i in range(stream.size):
            if stream[i] in done:
                out.append(None)  # this changed stream's delay is known: its later windows are not needed
                continue
            current = pd.DataFrame({f: data[f"win/{i}/{f}"] for f in features})
            snapshot = Report([DataDriftPreset()]).run(
                current_data=Dataset.from_pandas(current, data_definition=definition), reference_data=ref
            )
            out.append(judged(snapshot.dict()["metrics"]))
            if post[i] and out[-1]["drifted"]:
                done.add(stream[i])
    json.dump({"version": version, "windows": out}, sys.stdout)


def judged(metrics: list[dict]) -> dict:
    """The preset's dataset verdict (DriftedColumnsCount's share >= drift_share) and each column's test."""
    verdict, tests = None, {}
    for m in metrics:
        name, config = m["metric_name"], m.get("config", {})
        if name.startswith("DriftedColumnsCount"):
            share = float(m["value"]["share"])
            verdict = {"drifted": share >= float(config.get("drift_share", 0.5)), "share": share}
        elif name.startswith("ValueDrift"):
            tests[config["column"]] = config.get("method")
    if verdict is None:
        raise RuntimeError("Evidently's report has no DriftedColumnsCount: its output changed")
    return {**verdict, "tests": tests}


if __name__ == "__main__":
    main(sys.argv[1])  # an exception exits non-zero, with its traceback on stderr
