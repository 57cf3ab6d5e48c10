"""What every benchmark shares: paths, the machine line, and writing a section of BENCHMARKS.md."""

from __future__ import annotations

import os
import platform
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RTQA = REPO.parent / "shared" / "data" / "realtimeqa"
RTQA_ARTICLES = RTQA / "articles.jsonl.gz"
BENCHMARKS_MD = REPO / "BENCHMARKS.md"


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} CPU cores ({cpu}), {mem_gb:.0f} GiB RAM, Python {platform.python_version()}"


def update_benchmarks_md(path: Path, section: str) -> None:
    section = section.rstrip("\n") + "\n\n"  # a blank line before the next section's title
    title = section.splitlines()[0]
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n\n"
    # The whole title line: one section's title may begin another's ("..., heldout-seed7").
    start = text.find(title + "\n")
    if start >= 0:
        end = text.find("\n## ", start + len(title))
        text = text[:start] + section + (text[end + 1:] if end >= 0 else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text, encoding="utf-8")




def fmt_metric(value) -> str:
    if value is None:
        return "n/a"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def publish(section: str) -> None:
    """Write the section into BENCHMARKS.md (replacing its earlier version) and show it."""
    update_benchmarks_md(BENCHMARKS_MD, section)
    print(section)
