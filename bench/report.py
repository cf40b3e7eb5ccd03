"""The printed table: targets with pass/fail marks, then every run's figures, each beside the
previous run's when a results file of an earlier run exists."""

from collections.abc import Callable, Sequence
from typing import Any

from bench.targets import find, headline

Row = Sequence[str]


def _num(value: Any, digits: int = 0) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        if digits == 0:
            return f"{value:,.0f}"
        return f"{value:,.{digits}f}"
    return str(value)


def table(header: Row, rows: Sequence[Row], indent: str = "  ") -> str:
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]

    def line(row: Row) -> str:
        cells = [
            str(cell).ljust(width) if i == 0 else str(cell).rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        return indent + "  ".join(cells).rstrip()

    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows)])


def _mark(passed: bool | None) -> str:
    return {True: "PASS", False: "FAIL", None: "n/a"}[passed]


def _limit(target: dict[str, Any]) -> str:
    op = "≥" if target["op"] == ">=" else "≤"
    limit = target["limit"]
    # As written in the target (1.05, not a rounded 1.1).
    shown = _num(limit) if limit == int(limit) else f"{limit:g}"
    return f"{op} {shown} {target['unit']}".rstrip()


def _digits(value: Any) -> int:
    if isinstance(value, float) and abs(value) < 10:
        return 3 if abs(value) < 1 else 2
    return 0


def targets_table(targets: list[dict[str, Any]], previous: list[dict[str, Any]] | None) -> str:
    before = {t["label"]: t for t in previous or []}
    rows = []
    for target in targets:
        prev = before.get(target["label"], {}).get("value")
        rows.append(
            [
                target["label"],
                _num(target["value"], _digits(target["value"])),
                _num(prev, _digits(prev)),
                _limit(target),
                _mark(target["passed"]),
            ]
        )
    return table(["target", "now", "previous", "limit", ""], rows)


Column = tuple[str, Callable[[dict[str, Any]], Any], int]

DISPATCH_COLUMNS: list[Column] = [
    ("size", lambda r: r["plan"]["size"], 0),
    ("e2e msg/s", lambda r: r.get("end_to_end_msgs_per_s"), 0),
    ("stub msg/s", lambda r: r.get("stub_sustained_msgs_per_s"), 0),
    ("final s", lambda r: r.get("all_final_s"), 1),
    ("rows s", lambda r: r.get("all_rows_s"), 1),
    ("1st send s", lambda r: r.get("first_send_s"), 2),
    ("herald ms/msg", lambda r: r["resources"]["herald_cpu_ms_per_message"], 3),
    ("PG ms/msg", lambda r: r["resources"]["postgres_cpu_ms_per_message"], 3),
    ("MQ ms/msg", lambda r: r["resources"]["rabbitmq_cpu_ms_per_message"], 3),
    ("sender MiB", lambda r: r["resources"]["peak_rss_mib"]["sender"], 0),
    ("stub ms/req", lambda r: r["stub"]["cpu_ms_per_request"], 3),
    ("stub x", lambda r: r["stub"]["headroom"], 1),
    ("dup", lambda r: r.get("duplicates_at_stub"), 0),
    ("late", lambda r: r.get("sends_after_end"), 0),
    ("load", lambda r: r["load_average_at_start"][0], 1),
]


def _dispatch_label(result: dict[str, Any]) -> str:
    plan = result["plan"]
    latency = (
        f"{plan['latency_ms']:g}±{plan['jitter_ms']:g} ms"
        if plan["jitter_ms"]
        else (f"{plan['latency_ms']:g} ms")
    )
    faults = " faults" if plan["stub_faults"] else ""
    load = " +api" if plan["api_load"] else ""
    return f"{latency}, {plan['senders']} sender{'s' if plan['senders'] > 1 else ''}{faults}{load}"


def _cells(result: dict[str, Any], columns: list[Column]) -> list[str]:
    cells = []
    for _, read, digits in columns:
        try:
            cells.append(_num(read(result), digits))
        except (KeyError, TypeError, IndexError):
            cells.append("—")
    return cells


def dispatch_table(results: list[dict[str, Any]], previous: list[dict[str, Any]]) -> str:
    rows = []
    for result in results:
        if result["run"] != "dispatch":
            continue
        label = _dispatch_label(result)
        rows.append([label, *_cells(result, DISPATCH_COLUMNS)])
        before = _same_run(previous, result)
        if before is not None:
            rows.append(["  previous", *_cells(before, DISPATCH_COLUMNS)])
        if not result.get("complete"):
            note = "  (incomplete: timed out before every message was final)"
            rows.append([note, *[""] * len(DISPATCH_COLUMNS)])
    return table(["dispatch run", *(c[0] for c in DISPATCH_COLUMNS)], rows)


RATE_LIMIT_COLUMNS: list[Column] = [
    ("stub msg/s", lambda r: r.get("stub_sustained_msgs_per_s"), 0),
    ("e2e msg/s", lambda r: r.get("end_to_end_msgs_per_s"), 0),
    ("busiest 1 s", lambda r: r["rate_limit"]["busiest_1s_requests"], 0),
    ("/ limit", lambda r: r["rate_limit"]["busiest_1s_over_limit"], 3),
    ("herald ms/msg", lambda r: r["resources"]["herald_cpu_ms_per_message"], 3),
    (
        "Δ herald",
        lambda r: _signed(r["rate_limit"]["vs_unlimited"]["herald_cpu_ms_per_message"]),
        0,
    ),
    ("PG ms/msg", lambda r: r["resources"]["postgres_cpu_ms_per_message"], 3),
    ("Δ PG", lambda r: _signed(r["rate_limit"]["vs_unlimited"]["postgres_cpu_ms_per_message"]), 0),
    ("leases", lambda r: r["rate_limit"]["leases"], 0),
    ("req/lease", lambda r: r["rate_limit"]["requests_per_lease"], 1),
    ("dup", lambda r: r.get("duplicates_at_stub"), 0),
    ("load", lambda r: r["load_average_at_start"][0], 1),
]


def _signed(value: float | None) -> str | None:
    return None if value is None else f"{value:+.3f}"


def _rate_limit_label(result: dict[str, Any]) -> str:
    limit = result["plan"].get("rate_limit")
    if not limit:
        return "no limit"
    binding = result.get("rate_limit", {}).get("binding")
    return f"{limit:,.0f}/s{' (binding)' if binding else ' (above)' if binding is False else ''}"


def rate_limit_lines(results: list[dict[str, Any]], previous: list[dict[str, Any]]) -> list[str]:
    limited = [r for r in results if r["run"] == "ratelimit"]
    if not limited:
        return []
    rows = []
    for result in limited:
        rows.append([_rate_limit_label(result), *_cells(result, RATE_LIMIT_COLUMNS)])
        before = _same_run(previous, result)
        if before is not None:
            rows.append(["  previous", *_cells(before, RATE_LIMIT_COLUMNS)])
        if not result.get("complete"):
            note = "  (incomplete: timed out before every message was final)"
            rows.append([note, *[""] * len(RATE_LIMIT_COLUMNS)])
    plan = limited[0]["plan"]
    return [
        f"  {plan['size']:,} messages, stub {plan['latency_ms']:g}±{plan['jitter_ms']:g} ms,"
        f" {plan['senders']} senders; Δ: CPU per message minus the run's without a limit.",
        "  Above the rate reached, a limit costs its leases (one UPDATE per lease); a binding"
        " one\n  also stretches the run, so its CPU per message carries idle loops too.",
        table(["HERALD_PROBE_RATE_LIMIT", *(c[0] for c in RATE_LIMIT_COLUMNS)], rows),
    ]


def _same_run(previous: list[dict[str, Any]], result: dict[str, Any]) -> dict[str, Any] | None:
    return next((r for r in previous if r.get("name") == result.get("name")), None)


def _pair(result: dict[str, Any], previous: list[dict[str, Any]], key: str, digits: int = 0) -> str:
    now = _num(result.get(key), digits)
    before = _same_run(previous, result)
    return f"{now} (prev {_num(before.get(key), digits)})" if before else now


def ingest_lines(results: list[dict[str, Any]], previous: list[dict[str, Any]]) -> list[str]:
    lines = []
    imported = find(results, "import")
    if imported is not None:
        lines.append(
            f"  import {imported['size']:,} clients (CSV, bulk endpoint): "
            f"{_pair(imported, previous, 'seconds', 1)} s, "
            f"{_pair(imported, previous, 'rows_per_s')} rows/s; api RSS "
            f"{_num(imported['api_rss_before_mib'])} -> "
            f"{_num(imported['api_peak_rss_mib'])} MiB peak"
        )
    materialised = find(results, "materialise")
    if materialised is not None:
        lines.append(
            f"  materialise {materialised['size']:,} ledger rows: "
            f"{_pair(materialised, previous, 'seconds', 2)} s, "
            f"{_pair(materialised, previous, 'rows_per_s')} rows/s; scheduler peak RSS "
            f"{_num(materialised['scheduler_peak_rss_mib'])} MiB, CPU scheduler "
            f"{_num(materialised['cpu_seconds']['scheduler'], 1)} s, PostgreSQL "
            f"{_num(materialised['cpu_seconds']['postgres_backends'], 1)} s"
        )
    return lines


def latency_lines(results: list[dict[str, Any]], previous: list[dict[str, Any]]) -> list[str]:
    result = find(results, "latency")
    lines = []
    if result is not None:
        lag = result["sent_minus_due"]
        lines.append(
            f"  {result['mailings']} mailings x {result['size']:,} clients, stub 50±10 ms, 2 "
            "senders, idle system: first send p50 "
            f"{_pair(result, previous, 'first_send_p50_s', 3)} s,"
            f" max {_pair(result, previous, 'first_send_max_s', 3)} s;"
            f" sent_at - due_at p50 {_num(lag['p50_ms'])} ms, p99 {_num(lag['p99_ms'])} ms"
        )
    main = headline(results)
    if main is not None:
        lag = main["sent_minus_due"]
        lines.append(
            f"  headline dispatch ({main['plan']['size']:,} due at once): first send "
            f"{_num(main['first_send_s'], 2)} s; sent_at - due_at p50 {_num(lag['p50_ms'])} ms,"
            f" p99 {_num(lag['p99_ms'])} ms (a backlog drained at the run's rate)"
        )
    return lines


def faults_lines(results: list[dict[str, Any]]) -> list[str]:
    result = next((r for r in results if r["run"] == "dispatch" and r["plan"]["stub_faults"]), None)
    if result is None:
        return []
    stub = result["stub"]
    return [
        f"  stub {' '.join(result['plan']['stub_faults'])}: requests {stub['requests']:,}, "
        f"outcomes {stub['by_outcome']}; statuses "
        f"{ {k: v for k, v in result['statuses'].items() if v} }"
    ]


def stub_lines(results: list[dict[str, Any]]) -> list[str]:
    result = find(results, "stub")
    if result is None:
        return []
    client = result["client"]
    return [
        f"  capacity at {result['latency_ms']}±{result['jitter_ms']} ms, "
        f"{result['concurrency']:,} requests in flight (pyreqwest, its own process): "
        f"{_num(result['served_per_s'])} requests/s served at "
        f"{_num(result['cpu_share_of_one_core'], 2)} of one core, "
        f"{_num(result['cpu_ms_per_request'], 4)} ms CPU per request: "
        f"capacity {_num(result.get('capacity_per_core'))} requests/s per core; "
        f"client ok {client['ok']:,}, failed {client['failed']:,}"
    ]


def api_lines(results: list[dict[str, Any]]) -> list[str]:
    main = headline(results)
    if main is None or "api_under_load" not in main:
        return []
    rows = [
        [
            {"get_mailing_stats": "GET /mailings/{id}/stats", "post_client": "POST /clients"}[kind],
            _num(figures["requests"]),
            _num(figures["errors"]),
            _num(figures["p50_ms"], 1),
            _num(figures["p99_ms"], 1),
            _num(figures["max_ms"], 1),
        ]
        for kind, figures in main["api_under_load"].items()
    ]
    return [table(["endpoint", "requests", "errors", "p50 ms", "p99 ms", "max ms"], rows)]


def process_lines(results: list[dict[str, Any]]) -> list[str]:
    main = headline(results)
    if main is None:
        return []
    size = main["plan"]["size"]
    rows = [
        [
            name,
            _num(usage["cpu_seconds"], 2),
            _num(usage["cpu_seconds"] / size * 1000, 3),
            _num(usage["peak_rss_mib"], 0),
            _num(usage["processes"]),
        ]
        for name, usage in main["resources"]["by_process"].items()
    ]
    return [table(["process", "CPU s", "ms/msg", "peak RSS MiB", "pids"], rows)]


def profile_lines(results: list[dict[str, Any]]) -> list[str]:
    lines = []
    for result in results:
        for name, profile in result.get("profile", {}).items():
            lines.append(
                f"  {result['name']} / {name}: {profile['samples']} samples ({profile['file']})"
            )
            packages = ", ".join(f"{p} {s}%" for p, s in profile["self_by_package"][:8])
            lines.append(f"    self time by package: {packages}")
            for function, share in profile["self_by_function"][:10]:
                lines.append(f"    {share:5.1f}%  {function}")
    return lines


def _experiments(meta: dict[str, Any]) -> list[str]:
    experiments = meta.get("experiments") or {}
    active = {k: v for k, v in experiments.items() if v}
    return [f"experiments (not the defaults): {active}"] if active else []


def render(document: dict[str, Any], previous: dict[str, Any] | None) -> str:
    meta = document["meta"]
    results: list[dict[str, Any]] = document["runs"]
    before: list[dict[str, Any]] = previous["runs"] if previous else []
    machine = meta["machine"]
    out = [
        f"herald benchmark  {meta['started_at']}  size {meta['size']:,}  commit {meta['commit']}",
        f"machine: {machine['cpus']} x {machine['cpu_model']}, {machine['memory_gib']} GiB;"
        f" PostgreSQL {machine['postgresql']}; RabbitMQ {machine['rabbitmq']}",
        "load average (1 min) at the start of each run: "
        + ", ".join(f"{r['name']} {r['load_average_at_start'][0]}" for r in results)
        + "  (a shared machine: figures are noisy)",
        f"previous: {previous['meta']['file'] if previous else 'none'}",
        *_experiments(meta),
        "",
        "TARGETS (headline: stub latency 50±10 ms, 2 senders, api under load)",
        targets_table(document["targets"], previous["targets"] if previous else None),
    ]
    sections: list[tuple[str, list[str]]] = [
        ("DISPATCH", [dispatch_table(results, before)] if find(results, "dispatch") else []),
        ("INGEST", ingest_lines(results, before)),
        ("LATENCY", latency_lines(results, before)),
        ("FAULTS (stub 50±10 ms, 2 senders)", faults_lines(results)),
        (
            "RATE LIMIT (one limit for all senders, leased from PostgreSQL)",
            rate_limit_lines(results, before),
        ),
        ("STUB (alone, driven to its limit)", stub_lines(results)),
        ("API UNDER LOAD (during the headline dispatch)", api_lines(results)),
        ("PROCESSES (headline dispatch: CPU from creation to all final)", process_lines(results)),
        ("PROFILES (py-spy, CPU samples only)", profile_lines(results)),
    ]
    for title, lines in sections:
        if lines:
            out += ["", title, *lines]
    return "\n".join(out)
