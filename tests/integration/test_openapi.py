"""docs/openapi.yaml against the server: the same routes as http/service.cpp, every operation
routed by the live server, and a structurally sound document.

The test Python has no YAML parser, so the spec is converted to JSON by a Python that has one
(Debian's /usr/bin/python3 with python3-yaml, or $CREDO_YAML_PYTHON); without one the tests skip.
"""

from __future__ import annotations

import functools
import json
import os
import re
import subprocess
import unittest
from pathlib import Path

from credo_harness import CredoTestCase, raw_request

REPO = Path(__file__).resolve().parents[2]
SPEC_PATH = REPO / "docs" / "openapi.yaml"
SERVICE_CPP = REPO / "http" / "service.cpp"

HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
# Methods probed for 405 on a spec path that does not declare them.
PROBE_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")

_YAML_TO_JSON = ("import sys, json, yaml; "
                 "json.dump(yaml.safe_load(open(sys.argv[1], encoding='utf-8')), sys.stdout)")
_ROUTE_RE = re.compile(r'\br\.add\(\s*"([A-Z]+)"\s*,\s*"([^"]+)"')
_PARAM_RE = re.compile(r"\{([^{}/]+)\}")


def _yaml_python() -> str | None:
    """A Python interpreter that can import yaml, or None."""
    candidates = [os.environ.get("CREDO_YAML_PYTHON"), "/usr/bin/python3"]
    for exe in candidates:
        if not exe or not os.access(exe, os.X_OK):
            continue
        probe = subprocess.run([exe, "-c", "import yaml"], capture_output=True, timeout=30)
        if probe.returncode == 0:
            return exe
    return None


@functools.lru_cache(maxsize=None)
def _load_spec_cached() -> dict:
    exe = _yaml_python()
    if exe is None:
        raise unittest.SkipTest(
            "no Python with PyYAML to read docs/openapi.yaml: install python3-yaml "
            "(for /usr/bin/python3) or set CREDO_YAML_PYTHON")
    done = subprocess.run([exe, "-c", _YAML_TO_JSON, str(SPEC_PATH)], capture_output=True,
                          timeout=60)
    if done.returncode != 0:
        raise AssertionError(f"{SPEC_PATH} does not parse as YAML:\n"
                             f"{done.stderr.decode('utf-8', 'replace')}")
    spec = json.loads(done.stdout)
    if not isinstance(spec, dict):
        raise AssertionError(f"{SPEC_PATH} is not a YAML mapping")
    return spec


def load_spec() -> dict:
    if not SPEC_PATH.is_file():
        raise AssertionError(f"{SPEC_PATH} does not exist")
    return _load_spec_cached()


def normalise(template: str) -> str:
    """"/auth/consent/{client_id}/{scope}" -> "/auth/consent/{}/{}"."""
    return _PARAM_RE.sub("{}", template)


def spec_operations(spec: dict) -> list[tuple[str, str]]:
    """(METHOD, path template) of every operation in the spec."""
    ops = []
    for path, item in (spec.get("paths") or {}).items():
        for method in HTTP_METHODS:
            if isinstance(item, dict) and method in item:
                ops.append((method.upper(), path))
    return ops


def server_routes() -> list[tuple[str, str]]:
    """(METHOD, path pattern) of every r.add(...) in http/service.cpp."""
    text = SERVICE_CPP.read_text(encoding="utf-8")
    return [(m, p) for m, p in _ROUTE_RE.findall(text)]


def sample_path(template: str) -> str:
    return _PARAM_RE.sub(lambda m: f"sample-{m.group(1)}", template)


def template_matches(template: str, path: str) -> bool:
    """The router's rule: same segment count, literal segments equal, {x} any non-empty one."""
    t, p = template.split("/"), path.split("/")
    if len(t) != len(p):
        return False
    return all((_PARAM_RE.fullmatch(a) and b) or a == b for a, b in zip(t, p))


def resolve_pointer(doc: dict, ref: str):
    """The target of a local JSON reference "#/a/b", or raise KeyError."""
    if not ref.startswith("#/"):
        raise KeyError(f"not a local reference: {ref}")
    node = doc
    for raw in ref[2:].split("/"):
        key = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and key in node:
            node = node[key]
        elif isinstance(node, list) and key.isdigit() and int(key) < len(node):
            node = node[int(key)]
        else:
            raise KeyError(ref)
    return node


def deref(doc: dict, node):
    seen = 0
    while isinstance(node, dict) and "$ref" in node:
        node = resolve_pointer(doc, node["$ref"])
        seen += 1
        if seen > 32:
            raise KeyError("reference cycle")
    return node


def walk_refs(node, where: str = "#"):
    """Yields (location, ref) for every $ref in the document."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield where, value
            else:
                yield from walk_refs(value, f"{where}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from walk_refs(value, f"{where}/{i}")


def _format_pairs(pairs) -> str:
    return "\n".join(f"    {m} {p}" for m, p in sorted(pairs, key=lambda x: (x[1], x[0])))


# ---------------------------------------------------------------------------------------------
# (a) the spec and the router have the same routes
# ---------------------------------------------------------------------------------------------

class SpecMatchesRouterTest(unittest.TestCase):

    def test_spec_operations_equal_service_routes(self):
        spec = load_spec()
        code = server_routes()
        self.assertTrue(code, f"no r.add(...) routes found in {SERVICE_CPP}")
        code_set = {(m, normalise(p)) for m, p in code}
        spec_set = {(m, normalise(p)) for m, p in spec_operations(spec)}
        missing_from_spec = code_set - spec_set
        missing_from_code = spec_set - code_set
        problems = []
        if missing_from_spec:
            problems.append("routed in http/service.cpp but not in docs/openapi.yaml:\n"
                            + _format_pairs(missing_from_spec))
        if missing_from_code:
            problems.append("in docs/openapi.yaml but not routed in http/service.cpp:\n"
                            + _format_pairs(missing_from_code))
        if problems:
            self.fail("spec and router disagree\n  " + "\n  ".join(problems))

    def test_no_route_is_registered_twice(self):
        code = [(m, normalise(p)) for m, p in server_routes()]
        dupes = {r for r in code if code.count(r) > 1}
        self.assertFalse(dupes, f"routes registered twice in service.cpp:\n{_format_pairs(dupes)}")


# ---------------------------------------------------------------------------------------------
# (b) the live server routes every operation of the spec, and nothing else
# ---------------------------------------------------------------------------------------------

class SpecRoutedByServerTest(CredoTestCase):

    spec: dict

    @classmethod
    def setUpClass(cls) -> None:
        cls.spec = load_spec()  # skips before a server is started when no YAML reader exists
        super().setUpClass()

    def send(self, method: str, path: str):
        """No auth, no body: only the router's answer matters here."""
        return raw_request(self.server.host, self.server.port, method, path)

    @staticmethod
    def is_unrouted(resp) -> bool:
        body = resp.json if isinstance(resp.json, dict) else {}
        return resp.status == 405 or (
            resp.status == 404 and body.get("error") == "not_found"
            and body.get("error_description") == "no such endpoint")

    def test_every_spec_operation_is_routed(self):
        unrouted = []
        for method, template in spec_operations(self.spec):
            path = sample_path(template)
            resp = self.send(method, path)
            if self.is_unrouted(resp):
                unrouted.append(f"    {method} {template} (sent {path}): {resp.describe(200)}")
            elif not resp.header("x-request-id"):
                unrouted.append(f"    {method} {template}: answer without X-Request-ID")
        if unrouted:
            self.fail("operations of docs/openapi.yaml the server does not route:\n"
                      + "\n".join(unrouted))

    def test_paths_not_in_spec_are_404(self):
        templates = list(self.spec["paths"])
        candidates = ["/no-such-endpoint", "/", "/admin", "/auth", "/auth/sessions/x/y",
                      "/me/data-export/extra", "/.well-known/other", "/health/live/x",
                      "/users/123", "/auth/consent/only-client"]
        for path in candidates:
            with self.subTest(path=path):
                self.assertFalse(any(template_matches(t, path) for t in templates),
                                 f"test bug: {path} matches a spec path")
                resp = self.send("GET", path)
                self.assertError(resp, 404, "not_found", f"GET {path}")

    def test_undeclared_methods_are_405_with_the_spec_methods_in_allow(self):
        problems = []
        for template, item in self.spec["paths"].items():
            declared = {m.upper() for m in HTTP_METHODS if m in item}
            path = sample_path(template)
            for method in PROBE_METHODS:
                if method in declared:
                    continue
                resp = self.send(method, path)
                if resp.status != 405:
                    problems.append(f"    {method} {template}: expected 405, got "
                                    f"{resp.describe(200)}")
                    continue
                allow = {m.strip() for m in (resp.header("allow") or "").split(",") if m.strip()}
                if allow != declared:
                    problems.append(f"    {method} {template}: Allow {sorted(allow)} != spec "
                                    f"methods {sorted(declared)}")
        if problems:
            self.fail("methods the spec does not declare:\n" + "\n".join(problems))


# ---------------------------------------------------------------------------------------------
# (c) the document is structurally sound
# ---------------------------------------------------------------------------------------------

class SpecStructureTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls) -> None:
        super().setUpClass()
        cls.spec = load_spec()

    def test_openapi_3_header(self):
        spec = self.spec
        self.assertRegex(str(spec.get("openapi", "")), r"^3\.\d+\.\d+$", "openapi version")
        info = spec.get("info")
        self.assertIsInstance(info, dict, "info")
        self.assertTrue(info.get("title"), "info.title")
        self.assertTrue(info.get("version"), "info.version")
        self.assertIsInstance(spec.get("paths"), dict, "paths")
        self.assertTrue(spec["paths"], "paths is empty")
        for path in spec["paths"]:
            self.assertTrue(path.startswith("/"), f"path {path!r} does not start with /")

    def test_every_operation_has_responses(self):
        problems = []
        for method, path in spec_operations(self.spec):
            op = self.spec["paths"][path][method.lower()]
            responses = op.get("responses")
            if not isinstance(responses, dict) or not responses:
                problems.append(f"{method} {path}: no responses")
                continue
            for code, resp in responses.items():
                if not re.fullmatch(r"[1-5](\d\d|XX)|default", str(code)):
                    problems.append(f"{method} {path}: bad response key {code!r}")
                try:
                    resolved = deref(self.spec, resp)
                except KeyError as exc:
                    problems.append(f"{method} {path} {code}: unresolved {exc}")
                    continue
                if not isinstance(resolved, dict) or not resolved.get("description"):
                    problems.append(f"{method} {path} {code}: response without description")
        self.assertFalse(problems, "\n".join(problems))

    def test_operation_ids_are_unique(self):
        ids = [self.spec["paths"][p][m.lower()].get("operationId")
               for m, p in spec_operations(self.spec)]
        ids = [i for i in ids if i]
        self.assertEqual(len(ids), len(set(ids)),
                         f"duplicate operationIds: {sorted({i for i in ids if ids.count(i) > 1})}")

    def test_every_path_parameter_is_declared(self):
        problems = []
        for path, item in self.spec["paths"].items():
            in_template = set(_PARAM_RE.findall(path))
            shared = [deref(self.spec, p) for p in item.get("parameters", [])]
            for method in HTTP_METHODS:
                if method not in item:
                    continue
                own = [deref(self.spec, p) for p in item[method].get("parameters", [])]
                declared = {}
                for p in shared + own:  # operation-level parameters override path-level ones
                    if isinstance(p, dict) and p.get("in") == "path":
                        declared[p.get("name")] = p
                where = f"{method.upper()} {path}"
                for name in sorted(in_template - declared.keys()):
                    problems.append(f"{where}: path parameter {{{name}}} is not declared")
                for name in sorted(declared.keys() - in_template):
                    problems.append(f"{where}: declares path parameter {name!r} "
                                    "that is not in the template")
                for name, p in declared.items():
                    if p.get("required") is not True:
                        problems.append(f"{where}: path parameter {name!r} is not required: true")
                    if "schema" not in p and "content" not in p:
                        problems.append(f"{where}: path parameter {name!r} has no schema")
        self.assertFalse(problems, "\n".join(problems))

    def test_every_ref_resolves(self):
        problems = []
        refs = list(walk_refs(self.spec))
        self.assertTrue(refs, "the spec uses no $ref at all (components unused?)")
        for where, ref in refs:
            try:
                resolve_pointer(self.spec, ref)
            except KeyError:
                problems.append(f"{where}: $ref {ref!r} does not resolve")
        self.assertFalse(problems, "\n".join(problems))

    def test_security_requirements_name_defined_schemes(self):
        schemes = (self.spec.get("components") or {}).get("securitySchemes") or {}
        problems = []
        requirements = [("(root)", r) for r in self.spec.get("security", [])]
        for method, path in spec_operations(self.spec):
            op = self.spec["paths"][path][method.lower()]
            requirements += [(f"{method} {path}", r) for r in op.get("security", [])]
        for where, req in requirements:
            for name in req:
                if name not in schemes:
                    problems.append(f"{where}: security scheme {name!r} is not defined")
        self.assertFalse(problems, "\n".join(problems))

    def test_error_schema_and_rate_limit_headers_are_defined(self):
        components = self.spec.get("components") or {}
        error = (components.get("schemas") or {}).get("Error")
        self.assertIsInstance(error, dict, "components.schemas.Error")
        self.assertEqual(set(error.get("required", [])), {"error", "error_description"})
        headers = components.get("headers") or {}
        for name in ("X-Request-ID", "Retry-After", "RateLimit-Limit", "RateLimit-Remaining",
                     "RateLimit-Reset"):
            self.assertIn(name, headers, f"components.headers.{name}")


if __name__ == "__main__":
    unittest.main()
