"""deploy/grafana/herald.json queries only metrics, and labels, that herald exports."""

import json
import re
from typing import Any

from prometheus_client.metrics import MetricWrapperBase

from herald_common import metrics
from tests.deploy.project import DEPLOY

DASHBOARD = DEPLOY / "grafana" / "herald.json"
# Labels Prometheus adds or histograms carry, not declared by the metric itself.
IMPLICIT_LABELS = {"le", "instance", "job"}
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


def _exported() -> dict[str, tuple[str, ...]]:
    """Series name -> label names, for every metric herald_common.metrics defines."""
    series: dict[str, tuple[str, ...]] = {}
    for metric in vars(metrics).values():
        if isinstance(metric, MetricWrapperBase):
            for family in metric.describe():
                for suffix in SUFFIXES[family.type]:
                    series[family.name + suffix] = tuple(metric._labelnames)
    return series


def _queries(dashboard: dict[str, Any]) -> list[str]:
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def test_every_query_uses_an_exported_metric_and_its_labels() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exported = _exported()
    assert "herald_http_requests_total" in exported
    queries = _queries(dashboard)
    assert queries
    for query in queries:
        names = re.findall(r"\bherald_\w+", query)
        assert names, query
        for name in names:
            assert name in exported, f"{name} is not exported: {query}"
            for group in re.findall(r"\bby \(([^)]*)\)", query):
                labels = {label.strip() for label in group.split(",")}
                assert labels - IMPLICIT_LABELS <= set(exported[name]), query


def test_panels_have_unique_ids_and_use_the_datasource_variable() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    assert [v["name"] for v in dashboard["templating"]["list"]] == ["datasource"]
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
