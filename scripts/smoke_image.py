"""``make smoke-image``: the real serving image, built and served through the Vertex AI SDK.

1. Finds a Docker API: ``$DOCKER_HOST`` if set, else a running Docker daemon, else podman set up by
   ``scripts/container-runtime.sh up`` (stopped again at the end if this script started it).
2. Trains a small model on synthetic leads.
3. Builds the serving image with ``leadscore image build`` (``LocalModel.build_cpr_model``), on the
   local Debian base image when the API is podman's.
4. Checks that the image pins ``xgboost-cpu`` to the training version, and reports its size.
5. Serves it with ``LocalModel.deploy_to_local_endpoint(artifact_uri=...)`` and checks health, the
   seed's example lead and 100 more against the in-process ``LeadScoringPredictor`` (1e-6), a
   malformed request (4xx) and, where ``predictor/explain.py`` exists, an explain request.
6. Removes the containers (and, unless ``--keep-image``, the image) and checks that the host's
   network state (links, addresses, firewall rules, forwarding sysctls) did not change.

Containers never use a bridge network on podman: podman's bridge adds interfaces and firewall
rules to the host. They run with ``network_mode="slirp4netns"`` and publish their port on
127.0.0.1 only, so the host only ever connects to 127.0.0.1 (see :func:`loopback_containers`).

Exit codes: 0 passed; 1 failed; 77 skipped because no container runtime can be had here (the
reason is printed; ``.ci/run`` reports the skip).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

# Before any Google library is imported: never probe the cloud metadata server.
os.environ["NO_GCE_CHECK"] = "true"

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RUNTIME_SCRIPT = ROOT / "scripts" / "container-runtime.sh"
EXPLAIN_MODULE = ROOT / "predictor" / "explain.py"
EXIT_SKIPPED = 77
RUNTIME_UNSUPPORTED = 3  # container-runtime.sh's exit code for "cannot set up here"
LOOPBACK = "127.0.0.1"
TOLERANCE = 1e-6
MORE_LEADS = 100
JSON_HEADERS = {"Content-Type": "application/json"}
SIZE_TARGET_MB = 800

console = Console(stderr=True)


class SmokeFailure(Exception):
    """A check of the smoke test failed."""


class Skipped(Exception):
    """No container runtime can be had on this machine."""


@dataclass
class Runtime:
    """The Docker API the smoke test talks to.

    Attributes:
        engine: ``podman`` or ``docker``.
        docker_host: ``DOCKER_HOST`` (None: Docker's default socket).
        network_mode: The network containers run in (``slirp4netns`` on podman, never its bridge).
        base_image: Base of the serving image (None: ``leadscore image build``'s default).
        started_service: True when this script started the podman service (and so stops it).
    """

    engine: str
    docker_host: str | None
    network_mode: str | None
    base_image: str | None
    started_service: bool = False


@dataclass
class Report:
    """What the smoke test measured."""

    engine: str = ""
    image: str = ""
    base_image: str | None = None
    image_mb: float = 0.0
    pins: dict[str, str] = field(default_factory=dict)
    train_s: float = 0.0
    build_s: float = 0.0
    ready_s: float = 0.0
    leads_scored: int = 0
    max_abs_diff: float = 0.0
    malformed_status: int = 0
    explain: str = "not checked"
    network_unchanged: str = "not checked"
    total_s: float = 0.0
    passed: list[str] = field(default_factory=list)

    def ok(self, message: str) -> None:
        """Records and prints a step that passed."""
        self.passed.append(message)
        console.print(f"[green]✓[/] {message}")


def engine_of(client: Any) -> str:
    """``podman`` when the Docker API is podman's, else ``docker``."""
    components = client.version().get("Components") or []
    return "podman" if any("podman" in str(c.get("Name", "")).lower() for c in components) else "docker"


def _runtime_for(client: Any, docker_host: str | None, started_service: bool = False) -> Runtime:
    engine = engine_of(client)
    if engine == "podman":
        return Runtime(engine, docker_host, "slirp4netns",
                       os.environ.get("LEADSCORE_BASE_IMAGE", "localhost/leadscore-base:bookworm"), started_service)
    return Runtime(engine, docker_host, None, os.environ.get("LEADSCORE_BASE_IMAGE"), started_service)


def _run_runtime_script(verb: str, quiet: bool = True) -> subprocess.CompletedProcess[str]:
    """Runs ``container-runtime.sh VERB``, capturing its standard output; its progress (standard
    error) is shown unless ``quiet``."""
    return subprocess.run(["bash", str(RUNTIME_SCRIPT), verb], stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL if quiet else None, text=True)


def find_runtime() -> Runtime:
    """Picks the Docker API: ``$DOCKER_HOST``, a running Docker daemon, or podman set up here.

    Raises:
        Skipped: None is running and podman cannot be set up on this machine.
        SmokeFailure: Setting podman up failed.
    """
    import docker

    if os.environ.get("DOCKER_HOST"):
        try:
            return _runtime_for(docker.from_env(), os.environ["DOCKER_HOST"])
        except docker.errors.DockerException as exc:
            raise SmokeFailure(f"DOCKER_HOST={os.environ['DOCKER_HOST']} does not answer: {exc}") from exc
    try:
        client = docker.from_env(timeout=5)
        client.ping()
        return _runtime_for(client, None)
    except docker.errors.DockerException:
        pass
    if platform.system() != "Linux":
        raise Skipped(f"no Docker daemon answers and podman is set up only on Debian 12 ({platform.system()})")
    was_running = _run_runtime_script("status").returncode == 0
    console.print("no Docker daemon; setting up podman with scripts/container-runtime.sh up")
    up = _run_runtime_script("up", quiet=False)
    if up.returncode == RUNTIME_UNSUPPORTED:
        raise Skipped("scripts/container-runtime.sh cannot set up podman on this machine (reason above)")
    if up.returncode != 0:
        raise SmokeFailure(f"scripts/container-runtime.sh up failed (exit code {up.returncode})")
    for line in up.stdout.splitlines():
        name, _, value = line.removeprefix("export ").partition("=")
        os.environ[name] = value
    return _runtime_for(docker.from_env(), os.environ["DOCKER_HOST"], started_service=not was_running)


def loopback_ports(ports: dict[Any, Any] | None) -> dict[Any, Any]:
    """Rewrites docker-py port bindings so that every published port binds 127.0.0.1 only.

    ``{8080: None}`` (a random host port) becomes ``{8080: ("127.0.0.1",)}`` and ``{8080: 9000}``
    becomes ``{8080: ("127.0.0.1", 9000)}``; a binding that names another address is refused.
    """
    rewritten = {}
    for container_port, binding in (ports or {}).items():
        if binding is None:
            rewritten[container_port] = (LOOPBACK,)
        elif isinstance(binding, (int, str)):
            rewritten[container_port] = (LOOPBACK, binding)
        elif isinstance(binding, tuple) and binding and binding[0] == LOOPBACK:
            rewritten[container_port] = binding
        else:
            raise SmokeFailure(f"refusing to publish port {container_port} on {binding!r}: loopback only")
    return rewritten


@contextmanager
def loopback_containers(network_mode: str | None) -> Iterator[list[Any]]:
    """Runs every container docker-py starts in ``network_mode`` with ports on 127.0.0.1 only.

    The SDK's ``run_prediction_container`` calls ``client.containers.run(..., ports={port:
    host_port})`` and has no parameter for the network or the bind address, so the one docker-py
    method it calls is wrapped for the duration. Every container started meanwhile is yielded in
    a list and removed (forcibly) on exit: ``LocalEndpoint`` only stops its container.
    """
    from docker.models.containers import ContainerCollection

    started: list[Any] = []
    original = ContainerCollection.run

    def run(self: ContainerCollection, image: str, command: Any = None, **kwargs: Any) -> Any:
        kwargs["ports"] = loopback_ports(kwargs.get("ports"))
        if network_mode is not None:
            kwargs["network_mode"] = network_mode
        container = original(self, image, command, **kwargs)
        if kwargs.get("detach"):
            started.append(container)
        return container

    try:
        with mock.patch.object(ContainerCollection, "run", run):
            yield started
    finally:
        for container in started:
            try:
                container.remove(force=True)
            except Exception as exc:  # report, keep removing the others
                console.print(f"[red]could not remove container {container.short_id}: {exc}[/]")


def netstate() -> str | None:
    """The host's network state from ``container-runtime.sh netstate``, or None where it can't be read."""
    if platform.system() != "Linux" or shutil.which("ip") is None:
        return None
    return _run_runtime_script("netstate").stdout


def train_model(work: Path, rows: int) -> Path:
    """Trains a small model on synthetic leads; returns its artifact directory."""
    from training.synth import generate_leads, write_table
    from training.train import TrainConfig, train

    data = write_table(generate_leads(rows, seed=11), work / "leads.parquet")
    return train(TrainConfig(data=str(data), out=work / "model")).out


def build_image(model: Path, image: str, base_image: str | None, log: Path) -> None:
    """``leadscore image build`` in a child process, as a user runs it; its output goes to ``log``."""
    command = [sys.executable, "-m", "training", "image", "build", "--model", str(model), "--image", image]
    if base_image:
        command += ["--base-image", base_image]
    with open(log, "w") as out:
        result = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
    if result.returncode != 0:
        tail = "".join(log.read_text(errors="replace").splitlines(keepends=True)[-40:])
        raise SmokeFailure(f"leadscore image build failed (exit code {result.returncode}); end of {log}:\n{tail}")


def image_pins(client: Any, image: str) -> dict[str, str | None]:
    """The installed versions of the serving libraries inside the image (None: not installed).

    Runs the image's own Python with no network at all and removes the container.
    """
    probe = (
        "import json, importlib.metadata as m\n"
        "def v(d):\n"
        "    try: return m.version(d)\n"
        "    except m.PackageNotFoundError: return None\n"
        "print(json.dumps({d: v(d) for d in ('xgboost-cpu', 'xgboost', 'numpy', 'google-cloud-aiplatform')}))\n"
    )
    output = client.containers.run(image, entrypoint=["python", "-c", probe], network_mode="none", remove=True)
    return json.loads(output.decode().strip().splitlines()[-1])


def request(endpoint: Any, body: Any) -> Any:
    """POSTs a JSON body to the local endpoint (``LocalEndpoint.predict`` needs the header)."""
    return endpoint.predict(request=json.dumps(body), headers=JSON_HEADERS)


def max_difference(got: Any, want: Any, path: str = "$") -> float:
    """Largest absolute difference between the numbers of two JSON documents of the same shape.

    Raises:
        SmokeFailure: The documents differ in structure, keys or non-numeric values.
    """
    if isinstance(want, bool) or not isinstance(want, (int, float)):
        if isinstance(want, dict) and isinstance(got, dict) and got.keys() == want.keys():
            return max((max_difference(got[k], want[k], f"{path}.{k}") for k in want), default=0.0)
        if isinstance(want, list) and isinstance(got, list) and len(got) == len(want):
            return max((max_difference(g, w, f"{path}[{i}]") for i, (g, w) in enumerate(zip(got, want))), default=0.0)
        if got == want:
            return 0.0
        raise SmokeFailure(f"{path}: container answered {str(got)[:200]}, in-process {str(want)[:200]}")
    if isinstance(got, bool) or not isinstance(got, (int, float)) or not math.isfinite(got):
        raise SmokeFailure(f"{path}: container answered {got!r}, in-process {want!r}")
    return abs(float(got) - float(want))


def check_endpoint(endpoint: Any, model: Path, report: Report) -> None:
    """Health, parity with the in-process predictor, a malformed request and explanations."""
    from predictor.predictor import LeadScoringPredictor
    from training.synth import EXAMPLE_LEAD, TARGET, generate_leads

    health = endpoint.run_health_check(verbose=False)
    if health.status_code != 200:
        raise SmokeFailure(f"health check answered {health.status_code}: {health.text[:300]}")
    report.ok("GET /health → 200")

    local = LeadScoringPredictor()
    local.load(str(model))

    def in_process(body: dict[str, Any]) -> Any:
        return local.postprocess(local.predict(local.preprocess(body)))

    more = generate_leads(MORE_LEADS, seed=2024)
    features = [name for name in more.column_names if name not in ("lead_id", TARGET)]
    leads = [EXAMPLE_LEAD, *more.select(features).to_pylist()]
    for body in ({"instances": [EXAMPLE_LEAD]}, {"instances": leads}):
        response = request(endpoint, body)
        if response.status_code != 200:
            raise SmokeFailure(f"POST /predict answered {response.status_code}: {response.text[:300]}")
        diff = max_difference(response.json(), in_process(body))
        if diff > TOLERANCE:
            raise SmokeFailure(f"container and in-process predictions differ by {diff:.3g} (> {TOLERANCE})")
        report.max_abs_diff = max(report.max_abs_diff, diff)
        if len(body["instances"]) == 1:
            report.ok(f"the seed's example lead scores {response.json()['predictions'][0]:.4f}, as in-process")
    report.leads_scored = len(leads)
    report.ok(f"{len(leads)} leads scored by the container equal the in-process "
                  f"LeadScoringPredictor's (max |Δ| {report.max_abs_diff:.2g})")

    malformed = request(endpoint, {"instances": [{**EXAMPLE_LEAD, "pages_visited": "many"}]})
    report.malformed_status = malformed.status_code
    if not 400 <= malformed.status_code < 500 or "pages_visited" not in malformed.text:
        raise SmokeFailure(f"a malformed request answered {malformed.status_code}: {malformed.text[:300]}")
    report.ok(f"malformed request → {malformed.status_code} {malformed.text[:120]}")

    if not EXPLAIN_MODULE.exists():
        report.explain = "skipped: predictor/explain.py does not exist yet"
        console.print(f"[yellow]·[/] explain {report.explain}")
        return
    body = {"instances": leads, "parameters": {"explain": True}}
    response = request(endpoint, body)
    if response.status_code != 200:
        raise SmokeFailure(f"explain request answered {response.status_code}: {response.text[:300]}")
    got = response.json()
    if all(isinstance(p, (int, float)) for p in got.get("predictions", [])):
        raise SmokeFailure("explain request returned bare scores, no explanations")
    diff = max_difference(got, in_process(body))
    if diff > TOLERANCE:
        raise SmokeFailure(f"container and in-process explanations differ by {diff:.3g} (> {TOLERANCE})")
    report.explain = f"ok ({len(leads)} leads, max |Δ| {diff:.2g})"
    report.ok(f"explanations of {len(leads)} leads equal the in-process ones (max |Δ| {diff:.2g})")


def deploy_and_check(client: Any, runtime: Runtime, image: str, model: Path, report: Report) -> None:
    """``LocalModel.deploy_to_local_endpoint`` on the image, checks, then the containers go."""
    import google.auth.credentials
    from google.cloud import aiplatform
    from google.cloud.aiplatform.compat.types import model as gca_model_compat
    from google.cloud.aiplatform.prediction import LocalModel
    from google.cloud.aiplatform.prediction.local_model import DEFAULT_HEALTH_ROUTE, DEFAULT_PREDICT_ROUTE

    # Explicit project and credentials: the SDK never looks for Google credentials or a project.
    aiplatform.init(project="leadscore-smoke", location="us-central1",
                    credentials=google.auth.credentials.AnonymousCredentials())
    # What build_cpr_model returns for this image (it ran in the `leadscore image build` process).
    local_model = LocalModel(serving_container_spec=gca_model_compat.ModelContainerSpec(
        image_uri=image, predict_route=DEFAULT_PREDICT_ROUTE, health_route=DEFAULT_HEALTH_ROUTE))
    with loopback_containers(runtime.network_mode) as started:
        start = time.monotonic()
        with local_model.deploy_to_local_endpoint(artifact_uri=str(model), container_ready_timeout=180) as endpoint:
            report.ready_s = time.monotonic() - start
            report.ok(f"deploy_to_local_endpoint: healthy in {report.ready_s:.1f} s on "
                          f"{LOOPBACK}:{endpoint.assigned_host_port} ({runtime.network_mode or 'default network'})")
            try:
                check_endpoint(endpoint, model, report)
            except Exception:
                endpoint.print_container_logs(show_all=True, message="container logs:")
                raise
        ids = [c.id for c in started]
        # loopback_containers removes it; LocalEndpoint.__del__ would otherwise stop it once more.
        endpoint.container = None
    leftover = [c for c in client.containers.list(all=True) if c.id in ids]
    if leftover:
        raise SmokeFailure(f"containers left behind: {[c.short_id for c in leftover]}")
    report.ok(f"removed {len(ids)} container(s)")


def smoke(report: Report, work: Path, rows: int, keep_image: bool) -> None:
    """Runs the whole smoke test, recording what it measured in ``report``.

    Raises:
        Skipped: No container runtime here.
        SmokeFailure: A check failed.
    """
    import docker

    started = time.monotonic()
    runtime = find_runtime()
    try:
        client = docker.from_env(timeout=300)
        report.engine = f"{runtime.engine} at {runtime.docker_host or 'the default socket'}"
        report.base_image = runtime.base_image
        report.ok(f"Docker API: {report.engine}")
        before = netstate()

        work.mkdir(parents=True, exist_ok=True)
        t = time.monotonic()
        model = train_model(work, rows)
        report.train_s = time.monotonic() - t
        report.ok(f"trained on {rows:,} synthetic leads in {report.train_s:.1f} s → {model}")

        report.image = f"localhost/leadscore-smoke:{int(time.time())}"
        t = time.monotonic()
        with console.status(f"leadscore image build --image {report.image} (log: {work / 'build.log'})"):
            build_image(model, report.image, runtime.base_image, work / "build.log")
        report.build_s = time.monotonic() - t
        try:
            report.image_mb = client.images.get(report.image).attrs["Size"] / 1e6
            report.ok(f"built {report.image} in {report.build_s:.0f} s: {report.image_mb:.0f} MB")
            pins = image_pins(client, report.image)
            report.pins = {k: v for k, v in pins.items() if v}
            trained = json.loads((model / "manifest.json").read_text())["versions"]["xgboost"]
            if pins["xgboost-cpu"] != trained or pins["xgboost"] is not None:
                raise SmokeFailure(f"the image should hold xgboost-cpu=={trained} and no xgboost (CUDA): {pins}")
            report.ok(f"image holds xgboost-cpu {pins['xgboost-cpu']} (the training version), "
                          f"numpy {pins['numpy']}, google-cloud-aiplatform {pins['google-cloud-aiplatform']}")
            deploy_and_check(client, runtime, report.image, model, report)
        finally:
            if not keep_image:
                client.images.remove(report.image, force=True)
        after = netstate()
        if before is not None and after is not None:
            if before != after:
                raise SmokeFailure(f"the host's network state changed:\nbefore:\n{before}\nafter:\n{after}")
            report.network_unchanged = "yes (links, addresses, iptables, forwarding sysctls)"
            report.ok("host network unchanged (links, addresses, iptables, forwarding sysctls)")
    finally:
        if runtime.started_service:
            _run_runtime_script("down", quiet=False)
    report.total_s = time.monotonic() - started


def print_report(report: Report) -> None:
    """The measurements as a table on standard output."""
    table = Table(title="Serving image smoke test", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    size = f"{report.image_mb:.0f} MB ({'within' if report.image_mb < SIZE_TARGET_MB else 'OVER'} the " \
           f"{SIZE_TARGET_MB} MB target)"
    rows = [
        ("Docker API", report.engine),
        ("image", report.image),
        ("base image", report.base_image or "leadscore image build's default"),
        ("image size", size),
        ("pinned", ", ".join(f"{k} {v}" for k, v in report.pins.items())),
        ("train / build / ready", f"{report.train_s:.1f} s / {report.build_s:.1f} s / {report.ready_s:.1f} s"),
        ("leads scored", f"{report.leads_scored} (max |Δ| vs in-process {report.max_abs_diff:.2g})"),
        ("malformed request", str(report.malformed_status)),
        ("explain", report.explain),
        ("host network unchanged", report.network_unchanged),
        ("total", f"{report.total_s:.0f} s"),
    ]
    for name, value in rows:
        table.add_row(name, value)
    Console().print(table)


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code (0 passed, 1 failed, 77 skipped)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=2_000, help="synthetic leads to train on (default 2,000)")
    parser.add_argument("--work", type=Path, default=ROOT / ".containers" / "smoke",
                        help="where the data, model, build log and report go (default .containers/smoke)")
    parser.add_argument("--keep-image", action="store_true", help="keep the built image (removed by default)")
    args = parser.parse_args(argv)
    os.environ.setdefault("NO_PROXY", "localhost,127.0.0.1")
    report = Report()
    try:
        smoke(report, args.work, args.rows, args.keep_image)
    except Skipped as exc:
        console.print(f"[yellow]smoke-image SKIPPED:[/] {exc}")
        return EXIT_SKIPPED
    except SmokeFailure as exc:
        console.print(f"[red]smoke-image FAILED:[/] {exc}")
        print(f"smoke-image: {len(report.passed)} passed, 1 failed")
        return 1
    print_report(report)
    (args.work / "report.json").write_text(json.dumps(asdict(report), indent=2) + "\n")
    print(f"smoke-image: {len(report.passed)} passed, 0 failed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
