"""Shared by the bench/ scripts."""
import platform


def cpu_name():
    """The CPU's model name (/proc/cpuinfo), as the tables of docs/BENCHMARKS.md name it."""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"
