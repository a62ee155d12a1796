"""twinserve/observe/alert_receiver.py: Alertmanager notifications flattened into records, and reading them back."""

import json

import pytest

from twinserve.observe.alert_receiver import flatten, read_alerts

NOTIFICATION = {
    "version": "4",
    "groupKey": '{}:{alertname="TwinserveTargetDown"}',
    "truncatedAlerts": 0,
    "status": "firing",
    "receiver": "recorder",
    "groupLabels": {"alertname": "TwinserveTargetDown"},
    "commonLabels": {"alertname": "TwinserveTargetDown", "severity": "critical"},
    "commonAnnotations": {},
    "externalURL": "http://127.0.0.1:9093",
    "alerts": [
        {
            "status": "firing",
            "labels": {
                "alertname": "TwinserveTargetDown",
                "severity": "critical",
                "job": "torchserve",
                "colour": "green",
            },
            "annotations": {"summary": "green TorchServe is down"},
            "startsAt": "2025-01-02T03:04:05.678Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://127.0.0.1:9090/graph",
            "fingerprint": "a1b2c3",
        },
        {
            "status": "resolved",
            "labels": {"alertname": "TwinserveTargetDown", "severity": "critical", "job": "nginx"},
            "annotations": {},
            "startsAt": "2025-01-02T02:00:00Z",
            "endsAt": "2025-01-02T03:00:00Z",
        },
    ],
}


NOW = "2025-01-02T03:04:06+00:00"


def test_one_record_per_alert():
    records = flatten(NOTIFICATION, NOW)
    assert records[0] == {
        "received_at": NOW,
        "status": "firing",
        "alertname": "TwinserveTargetDown",
        "severity": "critical",
        "labels": NOTIFICATION["alerts"][0]["labels"],
        "annotations": {"summary": "green TorchServe is down"},
        "startsAt": "2025-01-02T03:04:05.678Z",
        "endsAt": "0001-01-01T00:00:00Z",
    }
    assert [(r["status"], r["labels"]["job"]) for r in records] == [("firing", "torchserve"), ("resolved", "nginx")]
    json.dumps(records)  # each is written as one JSON line


def test_an_alert_without_labels_or_annotations():
    [record] = flatten({"alerts": [{"status": "firing"}]}, NOW)
    assert (record["alertname"], record["severity"], record["labels"], record["annotations"]) == (None, None, {}, {})
    assert record["startsAt"] is None


def test_a_notification_without_alerts_is_empty():
    assert flatten({"alerts": []}, NOW) == []


@pytest.mark.parametrize("notification", [[], "text", None, {}, {"alerts": {"a": 1}}, {"alerts": None}])
def test_what_is_not_a_notification(notification):
    with pytest.raises(ValueError, match='an "alerts" list'):
        flatten(notification, NOW)


def test_recorded_alerts_are_filtered_by_status_and_name(tmp_path):
    path = tmp_path / "alerts.jsonl"
    other = {**NOTIFICATION["alerts"][0], "labels": {"alertname": "TwinserveDriftDetected", "severity": "warning"}}
    records = flatten(NOTIFICATION, NOW) + flatten({"alerts": [other]}, NOW)
    path.write_text("".join(json.dumps(r) + "\n" for r in records) + "\n")
    assert len(read_alerts(path)) == 3
    assert [r["labels"].get("job") for r in read_alerts(path, status="firing", alertname="TwinserveTargetDown")] == [
        "torchserve"
    ]
    assert [r["alertname"] for r in read_alerts(path, alertname="TwinserveDriftDetected")] == ["TwinserveDriftDetected"]
    assert read_alerts(path, status="resolved", alertname="TwinserveDriftDetected") == []
    assert read_alerts(tmp_path / "none.jsonl") == []


@pytest.mark.parametrize("alerts", [[1], [None], [{"labels": None}], [{"labels": ["a"]}]])
def test_an_alert_that_is_not_an_object_is_refused(alerts):
    with pytest.raises(ValueError, match="every alert to be an object"):
        flatten({"alerts": alerts}, NOW)
