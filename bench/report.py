"""Prints a run's figures as markdown tables. `python -m bench.report` prints the last run
(bench/results/latest.json) again."""

import json
import sys
from pathlib import Path
from typing import Any

LATEST = Path(__file__).parent / "results" / "latest.json"
FIGURES = ("per_second", "p50_ms", "p95_ms", "p99_ms")
COSTS = ("server_cpu_ms", "postgres_cpu_ms")


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if b else "n/a"


def compare(results: dict[str, Any]) -> None:
    print("| scenario | figure | service | CRUD baseline | ratio |\n|---|---|---|---|---|")
    for scenario in ("create", "hot", "get"):
        service, crud = results["service"][scenario], results["crud"][scenario]
        for figure in (*FIGURES, *COSTS):
            a, b = service[figure], crud[figure]
            digits = 3 if figure in COSTS else 1
            cells = f"{a:,.{digits}f} | {b:,.{digits}f} | {ratio(a, b)}"
            print(f"| {scenario} | {figure} | {cells} |")
        shares = f"{service['busiest_share']:.2f} | {crud['busiest_share']:.2f}"
        print(f"| {scenario} | busiest worker's share of the CPU | {shares} | |")
        print(f"| {scenario} | statuses | {service['statuses']} | {crud['statuses']} | |")
        if scenario == "hot":
            pairs = [f"{r['winners']} / {r['overlapping_pairs']}" for r in (service, crud)]
            print(f"| hot | winners / overlapping pairs | {pairs[0]} | {pairs[1]} | |")
    by_clients(results)


def by_clients(results: dict[str, Any]) -> None:
    """create with each number of clients: the main run's and the sweep's."""
    runs = {results.get("concurrency", 0): "create"}
    runs |= {clients: f"create_{clients}" for clients in results.get("sweep", [])}
    if len(runs) < 2:
        return
    print(
        "\n| clients | creates/s service | CRUD | ratio | p99 ms service | CRUD | ratio "
        "| server CPU ms service | CRUD |\n|---|---|---|---|---|---|---|---|---|"
    )
    for clients, scenario in sorted(runs.items()):
        service, crud = results["service"][scenario], results["crud"][scenario]
        rate, p99 = (
            f"{service[f]:,.1f} | {crud[f]:,.1f} | {ratio(service[f], crud[f])}"
            for f in ("per_second", "p99_ms")
        )
        cpu = f"{service['server_cpu_ms']:.3f} | {crud['server_cpu_ms']:.3f}"
        print(f"| {clients} | {rate} | {p99} | {cpu} |")


def rebuilt(results: dict[str, Any]) -> None:
    rebuilt = results["rebuild"]
    print(
        f"\nrebuild of {rebuilt['events']:,} events: "
        f"{rebuilt['rebuild_per_second']:,.0f} events/s; "
        f"reading them raw: {rebuilt['raw_per_second']:,.0f} events/s; "
        f"ratio {ratio(rebuilt['rebuild_per_second'], rebuilt['raw_per_second'])} (medians; "
        f"rounds: rebuild {', '.join(f'{r:,.0f}' for r in rebuilt['rebuild_rounds'])}, "
        f"raw {', '.join(f'{r:,.0f}' for r in rebuilt['raw_rounds'])})"
    )


def history(results: dict[str, Any]) -> None:
    small, large = (f"{results['history'][k]:,} past" for k in ("small", "large"))
    seeded, caught = results["seeded"], results["background_catch_up"]
    print(
        f"\nseeded {seeded['events']:,} events in {seeded['seconds']:.1f} s; background "
        f"projections caught up on {caught['events']:,} events in {caught['seconds']:.1f} s"
    )
    print(f"read models: {results['read_models']}; busy in the week: {results['visible_busy']}")
    print(f"\n| scenario | figure | {small} | {large} | ratio |\n|---|---|---|---|---|")
    for scenario in ("availability", "bookable"):
        found = results[scenario]
        for figure in FIGURES[1:]:
            a, b = (found["by_target"][k][figure] for k in ("small", "large"))
            print(f"| {scenario} | {figure} | {a:,.1f} | {b:,.1f} | {ratio(b, a)} |")
        print(f"| {scenario} | requests/s (both) | {found['per_second']:,.1f} | | |")
        print(f"| {scenario} | statuses | {found['statuses']} | | |")
    print(
        f"\n| scenario | figure | fresh | {small} | {large} | ratio {large} / fresh |\n"
        "|---|---|---|---|---|---|"
    )
    for scenario in (k for k in results if k.startswith("decide_")):
        found = results[scenario]
        for figure in ("p50_ms", "p95_ms", "p99_ms"):
            a, b, c = (found["by_target"][k][figure] for k in ("fresh", "small", "large"))
            print(f"| {scenario} | {figure} | {a:,.1f} | {b:,.1f} | {c:,.1f} | {ratio(c, a)} |")
        print(f"| {scenario} | requests/s (all) | {found['per_second']:,.1f} | | | |")
        print(f"| {scenario} | statuses | {found['statuses']} | | | |")
    cold = results["cold"]
    for figure in ("first_ms", "second_ms"):
        a, b, c = (cold[k][figure] for k in ("fresh", "small", "large"))
        name = f"cold decide, {figure.removesuffix('_ms')} request"
        print(f"| {name} | median ms | {a:,.1f} | {b:,.1f} | {c:,.1f} | {ratio(c, a)} |")
    for label, found in results["as_of"].items():
        times = ", ".join(f"{ms:,.0f}" for ms in found["ms"])
        print(
            f"\navailability as_of now, {label} history: {times} ms; server memory "
            f"{found['rss_before_mib']:,.0f} -> {found['rss_after_mib']:,.0f} MiB"
        )


def memory(results: dict[str, Any]) -> None:
    seeded, caught, grown = (results[k] for k in ("seeded", "background_catch_up", "grown"))
    print(
        f"\nseeded {seeded['events']:,} events in {seeded['seconds']:.1f} s "
        f"({seeded['events'] / seeded['seconds']:,.0f} events/s); background projections "
        f"caught up in {caught['seconds']:.1f} s; {grown['events']:,} more active bookings "
        f"in {grown['seconds']:.1f} s (background projections included)"
    )
    print(
        f"\n{results['resources']} resources, {results['workers']} worker, database "
        f"{results['database_mib']:,.0f} MiB after seeding\n\n"
        "| history events | active bookings | idle MiB | after touching MiB | growth MiB "
        "| touching s | statuses |\n|---|---|---|---|---|---|---|"
    )
    for found in results["footprints"].values():
        print(
            f"| {found['history_events']:,} | {found['active_bookings']:,} "
            f"| {found['idle_mib']:,.1f} | {found['touched_mib']:,.1f} "
            f"| {found['growth_mib']:,.1f} | {found['touch_seconds']:.2f} | {found['statuses']} |"
        )
    rebuilt(results)


def report(run: dict[str, Any]) -> None:
    results = run["results"]
    spent = ", ".join(f"{group} {s:.0f} s" for group, s in results["seconds"].items())
    print(f"{run['at']}; {run['machine']}; {run['seconds']:.0f} s ({spent})")
    print(f"settings {run['settings']}\n")
    for name, show in (("compare", compare), ("history", history), ("memory", memory)):
        if name in results:
            show(results[name])


if __name__ == "__main__":
    report(json.loads((Path(sys.argv[1]) if len(sys.argv) > 1 else LATEST).read_text()))
