"""Prometheus rules, their promtool unit tests and the Grafana dashboard, against the metric contract.

- `promtool check rules` and `promtool test rules` on docker/prometheus/rules/ (skipped, with the
  reason, when promtool is not installed: Debian package `prometheus`);
- every `credo_*` name in the rules, their unit tests and the dashboard is a metric of METRICS
  below (with its labels), and every `credo:*` recording rule the dashboard reads is defined;
- every alert has a severity, summary, description and a runbook_url naming a file under
  docs/runbooks/ that exists, with the anchor.

Needs no credod binary. The rule files are read with a small YAML reader for the subset they use
(the standard library has no YAML): keys, lists, `|` and `>-` block scalars.
"""

import json
import os
import re
import shutil
import subprocess
import tempfile
import unittest
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RULES_DIR = ROOT / "docker" / "prometheus" / "rules"
RULES = RULES_DIR / "credo-alerts.yml"
RULE_TESTS = RULES_DIR / "credo-alerts.test.yml"
DASHBOARD = ROOT / "docker" / "grafana" / "dashboards" / "credo.json"
RUNBOOKS = ROOT / "docs" / "runbooks"
PROMTOOL = os.environ.get("PROMTOOL") or shutil.which("promtool")

from metrics_contract import HTTP_BUCKETS, METRICS  # noqa: E402  (the contract)

TARGET_LABELS = ("job", "instance")
SEVERITIES = {"page", "critical", "warning", "ticket"}


def series_names() -> dict[str, tuple[str, ...]]:
    """Every sample name credod exports -> the label names it may carry."""
    names: dict[str, tuple[str, ...]] = {}
    for family, (kind, labels) in METRICS.items():
        if kind == "histogram":
            names[family + "_bucket"] = labels + ("le",)
            names[family + "_count"] = labels
            names[family + "_sum"] = labels
        else:
            names[family] = labels
    return names


# ---- a reader for the YAML subset of the rule files -------------------------------------------

def yaml_values(text: str, key: str) -> list[tuple[int, str]]:
    """(line number, value) of every `key:` (plain, `- key:`, `|` or `>` block scalar)."""
    lines = text.splitlines()
    out = []
    pattern = re.compile(r"^(\s*)(?:-\s+)?" + re.escape(key) + r":\s*(.*)$")
    i = 0
    while i < len(lines):
        m = pattern.match(lines[i])
        if not m:
            i += 1
            continue
        indent, value = len(m.group(1)), m.group(2)
        start = i
        value = re.sub(r"\s+#.*$", "", value) if not value.startswith(("'", '"')) else value
        if value and value[0] in "|>":
            folded = value[0] == ">"
            block = []
            i += 1
            while i < len(lines) and (not lines[i].strip()
                                      or len(lines[i]) - len(lines[i].lstrip()) > indent):
                block.append(lines[i].strip())
                i += 1
            value = (" " if folded else "\n").join(b for b in block if b)
        else:
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
                value = value[1:-1]
            i += 1
        out.append((start + 1, value))
    return out


def alert_blocks(text: str) -> dict[str, str]:
    """Alert name -> the text of its rule (up to the next rule)."""
    parts = re.split(r"^\s*- (?=alert:|record:)", text, flags=re.M)
    blocks = {}
    for part in parts:
        m = re.match(r"alert:\s*(\S+)", part)
        if m:
            blocks[m.group(1)] = part
    return blocks


# ---- PromQL name and label checks -----------------------------------------------------------------

NAME_RE = re.compile(r"(?<![A-Za-z0-9_:])(credo_[A-Za-z0-9_]+)")
SELECTOR_RE = re.compile(r"(?<![A-Za-z0-9_:])(credo_[A-Za-z0-9_]+)\s*\{([^}]*)\}")
LABEL_RE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)\s*\"")
RECORDED_RE = re.compile(r"(?<![A-Za-z0-9_:])(credo:[A-Za-z0-9_:]+)")


def name_problems(where: str, expr: str) -> list[str]:
    known = series_names()
    problems = []
    for name in NAME_RE.findall(expr):
        if name not in known:
            hint = " (a histogram: read _bucket, _count or _sum)" if name in METRICS else ""
            problems.append(f"{where}: {name} is not an exported series{hint}")
    for name, body in SELECTOR_RE.findall(expr):
        allowed = set(known.get(name, ())) | set(TARGET_LABELS)
        for label in LABEL_RE.findall(body):
            if label not in allowed:
                problems.append(f"{where}: {name} has no label {label!r}")
    return problems


def dashboard_panels(dash: dict) -> list[dict]:
    out = []
    for p in dash.get("panels", []):
        out.append(p)
        out.extend(p.get("panels", []))  # a collapsed row holds its panels
    return out


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=300)


class RuleFilesTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.rules = RULES.read_text()
        cls.rule_tests = RULE_TESTS.read_text()

    @unittest.skipUnless(PROMTOOL, "promtool not installed (Debian package prometheus)")
    def test_promtool_check_rules(self):
        r = promtool("check", "rules", RULES.name, cwd=RULES_DIR)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("SUCCESS", r.stdout)

    @unittest.skipUnless(PROMTOOL, "promtool not installed (Debian package prometheus)")
    def test_promtool_unit_tests_pass(self):
        r = promtool("test", "rules", RULE_TESTS.name, cwd=RULES_DIR)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("SUCCESS", r.stdout)

    def test_rules_use_only_exported_metrics(self):
        problems = []
        exprs = yaml_values(self.rules, "expr")
        self.assertGreater(len(exprs), 20)
        for line, expr in exprs:
            problems += name_problems(f"{RULES.name}:{line}", expr)
        # Comments and annotations name metrics too: they must not name one that is not there.
        for name in NAME_RE.findall(self.rules):
            if name not in METRICS and name not in series_names():
                problems.append(f"{RULES.name}: mentions unknown metric {name}")
        self.assertEqual(problems, [])

    def test_rule_unit_tests_use_only_exported_metrics(self):
        problems = []
        series = yaml_values(self.rule_tests, "series")
        self.assertGreater(len(series), 10)
        for line, s in series:
            problems += name_problems(f"{RULE_TESTS.name}:{line}", s)
        for line, expr in yaml_values(self.rule_tests, "expr"):
            problems += name_problems(f"{RULE_TESTS.name}:{line}", expr)
        self.assertEqual(problems, [])

    def test_latency_sli_reads_existing_buckets(self):
        bounds = {format(b, ".16g") for b in HTTP_BUCKETS}  # prometheus-cpp writes %.16g
        used = set()
        for _, expr in yaml_values(self.rules, "expr"):
            for name, body in SELECTOR_RE.findall(expr):
                if name == "credo_http_request_duration_seconds_bucket":
                    used.update(re.findall(r'\ble="([^"]*)"', body))
        self.assertEqual(used, {"0.25", "1"})
        self.assertLessEqual(used, bounds)

    def test_every_alert_is_complete(self):
        blocks = alert_blocks(self.rules)
        self.assertGreater(len(blocks), 15)
        for name, block in blocks.items():
            with self.subTest(alert=name):
                self.assertRegex(name, r"^Credo[A-Z][A-Za-z0-9]+$")
                severity = yaml_values(block, "severity")
                self.assertEqual(len(severity), 1, "one severity label")
                self.assertIn(severity[0][1], SEVERITIES)
                for key in ("summary", "description", "runbook_url"):
                    values = yaml_values(block, key)
                    self.assertEqual(len(values), 1, key)
                    self.assertTrue(values[0][1].strip(), key)

    def test_every_alert_is_unit_tested_firing(self):
        alerts = set(alert_blocks(self.rules))
        fired, named = set(), set()
        lines = self.rule_tests.splitlines()
        for i, line in enumerate(lines):
            m = re.match(r"\s*alertname:\s*(\S+)", line)
            if not m:
                continue
            named.add(m.group(1))
            following = lines[i + 1].strip() if i + 1 < len(lines) else ""
            if following.startswith("exp_alerts:") and following != "exp_alerts: []":
                fired.add(m.group(1))
        self.assertEqual(named - alerts, set(), "unit tests name alerts the rules do not define")
        self.assertEqual(alerts - fired, set(), "alerts no unit test shows firing")

    def runbook_urls(self) -> list[tuple[str, str]]:
        urls = []
        for name, block in alert_blocks(self.rules).items():
            for _, url in yaml_values(block, "runbook_url"):
                urls.append((name, url))
        return urls

    def test_runbook_urls_name_files_under_docs_runbooks(self):
        # The runbooks are written beside these rules; this fails until every file exists.
        urls = self.runbook_urls()
        self.assertTrue(urls)
        for alert, url in urls:
            with self.subTest(alert=alert, url=url):
                m = re.fullmatch(r"docs/runbooks/([A-Za-z0-9-]+\.md)#([a-z0-9-]+)", url)
                self.assertIsNotNone(m, "docs/runbooks/<file>.md#<anchor>")
                self.assertTrue((RUNBOOKS / m.group(1)).is_file(), f"{url}: no such runbook")

    def test_runbook_anchors_exist(self):
        # Each alert's anchor is its name in lower case: a heading equal to the alert name
        # (GitHub slug), or an explicit <a id="..."> / <a name="...">.
        for alert, url in self.runbook_urls():
            with self.subTest(alert=alert, url=url):
                path, _, anchor = url.partition("#")
                self.assertEqual(anchor, alert.lower())
                file = ROOT / path
                if not file.is_file():
                    self.fail(f"{url}: no such runbook")
                text = file.read_text()
                anchors = set(re.findall(r"""<a\s+(?:id|name)=["']([^"']+)["']""", text))
                for heading in re.findall(r"^#{1,6}\s+(.+?)\s*#*\s*$", text, flags=re.M):
                    slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
                    anchors.add(slug)
                self.assertIn(anchor, anchors, f"{path} has no heading '{alert}'")


class DashboardTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.dash = json.loads(DASHBOARD.read_text())
        cls.rules = RULES.read_text()

    def queries(self) -> list[tuple[str, str]]:
        out = []
        for p in dashboard_panels(self.dash):
            for t in p.get("targets", []):
                out.append((p.get("title", "?"), t.get("expr", "")))
        return out

    def test_parses_with_panels_targets_and_datasource(self):
        self.assertEqual(self.dash.get("uid"), "credo")
        self.assertGreaterEqual(self.dash.get("schemaVersion", 0), 36)
        panels = dashboard_panels(self.dash)
        rows = [p["title"] for p in panels if p.get("type") == "row"]
        for title in ("Traffic & latency", "Auth security", "Revocations", "Audit outbox",
                      "Actors", "Cluster", "Backends"):
            self.assertIn(title, rows)
        graphs = [p for p in panels if p.get("type") != "row"]
        self.assertGreater(len(graphs), 20)
        ids = [p["id"] for p in panels]
        self.assertEqual(len(ids), len(set(ids)), "panel ids are unique")
        for p in graphs:
            with self.subTest(panel=p.get("title")):
                self.assertEqual(p.get("datasource"), {"type": "prometheus", "uid": "prometheus"})
                self.assertTrue(p.get("targets"))
                self.assertIn("gridPos", p)
                for t in p["targets"]:
                    self.assertTrue(t.get("expr"))
                    self.assertEqual(t.get("datasource", p["datasource"])["uid"], "prometheus")
        variables = {v["name"]: v for v in self.dash["templating"]["list"]}
        self.assertIn("instance", variables)
        self.assertEqual(variables["instance"]["datasource"]["uid"], "prometheus")

    def test_uses_only_exported_metrics_and_defined_recording_rules(self):
        recorded = {v for _, v in yaml_values(self.rules, "record")}
        problems = []
        for title, expr in self.queries():
            problems += name_problems(f"panel {title!r}", expr)
            for name in RECORDED_RE.findall(expr):
                if name not in recorded:
                    problems.append(f"panel {title!r}: recording rule {name} is not defined")
        self.assertEqual(problems, [])
        names = {n for _, e in self.queries() for n in NAME_RE.findall(e)}
        for family, (kind, _) in METRICS.items():
            wanted = family + "_count" if kind == "histogram" else family
            if kind == "histogram":
                self.assertTrue({family + "_bucket", wanted} & names, f"{family} not shown")
            else:
                self.assertIn(family, names, f"{family} not shown on the dashboard")

    @unittest.skipUnless(PROMTOOL, "promtool not installed (Debian package prometheus)")
    def test_queries_are_valid_promql(self):
        # promtool parses each query as a recording rule, with Grafana's variables filled in.
        lines = ["groups:", "  - name: dashboard", "    rules:"]
        for i, (_, expr) in enumerate(self.queries()):
            expr = expr.replace("$__rate_interval", "5m").replace("$instance", ".*")
            lines += [f"      - record: dashboard:query{i}", f"        expr: {json.dumps(expr)}"]
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "dashboard.yml"
            path.write_text("\n".join(lines) + "\n")
            r = promtool("check", "rules", path.name, cwd=Path(tmp))
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)


if __name__ == "__main__":
    unittest.main()
