"""The deployment configuration, checked offline: docker/Dockerfile, the compose stack
docker/docker-compose.yml with docker/.env.example, docker/prometheus/prometheus.yml, the Grafana
provisioning, the Kubernetes manifests of deploy/k8s/ and docker/gen-certs.sh.

- `docker-compose config` renders the stack with docker/.env.example and refuses it when any
  required secret is missing; the rendered stack has every service with a health check, three
  credod nodes with distinct ids that seed each other over mutual TLS, and secrets that come
  from the env file only;
- `promtool check config` accepts prometheus.yml, which scrapes the three nodes;
- the Dockerfile has a build and a runtime stage, a non-root user, tini as entrypoint, and its
  runtime packages hold every shared library the built credod links;
- the manifests parse; the Deployment has the probes, rollout strategy, security context and
  grace period; secrets are only secretKeyRef references; HPA, PDB and Services select it;
- every flag and CREDO_* variable the compose file, the Dockerfile and the manifests give
  credod is one `credod --help` lists ($CREDOD, default build/release/app/credod);
- gen-certs.sh makes certificates that verify, and (with the backends of scripts/test.sh)
  three credod nodes on them join one cluster.

Nothing is started from docker-compose (no Docker engine runs here). YAML is read by Debian's
/usr/bin/python3 with PyYAML (the test runner's Python has no yaml module), which prints JSON.
A check is skipped, with the reason, only when its tool is missing: docker-compose, promtool,
/usr/bin/python3 with yaml, openssl, readelf/dpkg, kubectl (for `kubectl kustomize`).
"""

import json
import os
import re
import secrets
import shutil
import socket
import stat
import subprocess
import tempfile
import time
import unittest
from functools import lru_cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
DOCKERFILE = DOCKER / "Dockerfile"
COMPOSE_FILE = DOCKER / "docker-compose.yml"
ENV_EXAMPLE = DOCKER / ".env.example"
PROMETHEUS_CONFIG = DOCKER / "prometheus" / "prometheus.yml"
GRAFANA_PROVISIONING = DOCKER / "grafana" / "provisioning"
GEN_CERTS = DOCKER / "gen-certs.sh"
K8S = ROOT / "deploy" / "k8s"
SYSTEM_PYTHON = "/usr/bin/python3"

# Variables docker-compose.yml requires (${VAR:?}); docker/.env.example lists them.
COMPOSE_SECRETS = ("POSTGRES_PASSWORD", "REDIS_PASSWORD", "CREDO_ADMIN_TOKEN",
                   "CREDO_CLUSTER_SECRET", "CREDO_KEY_ENCRYPTION_KEY", "GRAFANA_ADMIN_PASSWORD")
# What credod reads that is secret: the store URLs carry passwords.
CREDOD_SECRETS = ("DATABASE_URL", "REDIS_URL", "CREDO_ADMIN_TOKEN", "CREDO_CLUSTER_SECRET",
                  "CREDO_KEY_ENCRYPTION_KEY")
# Variables credod reads that are no flag (API.md's process contract).
CREDOD_PLAIN_ENV = {"DATABASE_URL", "REDIS_URL", "KAFKA_BROKERS", "CREDO_ADMIN_TOKEN"}
# The PRD's "1D" stack.
STACK_SERVICES = {"certs", "node-1", "node-2", "node-3", "postgres", "redis", "redpanda",
                  "console", "prometheus", "grafana"}
CLUSTER_PORT = 4242
HTTP_PORT = 8080
# Libraries every debian:12-slim image already has (apt needs them).
BASE_IMAGE_PACKAGES = {"libc6", "libstdc++6", "libgcc-s1"}
SECRET_NAME_RE = re.compile(r"PASSWORD|SECRET|TOKEN|ENCRYPTION_KEY|DATABASE_URL|REDIS_URL|AUTH")


# ------------------------------------------------------------------------------------------
# Tools
# ------------------------------------------------------------------------------------------

_YAML_TO_JSON = (
    "import json, sys, yaml\n"
    "docs = [d for d in yaml.safe_load_all(sys.stdin) if d is not None]\n"
    "json.dump(docs, sys.stdout, default=str)\n")


@lru_cache(maxsize=None)
def yaml_missing() -> str | None:
    """Why YAML cannot be read here, or None."""
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        return f"{SYSTEM_PYTHON} is not installed (Debian's python3 with python3-yaml reads YAML)"
    r = subprocess.run([SYSTEM_PYTHON, "-c", "import yaml"], capture_output=True, text=True,
                       stdin=subprocess.DEVNULL, timeout=30)
    if r.returncode != 0:
        return f"{SYSTEM_PYTHON} has no yaml module (Debian package python3-yaml)"
    return None


def require_yaml() -> None:
    if why := yaml_missing():
        raise unittest.SkipTest(why)


def yaml_docs(text: str, what: str) -> list:
    """Every non-empty document of a YAML text, as JSON values."""
    require_yaml()
    r = subprocess.run([SYSTEM_PYTHON, "-c", _YAML_TO_JSON], input=text, capture_output=True,
                       text=True, timeout=60)
    if r.returncode != 0:
        raise AssertionError(f"{what} is not valid YAML:\n{r.stderr.strip()}")
    return json.loads(r.stdout)


def yaml_file(path: Path) -> list:
    return yaml_docs(path.read_text(), str(path.relative_to(ROOT)))


def require_tool(name: str) -> str:
    path = shutil.which(name)
    if not path:
        raise unittest.SkipTest(f"{name} is not installed")
    return path


def binary(var: str, leaf: str) -> str:
    """$var, else the release build's binary. The build may be relinking it: wait up to 60 s."""
    path = os.environ.get(var) or str(ROOT / "build" / "release" / "app" / leaf)
    deadline = time.monotonic() + 60
    while not (os.path.isfile(path) and os.access(path, os.X_OK)):
        if time.monotonic() > deadline:
            raise AssertionError(f"{var}={path} is not an executable file (build the release "
                                 f"preset or set {var})")
        time.sleep(1)
    return path


def help_text(var: str, leaf: str) -> str:
    """`<binary> --help`, retried while the binary is being relinked (ETXTBSY, a partial file)."""
    path = binary(var, leaf)
    deadline = time.monotonic() + 60
    while True:
        try:
            r = subprocess.run([path, "--help"], capture_output=True, text=True,
                               stdin=subprocess.DEVNULL, timeout=30)
            if r.returncode == 0 and "--help" in r.stdout:
                return r.stdout
            problem = f"exit {r.returncode}: {r.stderr.strip()[:300]}"
        except OSError as exc:
            problem = str(exc)
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} --help failed: {problem}")
        time.sleep(2)


@lru_cache(maxsize=None)
def credod_interface() -> tuple[frozenset, frozenset]:
    """(flags, CREDO_* variables) of `credod --help`."""
    text = help_text("CREDOD", "credod")
    flags = set(re.findall(r"^\s+(?:-\w,)?(--[a-z0-9][a-z0-9-]*)", text, re.M))
    envs = set(re.findall(r"\(Env:([A-Z0-9_]+)\)", text))
    if "--cluster" not in flags or "CREDO_CLUSTER" not in envs:
        raise AssertionError(f"credod --help lists no --cluster / CREDO_CLUSTER:\n{text}")
    return frozenset(flags), frozenset(envs)


def flag_names(args: list) -> list[str]:
    """The --flags of an argument list (`--name=value` or `--name value`)."""
    return [str(a).split("=", 1)[0] for a in args if str(a).startswith("--")]


def flag_value(args: list, flag: str) -> str | None:
    args = [str(a) for a in args]
    for i, a in enumerate(args):
        if a.startswith(flag + "="):
            return a.split("=", 1)[1]
        if a == flag and i + 1 < len(args):
            return args[i + 1]
    return None


def seconds(duration) -> float:
    """A compose duration ("20s", "1m30s", "1500ms") or a number of seconds."""
    if isinstance(duration, (int, float)):
        return float(duration)
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001, "us": 1e-6}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", str(duration))
    if not parts or "".join(n + u for n, u in parts) != str(duration):
        raise AssertionError(f"unreadable duration {duration!r}")
    return sum(float(n) * units[u] for n, u in parts)


def env_file_values(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            k, v = line.split("=", 1)
            values[k.strip()] = v.strip()
    return values


# ------------------------------------------------------------------------------------------
# docker-compose
# ------------------------------------------------------------------------------------------

def compose_config(env_file: Path) -> subprocess.CompletedProcess:
    """`docker-compose config` of the stack with `env_file`, nothing from the caller's shell:
    variables in the environment would win over the file."""
    exe = require_tool("docker-compose")
    env = {k: v for k, v in os.environ.items()
           if k not in COMPOSE_SECRETS and not k.startswith(("CREDO_", "COMPOSE_", "DOCKER_"))}
    return subprocess.run([exe, "-f", str(COMPOSE_FILE), "--env-file", str(env_file), "config"],
                          cwd=ROOT, env=env, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=120)


def credod_services(config: dict) -> dict[str, dict]:
    """The services built from docker/Dockerfile's runtime stage."""
    out = {}
    for name, svc in config["services"].items():
        build = svc.get("build") or {}
        if isinstance(build, dict) and build.get("target") == "runtime" \
                and str(build.get("dockerfile", "")).endswith("docker/Dockerfile"):
            out[name] = svc
    return out


def env_dict(environment) -> dict[str, str]:
    if isinstance(environment, list):
        return dict(e.split("=", 1) if "=" in e else (e, "") for e in environment)
    return {k: "" if v is None else str(v) for k, v in (environment or {}).items()}


class ComposeTest(unittest.TestCase):
    """docker/docker-compose.yml, rendered by docker-compose config (with docker/.env.example,
    with one secret missing, and with random secrets to follow where each lands)."""

    _rendered: subprocess.CompletedProcess | None = None
    _config: dict | None = None

    @classmethod
    def setUpClass(cls):
        # Rendered with fresh random secrets, so that the test can tell where each one lands.
        cls.tmp = tempfile.TemporaryDirectory(prefix="credo-compose-")
        cls.secrets = {var: secrets.token_hex(20) for var in COMPOSE_SECRETS}
        cls.env_file = Path(cls.tmp.name) / "random.env"
        cls.env_file.write_text("".join(f"{k}={v}\n" for k, v in cls.secrets.items()))

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def config(self) -> dict:
        """The stack rendered with the random secrets (once per class)."""
        cls = type(self)
        if cls._rendered is None:
            cls._rendered = compose_config(self.env_file)
        r = cls._rendered
        self.assertEqual(r.returncode, 0, f"docker-compose config failed:\n{r.stderr}")
        if cls._config is None:
            [cls._config] = yaml_docs(r.stdout, "docker-compose config output")
        return json.loads(json.dumps(cls._config))

    def test_config_passes_with_the_env_example(self):
        r = compose_config(ENV_EXAMPLE)
        self.assertEqual(r.returncode, 0, f"docker-compose config with docker/.env.example "
                                          f"failed:\n{r.stderr}")
        self.assertIn("services:", r.stdout)
        self.assertEqual(set(env_file_values(ENV_EXAMPLE)) & set(COMPOSE_SECRETS),
                         set(COMPOSE_SECRETS), "docker/.env.example lists every required secret")

    def test_config_fails_without_any_required_secret(self):
        example = env_file_values(ENV_EXAMPLE)
        for var in COMPOSE_SECRETS:
            for how, values in (("missing", {k: v for k, v in example.items() if k != var}),
                                ("empty", {**example, var: ""})):
                with self.subTest(var=var, how=how):
                    path = Path(self.tmp.name) / f"{how}-{var}.env"
                    path.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
                    r = compose_config(path)
                    self.assertNotEqual(r.returncode, 0,
                                        f"docker-compose config passed with {var} {how}")
                    self.assertIn(var, r.stderr, "the error names the variable")

    def test_every_service_of_the_stack_has_a_health_check(self):
        services = self.config()["services"]
        self.assertLessEqual(STACK_SERVICES, set(services),
                             f"missing services: {sorted(STACK_SERVICES - set(services))}")
        for name, svc in services.items():
            with self.subTest(service=name):
                check = svc.get("healthcheck")
                self.assertIsInstance(check, dict, f"{name} has no healthcheck")
                self.assertFalse(check.get("disable"), f"{name} disables its healthcheck")
                test = check.get("test")
                self.assertTrue(test, f"{name}: healthcheck without a test")
                if isinstance(test, list):
                    self.assertNotEqual(test[0], "NONE", f"{name}: healthcheck test NONE")
                    self.assertIn(test[0], ("CMD", "CMD-SHELL"))
                    self.assertGreater(len(test), 1)

    def test_health_checks_probe_what_each_service_serves(self):
        services = self.config()["services"]
        expected = {"postgres": "pg_isready", "redis": "redis-cli", "redpanda": "rpk cluster health",
                    "console": "/admin/health", "prometheus": "/-/ready",
                    "grafana": "/api/health"}
        for name, probe in expected.items():
            with self.subTest(service=name):
                self.assertIn(probe, " ".join(services[name]["healthcheck"]["test"]))
        for name in credod_services(self.config()):
            test = services[name]["healthcheck"]["test"]
            with self.subTest(service=name):
                self.assertIn("/usr/local/bin/credoctl", test)
                self.assertEqual(test[-1], "health")
                self.assertEqual(flag_value(test, "--url"), f"http://127.0.0.1:{HTTP_PORT}")

    def test_three_credod_nodes_seed_each_other_over_mutual_tls(self):
        config = self.config()
        nodes = credod_services(config)
        self.assertEqual(sorted(nodes), ["node-1", "node-2", "node-3"])
        ids, addresses, certs = {}, {}, {}
        for name, svc in nodes.items():
            args, env = [str(a) for a in svc.get("command") or []], env_dict(svc.get("environment"))

            def setting(flag: str, var: str) -> str | None:
                return flag_value(args, flag) or env.get(var)

            ids[name] = setting("--node-id", "CREDO_NODE_ID")
            addresses[name] = setting("--cluster", "CREDO_CLUSTER")
            seeds = setting("--seeds", "CREDO_SEEDS")
            certs[name] = (setting("--cluster-tls-cert", "CREDO_CLUSTER_TLS_CERT"),
                           setting("--cluster-tls-key", "CREDO_CLUSTER_TLS_KEY"),
                           setting("--cluster-tls-ca", "CREDO_CLUSTER_TLS_CA"))
            with self.subTest(node=name):
                self.assertTrue(ids[name], f"{name} has no --node-id")
                self.assertTrue(seeds, f"{name} has no --seeds")
                # The --cluster host is the address the node announces: the service's own name.
                self.assertEqual(addresses[name], f"{name}:{CLUSTER_PORT}")
                self.assertEqual(set(seeds.split(",")),
                                 {f"{other}:{CLUSTER_PORT}" for other in nodes if other != name})
                self.assertTrue(all(certs[name]), f"{name}: --cluster-tls-cert/key/ca")
                self.assertNotIn("--cluster-insecure", args)
                self.assertNotIn("CREDO_CLUSTER_INSECURE", env)
                mounts = [str(v).split(":") for v in svc.get("volumes") or []]
                tls_dir = os.path.dirname(certs[name][0])
                self.assertIn(["certs", tls_dir, "ro"], mounts,
                              f"{name} mounts the certs volume read-only at {tls_dir}")
                deps = svc.get("depends_on") or {}
                self.assertEqual(deps.get("certs", {}).get("condition"),
                                 "service_completed_successfully")
                for backend in ("postgres", "redis"):
                    self.assertEqual(deps.get(backend, {}).get("condition"), "service_healthy")
                self.assertEqual(env.get("DATABASE_URL", "")[:11], "postgres://")
                self.assertIn("@postgres:5432/", env.get("DATABASE_URL", ""))
                self.assertIn("@redis:6379", env.get("REDIS_URL", ""))
                self.assertTrue(env.get("KAFKA_BROKERS", "").startswith("redpanda:"))
                grace_ms = int(env.get("CREDO_SHUTDOWN_GRACE_MS", "10000"))
                self.assertGreater(seconds(svc.get("stop_grace_period", "10s")) * 1000, grace_ms,
                                   "stop_grace_period exceeds credod's drain bound")
        self.assertEqual(len(set(ids.values())), 3, f"node ids are not distinct: {ids}")
        self.assertEqual(len({c[0] for c in certs.values()}), 3, "one certificate per node")
        self.assertEqual(len({c[2] for c in certs.values()}), 1, "one CA for every node")
        certs_env = env_dict(config["services"]["certs"].get("environment"))
        self.assertEqual(set(certs_env.get("CREDO_NODES", "").split()), set(nodes),
                         "the certs service makes a certificate for every node")

    def test_secrets_come_from_the_env_file_only(self):
        config = self.config()
        nodes = credod_services(config)
        s = self.secrets
        for name, svc in nodes.items():
            env = env_dict(svc.get("environment"))
            with self.subTest(node=name):
                for var in ("CREDO_ADMIN_TOKEN", "CREDO_CLUSTER_SECRET",
                            "CREDO_KEY_ENCRYPTION_KEY"):
                    self.assertEqual(env.get(var), s[var])
                self.assertIn(f":{s['POSTGRES_PASSWORD']}@", env["DATABASE_URL"])
                self.assertIn(f":{s['REDIS_PASSWORD']}@", env["REDIS_URL"])
        services = config["services"]
        self.assertEqual(env_dict(services["postgres"]["environment"])["POSTGRES_PASSWORD"],
                         s["POSTGRES_PASSWORD"])
        self.assertEqual(
            env_dict(services["grafana"]["environment"])["GF_SECURITY_ADMIN_PASSWORD"],
            s["GRAFANA_ADMIN_PASSWORD"])
        # In the file itself every secret-looking value is a ${VAR:?} reference, not a literal.
        [raw] = yaml_file(COMPOSE_FILE)
        for name, svc in raw["services"].items():
            for key, value in env_dict(svc.get("environment")).items():
                if SECRET_NAME_RE.search(key) and not value.startswith("/"):
                    with self.subTest(service=name, variable=key):
                        self.assertRegex(value, r"\$\{[A-Z0-9_]+:\?",
                                         f"{name}: {key} is not a ${{VAR:?}} reference")
        # Nor is any value of .env.example copied into the file.
        def strings(node):
            if isinstance(node, dict):
                for k, v in node.items():
                    yield str(k)
                    yield from strings(v)
            elif isinstance(node, list):
                for v in node:
                    yield from strings(v)
            elif node is not None:
                yield str(node)
        values = {v for v in env_file_values(ENV_EXAMPLE).values() if v}
        copied = {v for v in values for text in strings(raw) if v in text}
        self.assertFalse(copied, f"values of .env.example in the compose file: {copied}")

    def test_prometheus_and_grafana_are_wired_to_the_stack(self):
        config = self.config()
        nodes = credod_services(config)
        [prom] = yaml_file(PROMETHEUS_CONFIG)
        jobs = {j["job_name"]: j for j in prom["scrape_configs"]}
        self.assertIn("credo", jobs, "rules and dashboards select job=\"credo\"")
        targets = {t for sc in jobs["credo"]["static_configs"] for t in sc["targets"]}
        self.assertEqual(targets, {f"{n}:{HTTP_PORT}" for n in nodes})
        self.assertEqual(jobs["credo"].get("metrics_path", "/metrics"), "/metrics")
        # The rule globs load rule files, not the promtool unit tests beside them.
        prom_dir = PROMETHEUS_CONFIG.parent  # rule_files are relative to it
        loaded = {p for g in prom.get("rule_files", []) for p in prom_dir.glob(g)}
        self.assertFalse({p for p in loaded if p.name.endswith(".test.yml")},
                         "rule_files must not match the *.test.yml unit tests")
        alerts = prom_dir / "rules" / "credo-alerts.yml"
        if alerts.exists():
            self.assertIn(alerts, loaded)
        mounts = {str(v).split(":")[1]: str(v).split(":")[0]
                  for v in config["services"]["prometheus"]["volumes"]}
        self.assertEqual(Path(mounts["/etc/prometheus/prometheus.yml"]), PROMETHEUS_CONFIG)
        self.assertEqual(Path(mounts["/etc/prometheus/rules"]), prom_dir / "rules")
        # Grafana: the datasource is the stack's Prometheus, dashboards come from the mounted dir.
        [ds] = yaml_file(GRAFANA_PROVISIONING / "datasources" / "prometheus.yml")
        [source] = ds["datasources"]
        self.assertEqual(source["url"], "http://prometheus:9090")
        self.assertEqual(source["uid"], "prometheus")
        [boards] = yaml_file(GRAFANA_PROVISIONING / "dashboards" / "credo.yml")
        gmounts = {str(v).split(":")[1]: str(v).split(":")[0]
                   for v in config["services"]["grafana"]["volumes"]}
        self.assertEqual(Path(gmounts["/etc/grafana/provisioning"]), GRAFANA_PROVISIONING)
        for provider in boards["providers"]:
            self.assertEqual(Path(gmounts[provider["options"]["path"]]),
                             DOCKER / "grafana" / "dashboards")


class PrometheusConfigTest(unittest.TestCase):

    def test_promtool_accepts_the_config(self):
        promtool = os.environ.get("PROMTOOL") or require_tool("promtool")
        r = subprocess.run([promtool, "check", "config", str(PROMETHEUS_CONFIG)], cwd=ROOT,
                           capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120)
        self.assertEqual(r.returncode, 0, f"promtool check config:\n{r.stdout}\n{r.stderr}")


# ------------------------------------------------------------------------------------------
# Dockerfile
# ------------------------------------------------------------------------------------------

def dockerfile_stages() -> list[dict]:
    """[{"from": image, "name": alias, "instructions": [(INSTRUCTION, args)]}], continuation
    lines joined, comments dropped."""
    lines, current = [], ""
    for raw in DOCKERFILE.read_text().splitlines():
        stripped = raw.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if current and stripped.startswith("#"):
            continue
        current += " " + stripped[:-1] if stripped.endswith("\\") else " " + stripped
        if not stripped.endswith("\\"):
            lines.append(current.strip())
            current = ""
    stages = []
    for line in lines:
        instruction, _, args = line.partition(" ")
        instruction = instruction.upper()
        if instruction == "FROM":
            words = args.split()
            words = [w for w in words if not w.startswith("--platform")]
            stages.append({"from": words[0],
                           "name": words[2] if len(words) > 2 and words[1].upper() == "AS"
                           else None,
                           "instructions": []})
        elif stages:
            stages[-1]["instructions"].append((instruction, args.strip()))
    return stages


def apt_packages(stage: dict) -> set[str]:
    out = set()
    for instruction, args in stage["instructions"]:
        if instruction == "RUN":
            for m in re.finditer(r"apt-get install ((?:\s*(?:-[\w-]+|[a-z0-9][a-z0-9.+-]*))+)",
                                 args):
                out |= {w for w in m.group(1).split() if not w.startswith("-")}
    return out


def last(stage: dict, instruction: str) -> str | None:
    values = [a for i, a in stage["instructions"] if i == instruction]
    return values[-1] if values else None


class DockerfileTest(unittest.TestCase):

    def setUp(self):
        self.stages = dockerfile_stages()
        self.runtime = self.stages[-1]

    def test_multi_stage_build_on_debian_12(self):
        self.assertGreaterEqual(len(self.stages), 2, "a build stage and a runtime stage")
        build = next((s for s in self.stages if s["name"] == "build"), None)
        self.assertIsNotNone(build, "a stage named build")
        self.assertEqual(build["from"], "debian:12")
        runs = " ".join(a for i, a in build["instructions"] if i == "RUN")
        self.assertIn("cmake --preset release", runs)
        self.assertRegex(runs, r"cmake --build --preset release --target credod credoctl")
        presets = json.loads((ROOT / "CMakePresets.json").read_text())
        self.assertIn("release", {p["name"] for p in presets["configurePresets"]})
        self.assertIn("build/release/app/credod", runs)
        self.assertEqual(self.runtime["from"], "debian:12-slim", "the last stage is the image")
        self.assertEqual(self.runtime["name"], "runtime")
        copies = [a for i, a in self.runtime["instructions"] if i == "COPY"]
        self.assertTrue(any("--from=build" in c and "credod" in c and "credoctl" in c
                            for c in copies), "the runtime stage copies credod and credoctl")
        self.assertFalse(apt_packages(self.runtime) & {"build-essential", "cmake", "libcaf-dev",
                                                       "libssl-dev", "libpqxx-dev"},
                         "no build dependencies in the runtime image")

    def test_runs_as_non_root_under_tini(self):
        user = last(self.runtime, "USER")
        self.assertIsNotNone(user, "the runtime stage sets USER")
        self.assertNotIn(user.split(":")[0], ("root", "0"))
        self.assertRegex(user, r"^\d+(:\d+)?$", "numeric, so runAsNonRoot can verify it")
        self.assertIn("tini", apt_packages(self.runtime))
        entrypoint = json.loads(last(self.runtime, "ENTRYPOINT"))
        self.assertEqual(entrypoint[:2], ["/usr/bin/tini", "--"])
        self.assertEqual(entrypoint[2:], ["/usr/local/bin/credod"])
        exposed = set(" ".join(a for i, a in self.runtime["instructions"]
                               if i == "EXPOSE").split())
        self.assertLessEqual({str(HTTP_PORT), str(CLUSTER_PORT)}, exposed)
        health = last(self.runtime, "HEALTHCHECK")
        self.assertIsNotNone(health)
        cmd = json.loads(health[health.index("CMD") + 3:].strip())
        self.assertEqual(cmd[0], "/usr/local/bin/credoctl")
        self.assertEqual(cmd[-1], "health")
        self.assertEqual(flag_value(cmd, "--url"), f"http://127.0.0.1:{HTTP_PORT}")
        env = last(self.runtime, "ENV") or ""
        self.assertIn(f"CREDO_HTTP=0.0.0.0:{HTTP_PORT}", env)

    def test_runtime_packages_hold_every_library_credod_links(self):
        readelf = require_tool("readelf")
        dpkg = require_tool("dpkg")
        wanted = apt_packages(self.runtime) | BASE_IMAGE_PACKAGES
        for leaf in ("credod", "credoctl"):
            path = binary("CREDOD" if leaf == "credod" else "CREDOCTL", leaf)
            needed = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]",
                                subprocess.run([readelf, "-d", path], capture_output=True,
                                               text=True, timeout=60).stdout)
            self.assertTrue(needed, f"readelf -d {path} lists no NEEDED libraries")
            for lib in needed:
                if re.match(r"lib(a|ub|l|t|hwa)san\.so", lib):
                    continue  # a sanitizer build (scripts/test.sh's ASan pass) is never shipped
                with self.subTest(binary=leaf, library=lib):
                    owners = set()
                    for d in ("/usr/lib/x86_64-linux-gnu", "/lib/x86_64-linux-gnu",
                              "/usr/lib/aarch64-linux-gnu", "/lib/aarch64-linux-gnu", "/usr/lib",
                              "/lib"):
                        r = subprocess.run([dpkg, "-S", f"{d}/{lib}"], capture_output=True,
                                           text=True, timeout=60)
                        if r.returncode == 0:  # "pkg[:arch][, pkg2[:arch]]: path" per line
                            for line in r.stdout.splitlines():
                                owners |= {o.strip().split(":")[0]
                                           for o in line.rsplit(": ", 1)[0].split(",")}
                            break
                    self.assertTrue(owners, f"no Debian package owns {lib}")
                    self.assertTrue(owners & wanted,
                                    f"{lib} comes from {sorted(owners)}, which the runtime stage "
                                    f"does not install")

    def test_dockerignore_keeps_build_trees_out(self):
        ignore = (ROOT / ".dockerignore").read_text().split()
        self.assertIn("build/", ignore)
        self.assertTrue(any("node_modules" in p for p in ignore))
        self.assertIn("docker/.env", ignore)


# ------------------------------------------------------------------------------------------
# Kubernetes
# ------------------------------------------------------------------------------------------

def k8s_objects() -> list[dict]:
    objects = []
    for path in sorted(K8S.glob("*.yaml")) + sorted(K8S.glob("*.yml")):
        for doc in yaml_file(path):
            doc["__file__"] = path.name
            objects.append(doc)
    return objects


def of_kind(objects: list[dict], kind: str) -> list[dict]:
    return [o for o in objects if o.get("kind") == kind]


def selects(selector: dict, labels: dict) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


class KubernetesTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        require_yaml()
        cls.objects = [o for o in k8s_objects() if o.get("kind") != "Kustomization"]
        [cls.deployment] = of_kind(cls.objects, "Deployment")
        cls.pod = cls.deployment["spec"]["template"]
        cls.labels = cls.pod["metadata"]["labels"]
        [cls.container] = [c for c in cls.pod["spec"]["containers"] if c["name"] == "credod"]
        cls.config = {}
        for ref in cls.container.get("envFrom", []):
            name = ref["configMapRef"]["name"]
            [cm] = [o for o in of_kind(cls.objects, "ConfigMap") if o["metadata"]["name"] == name]
            cls.config.update(cm.get("data") or {})
        cls.env = {e["name"]: e for e in cls.container.get("env", [])}

    def setting(self, flag: str, var: str) -> str | None:
        args = list(self.container.get("command", [])) + list(self.container.get("args", []))
        value = flag_value(args, flag)
        if value is None and var in self.env:
            value = self.env[var].get("value")
        return value if value is not None else self.config.get(var)

    def test_manifests_parse_and_share_one_namespace(self):
        [ns] = of_kind(self.objects, "Namespace")
        for o in self.objects:
            with self.subTest(file=o["__file__"], kind=o.get("kind")):
                self.assertTrue(o.get("apiVersion") and o.get("kind"))
                self.assertTrue(o["metadata"].get("name"))
                if o["kind"] != "Namespace":
                    self.assertEqual(o["metadata"].get("namespace"), ns["metadata"]["name"])
        kustomization = K8S / "kustomization.yaml"
        if kustomization.exists():
            [k] = yaml_file(kustomization)
            files = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
            self.assertEqual(set(k["resources"]), files, "kustomization lists every manifest")

    def test_deployment_probes_rollout_and_security(self):
        spec = self.deployment["spec"]
        self.assertEqual(spec["replicas"], 3)
        self.assertTrue(selects(spec["selector"]["matchLabels"], self.labels))
        self.assertEqual(spec["strategy"]["type"], "RollingUpdate")
        self.assertEqual(spec["strategy"]["rollingUpdate"]["maxUnavailable"], 0)
        self.assertEqual(spec["strategy"]["rollingUpdate"]["maxSurge"], 1)
        ports = {p.get("name"): p["containerPort"] for p in self.container["ports"]}
        self.assertEqual(ports.get("http"), HTTP_PORT)
        self.assertEqual(ports.get("cluster"), CLUSTER_PORT)
        for probe, path in (("livenessProbe", "/health/live"), ("readinessProbe", "/health/ready")):
            with self.subTest(probe=probe):
                get = self.container[probe]["httpGet"]
                self.assertEqual(get["path"], path)
                self.assertEqual(ports.get(get["port"], get["port"]), HTTP_PORT)
        pod_sc = self.pod["spec"].get("securityContext") or {}
        sc = self.container.get("securityContext") or {}
        self.assertTrue(sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")))
        self.assertNotEqual(sc.get("runAsUser", pod_sc.get("runAsUser")), 0)
        self.assertTrue(sc.get("readOnlyRootFilesystem"))
        self.assertFalse(sc.get("allowPrivilegeEscalation", True))
        self.assertIn("ALL", (sc.get("capabilities") or {}).get("drop", []))
        resources = self.container["resources"]
        for kind in ("requests", "limits"):
            self.assertLessEqual({"cpu", "memory"}, set(resources.get(kind) or {}), kind)
        # SIGTERM comes after preStop; credod then drains for up to --shutdown-grace-ms.
        grace_ms = int(self.setting("--shutdown-grace-ms", "CREDO_SHUTDOWN_GRACE_MS") or 10000)
        pre_stop = (self.container.get("lifecycle") or {}).get("preStop") or {}
        pre_stop_s = 0.0
        if "exec" in pre_stop and "sleep" in pre_stop["exec"]["command"][0]:
            pre_stop_s = float(pre_stop["exec"]["command"][-1])
        elif "sleep" in pre_stop:
            pre_stop_s = float(pre_stop["sleep"]["seconds"])
        self.assertGreater(self.pod["spec"]["terminationGracePeriodSeconds"] * 1000,
                           grace_ms + pre_stop_s * 1000)

    def test_secrets_are_only_references(self):
        self.assertEqual(of_kind(self.objects, "Secret"), [], "no Secret objects in the manifests")
        for var in CREDOD_SECRETS:
            with self.subTest(variable=var):
                entry = self.env.get(var)
                self.assertIsNotNone(entry, f"{var} is not set")
                self.assertNotIn("value", entry)
                ref = entry["valueFrom"]["secretKeyRef"]
                self.assertTrue(ref.get("name") and ref.get("key"))
        for name, entry in self.env.items():
            if SECRET_NAME_RE.search(name):
                with self.subTest(variable=name):
                    self.assertIn("secretKeyRef", entry.get("valueFrom", {}))
        for ref in self.container.get("envFrom", []):
            self.assertEqual(set(ref), {"configMapRef"}, "envFrom only reads ConfigMaps")
        for cm in of_kind(self.objects, "ConfigMap"):
            for key, value in (cm.get("data") or {}).items():
                if SECRET_NAME_RE.search(key):
                    with self.subTest(configmap=cm["metadata"]["name"], key=key):
                        self.fail(f"secret-looking {key} in a ConfigMap")
                self.assertNotRegex(str(value), r"://[^/@\s]*:[^/@\s]*@",
                                    f"{key}: a URL with a password in a ConfigMap")
        args = list(self.container.get("command", [])) + list(self.container.get("args", []))
        self.assertFalse({"--cluster-secret", "--key-encryption-key"} & set(flag_names(args)))

    def test_cluster_addresses_and_tls(self):
        node_id = self.env.get("CREDO_NODE_ID", {})
        self.assertEqual(node_id.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath"),
                         "metadata.name", "each pod's node id is its name")
        cluster = self.setting("--cluster", "CREDO_CLUSTER")
        self.assertEqual(cluster, f"$(POD_IP):{CLUSTER_PORT}")
        self.assertEqual(self.env["POD_IP"]["valueFrom"]["fieldRef"]["fieldPath"], "status.podIP")
        names = [e["name"] for e in self.container["env"]]
        self.assertLess(names.index("POD_IP"), names.index("CREDO_CLUSTER"),
                        "$(POD_IP) is only expanded when defined before")
        headless = [s for s in of_kind(self.objects, "Service")
                    if s["spec"].get("clusterIP") == "None"]
        self.assertEqual(len(headless), 1, "one headless Service for the peers")
        peers = headless[0]
        self.assertTrue(selects(peers["spec"]["selector"], self.labels))
        self.assertTrue(peers["spec"].get("publishNotReadyAddresses"),
                        "a node is ready only after joining: peers are found before")
        [port] = peers["spec"]["ports"]
        self.assertEqual(port["port"], CLUSTER_PORT)
        ns = peers["metadata"]["namespace"]
        name = peers["metadata"]["name"]
        dns = {name, f"{name}.{ns}", f"{name}.{ns}.svc", f"{name}.{ns}.svc.cluster.local"}
        seeds = self.setting("--seeds", "CREDO_SEEDS")
        self.assertTrue(seeds)
        for seed in seeds.split(","):
            host, _, p = seed.rpartition(":")
            self.assertIn(host, dns, f"seed {seed} is the headless Service")
            self.assertEqual(int(p), CLUSTER_PORT)
        self.assertFalse(self.setting("--cluster-insecure", "CREDO_CLUSTER_INSECURE"))
        mounts = {m["mountPath"]: m["name"] for m in self.container["volumeMounts"]}
        volumes = {v["name"]: v for v in self.pod["spec"]["volumes"]}
        for flag, var in (("--cluster-tls-cert", "CREDO_CLUSTER_TLS_CERT"),
                          ("--cluster-tls-key", "CREDO_CLUSTER_TLS_KEY"),
                          ("--cluster-tls-ca", "CREDO_CLUSTER_TLS_CA")):
            with self.subTest(setting=var):
                path = self.setting(flag, var)
                self.assertTrue(path)
                volume = volumes[mounts[os.path.dirname(path)]]
                self.assertIn("secret", volume, f"{path} comes from a Secret volume")
        http = [s for s in of_kind(self.objects, "Service") if s is not peers]
        self.assertTrue(any(selects(s["spec"]["selector"], self.labels)
                            and any(p.get("targetPort") in ("http", HTTP_PORT)
                                    for p in s["spec"]["ports"]) for s in http),
                        "a Service for the HTTP API")

    def test_hpa_and_pdb_select_the_deployment(self):
        [hpa] = of_kind(self.objects, "HorizontalPodAutoscaler")
        [pdb] = of_kind(self.objects, "PodDisruptionBudget")
        self.assertEqual(hpa["apiVersion"], "autoscaling/v2")
        target = hpa["spec"]["scaleTargetRef"]
        self.assertEqual((target["apiVersion"], target["kind"], target["name"]),
                         ("apps/v1", "Deployment", self.deployment["metadata"]["name"]))
        self.assertTrue(hpa["spec"]["metrics"])
        self.assertEqual(pdb["apiVersion"], "policy/v1")
        self.assertEqual(pdb["spec"]["minAvailable"], 2)
        self.assertTrue(selects(pdb["spec"]["selector"]["matchLabels"], self.labels))
        # A drain must be able to proceed: the HPA's floor stays above the budget.
        self.assertGreater(hpa["spec"]["minReplicas"], pdb["spec"]["minAvailable"])
        self.assertGreaterEqual(hpa["spec"]["maxReplicas"], hpa["spec"]["minReplicas"])
        self.assertGreaterEqual(hpa["spec"]["minReplicas"], 3)

    def test_kustomize_builds_the_same_objects(self):
        kubectl = require_tool("kubectl")
        r = subprocess.run([kubectl, "kustomize", str(K8S)], capture_output=True, text=True,
                           stdin=subprocess.DEVNULL, timeout=120)
        self.assertEqual(r.returncode, 0, f"kubectl kustomize:\n{r.stderr}")
        built = {(o["kind"], o["metadata"]["name"]) for o in yaml_docs(r.stdout, "kustomize")}
        self.assertEqual(built, {(o["kind"], o["metadata"]["name"]) for o in self.objects})


# ------------------------------------------------------------------------------------------
# Flags credod knows
# ------------------------------------------------------------------------------------------

class CredodFlagsTest(unittest.TestCase):
    """Every flag and CREDO_* variable given to credod is one `credod --help` lists."""

    def check(self, where: str, args: list, env_names) -> None:
        flags, envs = credod_interface()
        for flag in flag_names(args):
            with self.subTest(where=where, flag=flag):
                self.assertTrue(flag in flags, f"{where}: credod --help lists no {flag}")
        for name in env_names:
            with self.subTest(where=where, variable=name):
                self.assertTrue(name in envs | CREDOD_PLAIN_ENV,
                                f"{where}: credod reads no {name} (credod --help, API.md)")

    def test_compose_flags(self):
        r = compose_config(ENV_EXAMPLE)
        self.assertEqual(r.returncode, 0, r.stderr)
        [config] = yaml_docs(r.stdout, "docker-compose config output")
        nodes = credod_services(config)
        self.assertTrue(nodes)
        for name, svc in nodes.items():
            self.assertIsNone(svc.get("entrypoint"), f"{name} keeps the image's entrypoint")
            self.check(f"compose {name}", svc.get("command") or [],
                       env_dict(svc.get("environment")))

    def test_dockerfile_env(self):
        runtime = dockerfile_stages()[-1]
        names = [re.split(r"[= ]", a, maxsplit=1)[0] for i, a in runtime["instructions"]
                 if i == "ENV"]
        self.check("Dockerfile", [], [n for n in names if n.startswith("CREDO_")])

    def test_kubernetes_flags(self):
        require_yaml()
        objects = k8s_objects()
        [deployment] = of_kind(objects, "Deployment")
        configmaps = {o["metadata"]["name"]: o.get("data") or {}
                      for o in of_kind(objects, "ConfigMap")}
        for c in deployment["spec"]["template"]["spec"]["containers"]:
            env = c.get("env", [])
            # Helpers such as POD_IP are fine when another value expands them: $(POD_IP).
            referenced = {m for e in env for m in re.findall(r"\$\(([A-Z0-9_]+)\)",
                                                             str(e.get("value", "")))}
            names = [e["name"] for e in env if e["name"] not in referenced]
            for ref in c.get("envFrom", []):
                names += list(configmaps[ref["configMapRef"]["name"]])
            self.check(f"k8s container {c['name']}",
                       list(c.get("command", [])) + list(c.get("args", [])), names)

    def test_credoctl_health_check_arguments(self):
        text = help_text("CREDOCTL", "credoctl")
        self.assertIn("--url", text)
        self.assertRegex(text, r"(?m)^\s+health\b")


# ------------------------------------------------------------------------------------------
# gen-certs.sh
# ------------------------------------------------------------------------------------------

class GeneratedCertificatesTest(unittest.TestCase):
    """docker/gen-certs.sh, as the certs service runs it."""

    def setUp(self):
        self.openssl = require_tool("openssl")
        self.tmp = tempfile.TemporaryDirectory(prefix="credo-gen-certs-")
        self.addCleanup(self.tmp.cleanup)
        self.dir = Path(self.tmp.name) / "certs"

    def gen(self) -> str:
        env = {**os.environ, "CERT_DIR": str(self.dir), "CREDO_NODES": "node-1 node-2 node-3",
               "CERT_OWNER": f"{os.getuid()}:{os.getgid()}"}
        r = subprocess.run(["sh", str(GEN_CERTS)], env=env, capture_output=True, text=True,
                           stdin=subprocess.DEVNULL, timeout=120)
        self.assertEqual(r.returncode, 0, f"gen-certs.sh:\n{r.stdout}\n{r.stderr}")
        return r.stdout

    def test_certificates_verify_for_client_and_server(self):
        self.gen()
        ca = self.dir / "ca.pem"
        self.assertEqual(stat.S_IMODE((self.dir / "ca.key").stat().st_mode), 0o600)
        for node in ("node-1", "node-2", "node-3"):
            with self.subTest(node=node):
                self.assertEqual(stat.S_IMODE((self.dir / f"{node}.key").stat().st_mode), 0o400)
                for purpose in ("sslserver", "sslclient"):
                    r = subprocess.run([self.openssl, "verify", "-purpose", purpose, "-CAfile",
                                        str(ca), str(self.dir / f"{node}.pem")],
                                       capture_output=True, text=True, timeout=60)
                    self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
                text = subprocess.run([self.openssl, "x509", "-noout", "-subject", "-ext",
                                       "subjectAltName", "-in", str(self.dir / f"{node}.pem")],
                                      capture_output=True, text=True, timeout=60).stdout
                self.assertIn(f"CN = {node}", text)
                self.assertIn(f"DNS:{node}", text)

    def test_a_second_run_keeps_the_material(self):
        self.gen()
        before = {p.name: p.read_bytes() for p in self.dir.iterdir()}
        out = self.gen()
        self.assertEqual(out.count("certificate kept"), 3, out)
        self.assertEqual(before, {p.name: p.read_bytes() for p in self.dir.iterdir()})

    def test_nodes_on_the_generated_certificates_join_one_cluster(self):
        """The compose stack's topology on loopback, on the backends of scripts/test.sh: three
        nodes, each naming the other two as seeds, mutual TLS with gen-certs.sh's certificates."""
        from backend_harness import DATABASE_URL, REDIS_URL
        if not (DATABASE_URL and REDIS_URL):
            self.skipTest("backends not started: run through scripts/test.sh "
                          "(scripts/services.sh)")
        from backend_harness import poll
        from cluster_harness import (CONVERGE_S, ISSUER, Node, cluster_address, cluster_env,
                                     cluster_secret, ready_status, wait_converged)
        from credo_harness import CredoClient, CredoServer, unique_id
        self.gen()
        secret = cluster_secret()
        names = ("node-1", "node-2", "node-3")
        # Fixed cluster ports, as in the compose file, so that every node can name the others
        # before they run. (Free now; a clash with another process makes a start fail loudly.)
        sockets = [socket.socket() for _ in names]
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        address = {n: f"127.0.0.1:{s.getsockname()[1]}" for n, s in zip(names, sockets)}
        for s in sockets:
            s.close()
        nodes = []
        for n in names:
            node_id = unique_id(n)
            flags = ["--issuer", ISSUER, "--node-id", node_id, "--cluster", address[n],
                     "--seeds", ",".join(address[o] for o in names if o != n),
                     "--cluster-tls-cert", str(self.dir / f"{n}.pem"),
                     "--cluster-tls-key", str(self.dir / f"{n}.key"),
                     "--cluster-tls-ca", str(self.dir / "ca.pem")]
            server = CredoServer(flags, extra_env=cluster_env(secret))
            self.addCleanup(server.stop)
            server.start()
            nodes.append(Node(node_id, server, CredoClient(server), cluster_address(server)))
        for node in nodes:
            poll(lambda: ready_status(node.api)[0] == 200, 20,
                 what=f"/health/ready of {node.node_id} to answer 200")
        wait_converged(nodes, CONVERGE_S)

if __name__ == "__main__":
    unittest.main()
