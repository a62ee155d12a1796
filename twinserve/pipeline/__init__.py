"""The delivery pipeline: a new model version from training to production, with gates.

    test -> train -> archive -> deploy -> smoke -> loadgate -> approve -> promote -> bake

Each stage is one function in steps.py; the order and the decisions (what a
bake check concludes, when to roll back, the summary) are pure, in stages.py.
A run is recorded in var/state/pipeline/ (record.py) stage by stage, so the
whole pipeline can run in one process (`make pipeline`) or one stage per
process (Jenkins: jenkins/pipeline.groovy calls `twinserve pipeline stage
<name>` per stage; runs.py runs a stage, records it and rolls back). Any failure after promotion rolls production back
to the previous colour.
"""
