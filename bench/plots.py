"""Draws a run's history and memory figures as PNGs in docs/images (needs matplotlib: the
`bench` extra). `python -m bench.plots` draws them again from bench/results/latest.json."""

import json
import sys
from pathlib import Path
from typing import Any

IMAGES = Path(__file__).parent.parent / "docs" / "images"
LATENCY_PNG = IMAGES / "bench-history-latency.png"
MEMORY_PNG = IMAGES / "bench-memory.png"
PERCENTILES = ("p50_ms", "p95_ms", "p99_ms")


def available() -> bool:
    try:
        import matplotlib  # noqa: F401, PLC0415
    except ImportError:
        return False
    return True


def _bars(axes: Any, groups: list[str], series: dict[str, list[float]], ylabel: str) -> None:
    """Grouped bars: one group per entry of `groups`, one bar per series in each."""
    width = 0.8 / len(series)
    for i, (name, values) in enumerate(series.items()):
        offsets = [g + (i - (len(series) - 1) / 2) * width for g in range(len(groups))]
        bars = axes.bar(offsets, values, width, label=name)
        axes.bar_label(bars, fmt="%.1f", fontsize=7, padding=2)
    axes.set_xticks(range(len(groups)), groups, fontsize=8)
    axes.set_ylabel(ylabel)
    axes.legend(fontsize=8)
    axes.margins(y=0.15)


def history_latency(results: dict[str, Any], path: Path = LATENCY_PNG) -> Path:
    """Availability (small against large history) and decide latency (fresh, small, large)."""
    import matplotlib.pyplot as plt  # noqa: PLC0415

    sizes = {"fresh": "fresh"} | {k: f"{v:,} past" for k, v in results["history"].items()}
    figure, (left, right, cold) = plt.subplots(
        1, 3, figsize=(15, 4.5), gridspec_kw={"width_ratios": [3, 2.4, 1.2]}
    )
    groups: list[str] = []
    series: dict[str, list[float]] = {sizes[k]: [] for k in ("small", "large")}
    for scenario in ("availability", "bookable"):
        for p in PERCENTILES:
            groups.append(f"{scenario}\n{p.removesuffix('_ms')}")
            for key in ("small", "large"):
                series[sizes[key]].append(results[scenario]["by_target"][key][p])
    _bars(left, groups, series, "ms")
    left.set_title("GET availability of one week, warm (d)", fontsize=10)
    decides = [k for k in results if k.startswith("decide_")]
    groups, series = [], {sizes[k]: [] for k in ("fresh", "small", "large")}
    for scenario in decides:
        for p in ("p50_ms", "p99_ms"):
            clients = scenario.removeprefix("decide_c")
            groups.append(f"{clients} client{'s' * (clients != '1')}\n{p.removesuffix('_ms')}")
            for key in ("fresh", "small", "large"):
                series[sizes[key]].append(results[scenario]["by_target"][key][p])
    _bars(right, groups, series, "ms")
    right.set_title("POST /bookings, warm (e)", fontsize=10)
    series = {
        sizes[key]: [results["cold"][key][f] for f in ("first_ms", "second_ms")]
        for key in ("fresh", "small", "large")
    }
    _bars(cold, ["first", "second"], series, "ms (median)")
    cold.set_title("POST /bookings after a restart", fontsize=10)
    figure.suptitle("Latency against the length of a resource's history", fontsize=11)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def memory(results: dict[str, Any], path: Path = MEMORY_PNG) -> Path:
    """Server memory at rest, and what caching every resource added, per history and number
    of active bookings."""
    import matplotlib.pyplot as plt  # noqa: PLC0415

    found = list(results["footprints"].values())
    actives = sorted({f["active_bookings"] for f in found})
    histories = sorted({f["history_events"] for f in found}, reverse=True)
    figure, axes = plt.subplots(figsize=(8, 4.5))
    width = 0.8 / len(histories)
    for i, history in enumerate(histories):
        by_active = {f["active_bookings"]: f for f in found if f["history_events"] == history}
        cells = [by_active[a] for a in actives]
        x = [a + (i - (len(histories) - 1) / 2) * width for a in range(len(actives))]
        name = f"{history:,} events of history" if history else "no history"
        color = f"C{i}"
        axes.bar(x, [c["idle_mib"] for c in cells], width, color=color, alpha=0.35)
        bars = axes.bar(
            x,
            [c["growth_mib"] for c in cells],
            width,
            bottom=[c["idle_mib"] for c in cells],
            color=color,
            label=f"{name}: cached resources",
        )
        totals = [f"{c['touched_mib']:.1f} (+{c['growth_mib']:.1f})" for c in cells]
        axes.bar_label(bars, totals, fontsize=8, padding=2)
    axes.set_xticks(range(len(actives)), [f"{a:,} active bookings" for a in actives])
    axes.set_ylabel("MiB resident (light: at rest)")
    axes.legend(fontsize=8, loc="upper left")
    axes.margins(y=0.15)
    workers = results["workers"]
    axes.set_title(
        f"Server memory after caching {results['resources']} resources "
        f"({workers} worker{'s' * (workers != 1)}) (g)",
        fontsize=10,
    )
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def draw(results: dict[str, Any]) -> list[Path]:
    """Every plot the run's results allow."""
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    drawn = []
    if "history" in results:
        drawn.append(history_latency(results["history"]))
    if "memory" in results:
        drawn.append(memory(results["memory"]))
    return drawn


if __name__ == "__main__":
    from bench.report import LATEST

    run = json.loads((Path(sys.argv[1]) if len(sys.argv) > 1 else LATEST).read_text())
    for drawn in draw(run["results"]):
        print(drawn)
