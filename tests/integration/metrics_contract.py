"""The metric contract of GET /metrics, shared by test_metrics.py (which checks it against a live
node, on every node of a cluster too) and test_alert_rules.py (which checks that the alert rules
and the Grafana dashboard use only these names and labels)."""

# The metric contract of GET /metrics: family -> (type, labels of its own). Prometheus adds `job`
# and `instance`; histograms are read as <family>_bucket (with `le`), _count and _sum. Every
# family is exported on every node. test_metrics.py compares this list with a live /metrics, so
# the rules and the dashboard cannot use a name credod does not export.
METRICS: dict[str, tuple[str, tuple[str, ...]]] = {
    "credo_http_request_duration_seconds": ("histogram", ("route", "method", "status", "client")),
    "credo_revocation_writes_total": ("counter", ()),
    "credo_revocation_write_failures_total": ("counter", ()),
    "credo_revocation_propagation_lag_seconds": ("histogram", ()),  # cluster only
    "credo_audit_outbox_depth": ("gauge", ()),
    "credo_audit_outbox_published_total": ("counter", ()),
    "credo_audit_outbox_publish_failures_total": ("counter", ()),
    "credo_audit_outbox_publish_latency_seconds": ("gauge", ()),
    "credo_refresh_token_reuse_total": ("counter", ()),
    "credo_rate_limit_denials_total": ("counter", ("rule",)),
    "credo_rate_limit_lockouts_total": ("counter", ()),
    "credo_rate_limit_owner_calls_total": ("counter", ()),
    "credo_consent_gating_failures_total": ("counter", ("stage", "reason")),
    "credo_actor_live": ("gauge", ("kind",)),
    "credo_actor_restarts_total": ("counter", ("kind",)),
    "credo_actor_failures_total": ("counter", ("kind",)),
    "credo_actor_mailbox_high_water": ("gauge", ("kind",)),
    "credo_cluster_members": ("gauge", ()),
    "credo_cluster_ring_version": ("gauge", ()),
    "credo_cluster_requests_in_flight": ("gauge", ()),
    "credo_cluster_stranger_messages_total": ("counter", ()),
    "credo_backend_up": ("gauge", ("backend",)),
    "credo_backend_configured": ("gauge", ("backend",)),
    "credo_build_info": ("gauge", ("version", "node")),
    "credo_uptime_seconds": ("gauge", ()),
}
# Bucket bounds of credo_http_request_duration_seconds (actors/metrics.cpp); the latency SLI
# reads le="0.25" and le="1".
HTTP_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
