"""bench.bulk_export end to end with a tiny export, so `make bench` cannot rot unnoticed."""

from __future__ import annotations

from bench.bulk_export import run


def test_bulk_export_bench_exports_every_seeded_resource() -> None:
    result = run(250)  # run() itself checks every seeded resource came back in the files
    assert result["resources"] == 250
    assert result["export_resources_per_s"] > 0
    assert result["copy_resources_per_s"] > 0
    assert result["peak_rss_mib"] > 0
