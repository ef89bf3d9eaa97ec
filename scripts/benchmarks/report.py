"""The side-by-side markdown table (with ratios to each baseline), the targets, the chart."""

from __future__ import annotations

from pathlib import Path
from typing import Any

SYSTEMS = ("orchestrator", "recipe", "apscheduler", "celery")
#: (scenario prefix, figure, label, format)
ROWS: tuple[tuple[str, str, str, str], ...] = (
    ("healthy", "latency_ms_p50", "callbacks healthy: detection p50 (ms)", "{:.0f}"),
    ("healthy", "latency_ms_p99", "callbacks healthy: detection p99 (ms)", "{:.0f}"),
    ("healthy", "requests_per_job", "callbacks healthy: upstream requests/job", "{:.2f}"),
    ("healthy", "polls_per_job", "callbacks healthy: polls/job", "{:.2f}"),
    ("drop-50", "latency_ms_p50", "50 % dropped: detection p50 (ms)", "{:.0f}"),
    ("drop-50", "latency_ms_p99", "50 % dropped: detection p99 (ms)", "{:.0f}"),
    ("drop-50", "requests_per_job", "50 % dropped: upstream requests/job", "{:.2f}"),
    ("drop-all", "latency_ms_p50", "all dropped: detection p50 (ms)", "{:.0f}"),
    ("drop-all", "latency_ms_p99", "all dropped: detection p99 (ms)", "{:.0f}"),
    ("drop-all", "requests_per_job", "all dropped: upstream requests/job", "{:.2f}"),
    ("chaos", "correct", "chaos: finished correctly", "{:.0f}"),
    ("chaos", "wrong", "chaos: finished wrongly", "{:.0f}"),
    ("chaos", "lost", "chaos: lost (no outcome)", "{:.0f}"),
    ("chaos", "submitted_twice", "chaos: submitted twice", "{:.0f}"),
    ("chaos", "requests_per_job", "chaos: upstream requests/job", "{:.2f}"),
    ("scale", "lateness_s_p50", "scale {n}: poll lateness p50 (s)", "{:.3f}"),
    ("scale", "lateness_s_p99", "scale {n}: poll lateness p99 (s)", "{:.3f}"),
    (
        "scale",
        "polls_per_s_due",
        "scale {n}: polls/s due in the window (N / 30 s = {need:.0f})",
        "{:.1f}",
    ),
    ("scale", "polls_per_s", "scale {n}: polls/s achieved in the window", "{:.1f}"),
    ("scale", "cpu_s", "scale {n}: CPU seconds", "{:.1f}"),
    ("scale", "peak_rss_mb", "scale {n}: peak RSS (MB)", "{:.0f}"),
    ("ingest", "callbacks_per_s", "ingest: acknowledged callbacks/s", "{:.0f}"),
    ("ingest", "response_ms_p99", "ingest: response p99 (ms)", "{:.1f}"),
    ("ingest", "lost", "ingest: acknowledged but not stored", "{:.0f}"),
)


def _fmt(value: Any, fmt: str) -> str:
    return "n/a" if value is None else fmt.format(value)


def _ratio(a: Any, b: Any) -> str:
    if a is None or b is None:
        return "n/a"
    if b == 0:
        return "=" if a == 0 else "n/a"
    return f"{a / b:.2f}x"


def markdown(results: dict[str, Any]) -> str:
    scenarios = results.get("scenarios", {})
    present = [s for s in SYSTEMS if any(s in sc.get("systems", {}) for sc in scenarios.values())]
    baselines = [s for s in present if s != "orchestrator"]
    head = ["figure", *present, *[f"orch / {b}" for b in baselines]]
    lines = [
        f"Mode: {results.get('mode')}; sandbox time scale {results.get('time_scale')} "
        f"(the 30 s poll interval is {results.get('poll_interval_wall_s', 0):.3g} s of wall time "
        "in the latency and chaos scenarios, a real 30 s in the scale scenario).",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for prefix, fig, label, fmt in ROWS:
        for name, sc in scenarios.items():
            if name != prefix and not (prefix == "scale" and name.startswith("scale-")):
                continue
            systems = sc.get("systems", {})
            need = next((v.get("polls_per_s_needed", 0) for v in systems.values()), 0)
            row = [label.format(n=f"{sc.get('jobs', '')}", need=need)]
            row += [_fmt(systems.get(s, {}).get(fig), fmt) for s in present]
            orch = systems.get("orchestrator", {}).get(fig)
            row += [_ratio(orch, systems.get(b, {}).get(fig)) for b in baselines]
            lines.append("| " + " | ".join(row) + " |")
    for name, reason in results.get("unavailable", {}).items():
        lines.append(f"\n{name}: unavailable ({reason})")
    lines += ["", *targets(results)]
    return "\n".join(lines) + "\n"


def targets(results: dict[str, Any]) -> list[str]:
    sc = results.get("scenarios", {})
    orch = {k: v.get("systems", {}).get("orchestrator", {}) for k, v in sc.items()}
    out = ["Targets (orchestrator):", ""]

    def line(name: str, value: Any, ok: bool | None, detail: str) -> None:
        mark = "n/a" if ok is None else ("met" if ok else "MISSED")
        out.append(f"- {name}: {mark} ({detail if value is not None else 'not measured'})")

    h = orch.get("healthy", {})
    p99 = h.get("latency_ms_p99")
    line(
        "callback to verified terminal p99 <= 50 ms + one round trip",
        p99,
        None if p99 is None else p99 <= 60,
        f"p99 {_fmt(p99, '{:.0f}')} ms",
    )
    ppj = h.get("polls_per_job")
    line(
        "at most 2 polls per job with healthy callbacks",
        ppj,
        None if ppj is None else ppj <= 2,
        f"{_fmt(ppj, '{:.2f}')} polls/job",
    )
    # the 10,000-job scale run if there is one, else the first
    scale_key = (
        "scale-10000"
        if "scale-10000" in sc
        else next((k for k in sc if k.startswith("scale-")), "")
    )
    scale = orch.get(scale_key, {})
    n = sc.get(scale_key, {}).get("jobs")
    late = scale.get("lateness_s_p99")
    line(
        f"10,000 in-flight at 30 s, lateness p99 < 1 s (ran {n})",
        late,
        None if late is None or n != 10_000 else late < 1,
        f"p99 {_fmt(late, '{:.3f}')} s at {n} jobs",
    )
    rss = scale.get("peak_rss_mb")
    line(
        f"peak RSS < 150 MB at 10,000 jobs (ran {n})",
        rss,
        None if rss is None or n != 10_000 else rss < 150,
        f"{_fmt(rss, '{:.0f}')} MB at {n} jobs",
    )
    ing = orch.get("ingest", {})
    rate, lost = ing.get("callbacks_per_s"), ing.get("lost")
    line(
        ">= 1,000 acknowledged callbacks/s, none lost",
        rate,
        None if rate is None else rate >= 1000 and lost == 0,
        f"{_fmt(rate, '{:.0f}')}/s, {lost} lost",
    )
    return out


def chart(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sc = results.get("scenarios", {})
    panels = [
        (
            "detection p99 (ms, log)",
            [(k, "latency_ms_p99") for k in ("healthy", "drop-50", "drop-all")],
            True,
        ),
        (
            "upstream requests / job",
            [(k, "requests_per_job") for k in ("healthy", "drop-50", "drop-all", "chaos")],
            False,
        ),
        (
            "poll lateness p99 (s)",
            [(k, "lateness_s_p99") for k in sc if k.startswith("scale-")],
            False,
        ),
        ("callbacks / s", [("ingest", "callbacks_per_s")], False),
    ]
    fig, axes = plt.subplots(1, len(panels), figsize=(18, 4.5))
    for ax, (title, series, log) in zip(axes, panels, strict=True):
        groups = [k for k, _ in series if k in sc]
        width = 0.8 / len(SYSTEMS)
        for i, system in enumerate(SYSTEMS):
            values = [sc[k]["systems"].get(system, {}).get(f) or 0 for k, f in series if k in sc]
            xs = [j + i * width for j in range(len(groups))]
            ax.bar(xs, values, width, label=system)
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(groups))], groups)
        ax.set_title(title)
        if log:
            ax.set_yscale("log")
    axes[0].legend(fontsize=8)
    fig.suptitle(f"orchestrator vs baselines ({results.get('mode')} run)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def adaptive_markdown(results: dict[str, Any]) -> str:
    """The adaptive scenarios (log-normal durations, all or half of the callbacks dropped) and
    the lag scenarios."""
    scenarios = results.get("scenarios", {})
    lines: list[str] = []
    for tag, what in (("adaptive", "No callbacks"), ("adaptive-drop-50", "Half the callbacks")):
        sc = scenarios.get(tag)
        if not sc:
            continue
        systems = sc["systems"]
        lines += [
            "",
            f"{what} ({sc['faults']}), log-normal durations ({sc['jobs']} jobs each; the"
            " adaptive orchestrator learned from a warm-up first). Latency in scaled wall ms.",
            "",
            "| system | mean detection ms | p99 ms | first poll after the outcome, mean ms |"
            " requests/job | correct |",
            "|---|---|---|---|---|---|",
        ]
        for name, fig in systems.items():
            lines.append(
                f"| {name} | {_fmt(fig.get('latency_ms_mean'), '{:.0f}')} |"
                f" {_fmt(fig.get('latency_ms_p99'), '{:.0f}')} |"
                f" {_fmt(fig.get('poll_after_ms_mean'), '{:.0f}')} |"
                f" {_fmt(fig.get('requests_per_job'), '{:.2f}')} | {fig.get('correct')} |"
            )
        adaptive = systems.get("orchestrator-adaptive") or {}
        fixed = systems.get("orchestrator-fixed-30") or {}
        if tag == "adaptive" and adaptive.get("latency_ms_mean") and fixed.get("latency_ms_mean"):
            ratio = adaptive["latency_ms_mean"] / fixed["latency_ms_mean"]
            cost = adaptive["requests_per_job"] / fixed["requests_per_job"]
            met = "met" if ratio <= 1 / 3 and cost <= 1 else "NOT met"
            lines.append(
                f"\nTarget (mean <= 1/3 of fixed 30 s at <= its requests): {met}:"
                f" mean {ratio:.2f}x, requests {cost:.2f}x of fixed 30 s."
            )
        baselines = [systems[b]["latency_ms_p99"] for b in BASELINE_NAMES if b in systems]
        baselines = [p for p in baselines if p is not None]
        if tag == "adaptive-drop-50" and adaptive.get("latency_ms_p99") and baselines:
            best = min(baselines)
            met = "met" if adaptive["latency_ms_p99"] <= best else "NOT met"
            lines.append(
                f"\nTarget (p99 <= the best baseline's): {met}: {adaptive['latency_ms_p99']:.0f}"
                f" ms against {best:.0f} ms."
            )
    lag = scenarios.get("lag")
    if lag:
        lines += [
            "",
            "| record-info lag (scaled s) | detection p50 ms | p99 ms | target ms | met |",
            "|---|---|---|---|---|",
        ]
        for fig in lag["systems"].values():
            p99, target = fig.get("latency_ms_p99"), fig.get("target_ms")
            met = "yes" if p99 is not None and target is not None and p99 <= target else "no"
            lines.append(
                f"| {fig.get('lag_s_scaled')} | {_fmt(fig.get('latency_ms_p50'), '{:.0f}')} |"
                f" {_fmt(p99, '{:.0f}')} | {_fmt(target, '{:.0f}')} | {met} |"
            )
    return "\n".join(lines) + ("\n" if lines else "")


#: the baselines' names in the results
BASELINE_NAMES = ("recipe", "apscheduler", "celery")


def curve(results: dict[str, Any], path: Path) -> None:
    """Mean detection latency against upstream requests per job: fixed 10/20/30/60 s and
    adaptive (the adaptive scenario)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    systems = results["scenarios"]["adaptive"]["systems"]
    fig, ax = plt.subplots(figsize=(6, 4))
    fixed = [
        (v["requests_per_job"], v["latency_ms_mean"], k)
        for k, v in systems.items()
        if k.startswith("orchestrator-fixed") and v.get("latency_ms_mean")
    ]
    fixed.sort()
    ax.plot([f[0] for f in fixed], [f[1] for f in fixed], "o-", label="fixed interval")
    for x, y, k in fixed:
        ax.annotate(k.removeprefix("orchestrator-fixed-") + " s", (x, y))
    a = systems.get("orchestrator-adaptive")
    if a and a.get("latency_ms_mean"):
        ax.plot([a["requests_per_job"]], [a["latency_ms_mean"]], "r*", ms=14, label="adaptive")
    ax.set_xlabel("upstream requests per job")
    ax.set_ylabel("mean detection latency (scaled ms)")
    ax.set_title("no callbacks, log-normal durations")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def cluster_markdown(results: dict[str, Any]) -> str:
    """The cluster scenarios: 1, 2 and 3 daemons on one PostgreSQL schema."""
    scenarios = results.get("scenarios", {})
    lines: list[str] = []
    healthy = scenarios.get("cluster-healthy")
    if healthy:
        one = healthy["systems"].get("orchestrator-sqlite", {})
        lines += [
            "",
            f"Several daemons on one PostgreSQL, healthy callbacks handed to a random daemon by"
            f" a loopback balancer ({healthy['jobs']} jobs each; scaled wall ms;"
            " orchestrator-sqlite: the usual single daemon on SQLite, same sandbox seed).",
            "",
            "| daemons | detection p50 ms | p99 ms | p99 over SQLite | requests/job |"
            " wake-ups relayed | correct | twice |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for name, fig in healthy["systems"].items():
            lines.append(
                f"| {name} | {_fmt(fig.get('latency_ms_p50'), '{:.0f}')} |"
                f" {_fmt(fig.get('latency_ms_p99'), '{:.0f}')} |"
                f" {_ratio(fig.get('latency_ms_p99'), one.get('latency_ms_p99'))} |"
                f" {_fmt(fig.get('requests_per_job'), '{:.2f}')} | {fig.get('wakes')} |"
                f" {fig.get('correct')} | {fig.get('submitted_twice')} |"
            )
    for tag, sc in scenarios.items():
        if not tag.startswith("cluster-scale-"):
            continue
        lines += [
            "",
            f"{sc['jobs']} in flight on 1, 2 and 3 daemons (30 s interval, no callbacks; CPU and"
            " RSS summed over the daemons).",
            "",
            "| daemons | polls/s made | due | lateness p50 s | p99 s | CPU s | CPU ms/poll |"
            " RSS MB |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for name, fig in sc["systems"].items():
            lines.append(
                f"| {name} | {_fmt(fig.get('polls_per_s'), '{:.0f}')} |"
                f" {_fmt(fig.get('polls_per_s_due'), '{:.0f}')} |"
                f" {_fmt(fig.get('lateness_s_p50'), '{:.2f}')} |"
                f" {_fmt(fig.get('lateness_s_p99'), '{:.2f}')} |"
                f" {_fmt(fig.get('cpu_s'), '{:.1f}')} |"
                f" {_fmt(fig.get('cpu_ms_per_poll'), '{:.1f}')} |"
                f" {_fmt(fig.get('peak_rss_mb'), '{:.0f}')} |"
            )
    return "\n".join(lines) + ("\n" if lines else "")
