"""Peak resident set size of another process, sampled from ``/proc/<pid>/status`` until stdin closes.

``python rss_peak.py <pid> <interval_seconds>``; prints ``<peak_bytes> <samples>`` on exit. A process of its own
so that sampling is not held up by the test process's GIL while that is busy encoding and decoding spans.
"""

from __future__ import annotations

import select
import sys


def _rss(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None  # gone (or a zombie, which has no VmRSS)


def main() -> None:
    pid, interval = int(sys.argv[1]), float(sys.argv[2])
    peak = samples = 0
    # select() on stdin is both the sampling interval and the stop signal (EOF when the test closes it).
    while not select.select([sys.stdin], [], [], interval)[0]:
        rss = _rss(pid)
        if rss is None:
            break
        peak, samples = max(peak, rss), samples + 1
    print(peak, samples, flush=True)


if __name__ == "__main__":
    main()
